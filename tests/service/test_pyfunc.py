"""The MLflow model decides with stock when given an inventory, and says when it was not."""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd
import pytest

from features import io
from training import registry


@pytest.fixture(scope="module")
def pyfunc(trained):
    """The small champion as any MLflow consumer loads it."""
    registry.configure(trained.tracking_uri)
    return mlflow.pyfunc.load_model(registry.model_uri(trained.model_name))


@pytest.fixture(scope="module")
def frame(trained) -> pd.DataFrame:
    return io.read_customers(trained.data_dir / io.CUSTOMERS).head(200)


def test_without_an_inventory_every_row_says_stock_was_not_checked(pyfunc, frame):
    rows = pyfunc.predict(frame, params={"holdout_share": 0.0, "limit": 5})
    assert not rows["stock_checked"].any()


def test_with_an_inventory_sold_out_skus_are_not_offered(pyfunc, frame, loaded):
    catalog = loaded.policy.catalog
    with_sku = {o.offer_id for o in catalog.offers if o.sku is not None}
    fallback = {o.offer_id for o in catalog.offers if o.fallback is not None}
    empty = json.dumps([{"sku": o.sku, "size": None, "color": None, "location": None,
                         "on_hand": 0} for o in catalog.offers if o.sku is not None])
    blind = pyfunc.predict(frame, params={"holdout_share": 0.0, "limit": 5})
    rows = pyfunc.predict(frame, params={"holdout_share": 0.0, "limit": 5, "inventory": empty})
    assert rows["stock_checked"].all()
    assert set(blind["offer_id"].dropna()) & (with_sku - fallback)  # offered when blind
    offered = rows[rows["offer_id"].notna()]
    sold_out = offered[offered["offer_id"].isin(with_sku)]
    assert set(sold_out["offer_id"]) <= fallback  # only as a waiting list or pre-order
    assert (sold_out["action"] != "offer").all()
    reasons = [json.loads(s) for s in rows["suppressed"]]
    assert any(r.get(o) == "out_of_stock" for r in reasons for o in with_sku - fallback)


def test_a_bad_inventory_parameter_is_named(pyfunc, frame):
    with pytest.raises(ValueError, match="params.inventory must be a JSON list"):
        pyfunc.predict(frame.head(1), params={"inventory": '{"not": "a list"}'})


def test_the_request_context_parameters_reach_the_model(pyfunc, frame, loaded):
    assert loaded.policy.has_context  # the demo's exposures record the request context
    base = {"holdout_share": 0.0, "limit": 5}
    omitted = pyfunc.predict(frame, params=base)
    empty = pyfunc.predict(frame, params=base | {"device": "", "page": "", "cart_value": ""})
    situated = pyfunc.predict(frame, params=base | {"device": "mobile", "page": "footwear",
                                                    "cart_value": "30"})
    pd.testing.assert_frame_equal(omitted, empty)  # omitted = the documented default, null
    assert not omitted["uplift"].equals(situated["uplift"])
    with pytest.raises(Exception, match="params.cart_value must be a number"):
        pyfunc.predict(frame.head(1), params=base | {"cart_value": "lots"})
