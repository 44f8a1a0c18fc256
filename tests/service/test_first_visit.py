"""The first-visit policy: exposures of new customers (the `new_customer` column) train a
policy of their own over the offers for new customers, from the request context alone; an
unknown id or an anonymous session is decided by it, through the one decision core."""

from __future__ import annotations

from pathlib import Path

import pytest

from nba import demo
from tests.conftest import DEMO_SEED, Trained, load_champion, train_champion

NEW_OFFERS = ("first_purchase_gift", "consent_prompt")
BIG_CART = {"cart_value": 90.0, "device": "desktop", "page": "footwear"}
SMALL_CART = {"cart_value": 8.0, "device": "mobile", "page": "home"}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo retailer whose exposures also hold 8,000 first visits."""
    out = tmp_path_factory.mktemp("first-visit") / "data"
    demo.write(demo.generate(1_000, 5_000, DEMO_SEED, new_customers=8_000), out)
    return out


@pytest.fixture(scope="module")
def trained(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_champion(demo_dir, tmp_path_factory.mktemp("first-visit-registry"), 30)


@pytest.fixture(scope="module")
def loaded(trained: Trained):
    return load_champion(trained)


def decide(client, context: dict, **who) -> dict:
    response = client.post("/v1/decisions", json={"channel": "web", "context": context, **who})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_policy_ships_a_first_visit_policy_of_the_context_alone(loaded, trained) -> None:
    first = loaded.policy.first_visit
    assert first is not None
    assert first.spec.names == ["device", "page", "cart_value"]
    assert first.catalog.offer_ids == NEW_OFFERS
    assert first.meta["first_visit_rows"] == 8_000
    # the customer policy learned from the known customers' rows only
    assert "recency_days" in loaded.policy.spec.names
    assert trained.metrics["first_visit_rows"] == 8_000


def test_an_unknown_visitor_is_decided_by_the_first_visit_policy_from_the_context(
        client, state) -> None:
    big = decide(client, BIG_CART, session_id="s-big")
    small = decide(client, SMALL_CART, customer_id="walk-in-9")

    for body in (big, small):
        assert body["customer_known"] is False
        assert "first-visit policy" in body["customer_known_reason"]
        shown = {o["offer_id"] for o in body["offers"]}
        assert shown | {s["offer_id"] for s in body["suppressed"]} == set(NEW_OFFERS)
    assert big["customer_known_reason"].startswith("anonymous session")
    assert small["customer_known_reason"].startswith("no profile for this customer_id")
    # the gift tips a large first cart and is not worth its cost on a small one
    assert big["offers"][0]["offer_id"] == "first_purchase_gift"
    assert big["offers"][0]["reasons"]
    assert "first_purchase_gift" not in {o["offer_id"] for o in small["offers"]}

    logged = state.log.get(big["decision_id"])
    assert logged is not None and logged.segment == "new_customer"
    # the suite's app has no holdout and no exploration: the decision served was sure
    assert logged.propensity == 1.0 and not logged.holdout
    assert logged.features == {"device": "desktop", "page": "footwear", "cart_value": 90.0}


def test_a_known_customer_is_still_decided_by_the_customer_policy(client) -> None:
    body = decide(client, BIG_CART, customer_id="C0000001")
    assert body["customer_known"] is True
    assert not {o["offer_id"] for o in body["offers"]} & set(NEW_OFFERS)
