"""Request context in the model: the demo's exposures record device, page and cart value with a
known effect (nba.demo.context_uplift); the trained champion must have learned it, and a
request's context must move its decision that way through the one decision path."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from decisioning.core import OFFLINE
from decisioning.decision import DecisionContext

pytestmark = pytest.mark.slow  # the real trained champion

NOW = datetime.now(UTC)
ROWS = 300


def _uplift(loaded, context: DecisionContext, offer_id: str) -> np.ndarray:
    """The served uplift of `offer_id` for the first ROWS customers in `context`."""
    policy = loaded.policy
    k = policy.catalog.offer_ids.index(offer_id)
    return np.array([policy.score_row(*policy.situate(loaded.customers, row, context)).uplift[k]
                     for row in range(ROWS)])


def test_the_model_learned_the_context_columns_of_the_exposures(loaded) -> None:
    names = [f.name for f in loaded.policy.spec.features]
    assert {"device", "page", "cart_value"} <= set(names)
    assert loaded.policy.has_context


@pytest.mark.parametrize(("offer_id", "helps", "does_not"), [
    # true effect +0.15 beside an outfit (footwear, apparel, accessories pages)
    ("accessories_cross_sell", {"page": "footwear"}, {"page": "beauty"}),
    # true effect +0.12 for a cart just under the free-shipping threshold
    ("free_shipping", {"cart_value": 30.0}, {"cart_value": 120.0}),
])
def test_a_request_context_raises_the_uplift_where_the_truth_does(loaded, offer_id, helps,
                                                                   does_not) -> None:
    better = _uplift(loaded, DecisionContext("web", NOW, **helps), offer_id)
    worse = _uplift(loaded, DecisionContext("web", NOW, **does_not), offer_id)

    assert float(np.mean(better - worse)) > 0.02
    assert float(np.mean(better > worse)) > 0.8


def test_a_request_context_changes_the_decision_towards_what_it_helps(loaded) -> None:
    policy, table = loaded.policy, loaded.customers
    near_threshold = DecisionContext("web", NOW, cart_value=30.0)
    large_cart = DecisionContext("web", NOW, cart_value=120.0)

    def shows(context: DecisionContext) -> int:
        return sum("free_shipping" in {o.offer_id for o in policy.decide_row(
            table, row, context, settings=OFFLINE).offers} for row in range(ROWS))

    assert shows(near_threshold) > shows(large_cart) + ROWS // 10


def test_an_omitted_context_column_is_the_documented_default_null(loaded) -> None:
    policy, table = loaded.policy, loaded.customers
    omitted = DecisionContext("web", NOW, page="footwear")
    explicit = DecisionContext("web", NOW, page="footwear", device=None, cart_value=None)
    situated, row = policy.situate(table, 0, omitted)

    assert np.array_equal(situated.matrix, policy.situate(table, 0, explicit)[0].matrix,
                          equal_nan=True)
    assert np.isnan(situated.matrix[row, policy.spec.matrix_names.index("cart_value")])
    assert situated.feature_row(row) | {"page": "footwear", "device": None,
                                        "cart_value": None} == situated.feature_row(row)
    assert policy.decide_row(table, 0, omitted, settings=OFFLINE).offers
