"""Customers without a profile: unknown ids and anonymous sessions get a decision from the
catalog's offers for new customers (service/newcomers.py), through the same `decide`."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from decisioning.decision import DecisionContext
from features import io
from features.catalog import Catalog
from nba.demo import demo_catalog
from service.newcomers import NO_NEW_OFFERS, new_customer_decision

NOW = datetime.now(UTC)
NEW_OFFERS = {"first_purchase_gift", "consent_prompt"}


@pytest.fixture(scope="module")
def customers(trained) -> pd.DataFrame:
    return io.read_customers(trained.data_dir / io.CUSTOMERS)


def post(client, body: dict):
    return client.post("/v1/decisions", json=body)


def test_an_unknown_customer_gets_the_new_customer_offers_with_reasons(client, state) -> None:
    response = post(client, {"customer_id": "walk-in-7", "channel": "web",
                             "context": {"device": "mobile", "cart_value": 42.5,
                                         "page": "sneakers"}})

    assert response.status_code == 200
    body = response.get_json()
    assert body["customer_known"] is False
    assert "no profile" in body["customer_known_reason"]
    assert [o["offer_id"] for o in body["offers"]] == ["first_purchase_gift", "consent_prompt"]
    assert all(o["reasons"] and o["expected_incremental_value"] > 0 for o in body["offers"])
    logged = state.log.get(body["decision_id"])
    assert logged is not None and logged.customer_id == "walk-in-7"


def test_an_anonymous_session_is_decided_and_logged_under_its_session(client, state) -> None:
    response = post(client, {"session_id": "abc123", "channel": "sms"})

    body = response.get_json()
    assert response.status_code == 200 and body["customer_id"] == "session:abc123"
    assert "anonymous" in body["customer_known_reason"]
    # the gift is web/app/store only: on sms it is suppressed with its reason
    assert [o["offer_id"] for o in body["offers"]] == ["consent_prompt"]
    assert [(s["offer_id"], s["reason"]) for s in body["suppressed"]] == [
        ("first_purchase_gift", "not_eligible")]
    assert state.log.get(body["decision_id"]) is not None


def test_a_known_customer_never_gets_a_new_customer_offer(client, customers) -> None:
    for customer_id in customers["customer_id"].head(20):
        body = post(client, {"customer_id": customer_id, "channel": "web"}).get_json()
        assert body["customer_known"] is True and "customer_known_reason" not in body
        shown = {o["offer_id"] for o in body["offers"]} | {s["offer_id"]
                                                           for s in body["suppressed"]}
        assert not shown & NEW_OFFERS


def test_every_new_customer_offer_is_shown_or_suppressed_and_none_without_them() -> None:
    catalog = demo_catalog(NOW)
    context = DecisionContext(channel="email", now=NOW, limit=1)

    decision = new_customer_decision(catalog, "x", context)
    without = new_customer_decision(Catalog(offers=catalog.offers), "x", context)

    assert {o.offer_id for o in decision.offers} | {s.offer_id for s in decision.suppressed} \
        == NEW_OFFERS
    assert [o.offer_id for o in decision.offers] == ["consent_prompt"]  # limit 1, gift not on email
    assert without.offers == () and without.suppressed == ()
    assert NO_NEW_OFFERS.startswith("; ")
