"""Decisions from customer profiles kept in the state store (NBA_CUSTOMERS_FROM=store), on
SQLite and PostgreSQL: the same decisions as the in-memory table, and a changed profile is
seen by the very next decision."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask

from features import io
from features.customers import profile_documents
from service import create_app
from service.model_store import LoadedModel, ModelNotReady, ModelStore, load_from_registry
from service.settings import ServiceSettings
from state import StateStore, open_store
from state.profiles import encode
from state.rows import stock_rows
from tests.conftest import ADMIN_TOKEN, Trained

NOW = datetime.now(UTC)


@dataclass
class Served:
    """An app deciding from the store, and the store under it."""

    app: Flask
    store: StateStore
    model: LoadedModel

    def decide(self, customer_id: str) -> tuple[int, dict]:
        client = self.app.test_client()
        response = client.post("/v1/decisions", json={"customer_id": customer_id, "channel": "web"},
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        return response.status_code, response.get_json()


def _settings(trained: Trained, url: str, source: str) -> ServiceSettings:
    return ServiceSettings(tracking_uri=trained.tracking_uri, data_dir=trained.data_dir,
                           state_url=url, customers_from=source, admin_token=ADMIN_TOKEN,
                           holdout_share=0.0, exploration=0.0, rate_limit=0.0)


@pytest.fixture
def served(trained: Trained, store_url: str) -> Iterator[Served]:
    """The champion deciding from profiles loaded into a fresh store of each backend."""
    store = open_store(store_url)
    store.replace_inventory(stock_rows(io.read_inventory(trained.data_dir / io.INVENTORY)),
                            now=NOW)
    store.profiles.replace(profile_documents(io.read_customers(trained.data_dir
                                                               / io.CUSTOMERS)), now=NOW)
    settings = _settings(trained, store_url, "store")
    model = load_from_registry(settings)
    models = ModelStore(lambda: model)
    models.try_load()
    yield Served(create_app(settings, store=models, state=store), store, model)
    store.close()


def test_the_store_decides_as_the_in_memory_table_did(served: Served, client) -> None:
    ids = [cid for cid, _ in served.store.profiles.sample(40)]
    assert served.model.from_store

    for customer_id in ids:
        status, body = served.decide(customer_id)
        expected = client.post("/v1/decisions", json={"customer_id": customer_id,
                                                      "channel": "web"}).get_json()
        assert status == 200, body
        assert ([(o["offer_id"], o["uplift"]) for o in body["offers"]]
                == [(o["offer_id"], o["uplift"]) for o in expected["offers"]]), customer_id
        assert body["suppressed"] == expected["suppressed"]


def test_a_changed_profile_reaches_the_very_next_decision(served: Served) -> None:
    customer_id, profile = next((cid, p) for cid, p in served.store.profiles.sample(200)
                                if p.get("contactable") is not False)
    status, before = served.decide(customer_id)
    assert status == 200 and before["offers"]

    served.store.profiles.replace([[(customer_id, encode({**profile, "contactable": False}))]],
                                  now=NOW)
    status, after = served.decide(customer_id)

    assert status == 200
    assert [o for o in after["offers"] if o["action"] == "offer"] == []
    assert {s["reason"] for s in after["suppressed"]} >= {"not_contactable"}


def test_a_customer_without_a_profile_is_decided_as_a_new_customer(served: Served) -> None:
    status, body = served.decide("nobody-here")
    assert status == 200 and body["customer_known"] is False
    assert {o["offer_id"] for o in body["offers"]} <= {"first_purchase_gift", "consent_prompt"}


def test_an_empty_store_says_how_to_fill_it(trained: Trained, store_url: str) -> None:
    with pytest.raises(ModelNotReady, match="nba customers load"):
        load_from_registry(_settings(trained, store_url, "store"))


def test_the_staff_lookup_reads_the_stored_profile(served: Served) -> None:
    customer_id, profile = served.store.profiles.sample(1)[0]
    client = served.app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    found = client.get(f"/v1/customers/{customer_id}", headers=auth)
    missing = client.get("/v1/customers/nobody-here", headers=auth)

    assert found.status_code == 200
    assert found.get_json()["customer_id"] == customer_id
    assert found.get_json()["loyalty_tier"] == profile.get("loyalty_tier")
    assert missing.status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("post", "/v1/decisions", {"customer_id": "C\u00001", "channel": "web"}, "customer_id"),
    ("post", "/v1/decisions", {"session_id": "s\u0000", "channel": "web"}, "session_id"),
    ("post", "/v1/decisions:batch", {"customer_ids": ["C0000001", "\u0000"], "channel": "web"},
     "customer_ids.1"),
    ("post", "/v1/outcomes", {"decision_id": "\u0000", "event": "purchased"}, "decision_id"),
    ("put", "/v1/inventory", {"rows": [{"sku": "SKU\u0000", "on_hand": 1}]}, "rows.0.sku"),
    ("post", "/v1/events", {"events": [{"event_id": "e\n1", "customer_id": "C0000001",
                                        "type": "consent", "contactable": False,
                                        "occurred_at": "2026-03-01T10:05:00Z"}]},
     "events.0.event_id"),
    ("post", "/v1/staff/explain", {"customer_id": "\u0000", "offers": []}, "customer_id"),
    ("get", "/v1/customers/%00", None, "customer id or card"),
])
def test_a_control_character_in_an_id_is_a_400_and_the_store_stays_up(
        served: Served, method: str, path: str, body: dict | None, field: str) -> None:
    """PostgreSQL refuses NUL in text: let through, it was a 503 whose failures opened the
    state store's breaker for every client."""
    client = served.app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for _ in range(6):  # more than the breaker's failure threshold
        response = getattr(client, method)(path, json=body, headers=auth)
        assert response.status_code == 400, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request" and field in error["message"]
        assert "control characters" in error["message"]
    status, decided = served.decide("C0000001")
    assert status == 200, decided


def _events(served: Served, *events: dict) -> tuple[int, dict]:
    response = served.app.test_client().post(
        "/v1/events", json={"events": list(events)},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return response.status_code, response.get_json()


def _contactable(served: Served) -> str:
    return next(cid for cid, p in served.store.profiles.sample(200)
                if p.get("contactable") is not False)


def test_a_consent_withdrawal_stops_offers_on_the_very_next_request(served: Served) -> None:
    customer_id = _contactable(served)
    assert [o for o in served.decide(customer_id)[1]["offers"] if o["action"] == "offer"]
    withdrawal = {"event_id": "ev-1", "customer_id": customer_id, "type": "consent",
                  "occurred_at": NOW.isoformat(), "contactable": False}

    status, body = _events(served, withdrawal)
    decided, after = served.decide(customer_id)

    assert status == 200 and body["applied"] == 1
    assert decided == 200 and after["offers"] == []
    assert {s["reason"] for s in after["suppressed"]} == {"not_contactable"}
    assert _events(served, withdrawal)[1]["results"] == [{"event_id": "ev-1",
                                                           "status": "duplicate"}]


def test_a_purchase_reaches_the_features_of_the_next_decision(served: Served) -> None:
    customer_id = _contactable(served)
    before = served.store.profiles.get(customer_id)
    assert before is not None
    purchase = {"event_id": "ev-2", "customer_id": customer_id, "type": "purchase",
                "occurred_at": NOW.isoformat(), "amount": 80.0}

    assert _events(served, purchase)[0] == 200
    _, body = served.decide(customer_id)

    logged = served.store.log.get(body["decision_id"])
    assert logged is not None
    assert logged.features["frequency"] == before["frequency"] + 1
    assert logged.features["recency_days"] == 0


@pytest.mark.parametrize(("event", "field"), [
    ({"type": "purchase"}, "events.1"),  # no amount
    ({"type": "consent"}, "events.1"),  # no contactable
    ({"type": "purchase", "amount": -1}, "events.1.amount"),
    ({"type": "refund", "amount": 1}, "events.1.type"),
    ({"type": "sign_up", "occurred_at": "2026-03-01T12:00:00"}, "events.1.occurred_at"),
    ({"type": "sign_up", "occurred_at": "2999-01-01T00:00:00Z"}, "events.1.occurred_at"),
    # aware and in range in their own offset, out of range in UTC: a 400, not an overflow
    ({"type": "sign_up", "occurred_at": "0001-01-01T00:00:00+05:00"}, "events.1.occurred_at"),
    ({"type": "sign_up", "occurred_at": "9999-12-31T23:00:00-05:00"}, "events.1.occurred_at"),
])
def test_a_bad_event_is_a_400_naming_the_field_and_nothing_is_applied(
        served: Served, event: dict, field: str) -> None:
    good = {"event_id": "ok", "customer_id": "new-1", "type": "sign_up",
            "occurred_at": NOW.isoformat()}
    bad = {**good, "event_id": "bad", **event}

    status, body = _events(served, good, bad)

    assert status == 400 and body["error"]["code"] == "invalid_request"
    assert field in body["error"]["message"]
    assert served.store.profiles.get("new-1") is None


def test_events_to_a_service_reading_a_file_are_refused(client) -> None:
    response = client.post("/v1/events", json={"events": [
        {"event_id": "e", "customer_id": "c", "type": "sign_up",
         "occurred_at": NOW.isoformat()}]})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "events_not_served"


def test_a_walk_in_card_registered_on_the_staff_page_is_a_known_customer_next(
        served: Served, client) -> None:
    staff = served.app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    created = staff.post("/v1/staff/register", json={"card": "77-0012 9", "contactable": True},
                         headers=auth)
    again = staff.post("/v1/staff/register", json={"card": "770012 9"}, headers=auth)
    bad = staff.post("/v1/staff/register", json={"card": "<script>"}, headers=auth)
    found = staff.get("/v1/customers/77 0012-9", headers=auth)
    status, decided = served.decide("7700129")

    assert created.status_code == 201 and created.get_json()["customer_id"] == "7700129"
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "card_taken"
    assert bad.status_code == 400 and "card" in bad.get_json()["error"]["message"]
    assert found.status_code == 200 and found.get_json()["matched_by"] == "loyalty_card"
    assert status == 200 and decided["customer_known"] is True
    profile = served.store.profiles.get("7700129")
    assert profile is not None and profile["loyalty_card"] == "77-0012 9"
    assert profile["channel"] == "store" and profile["contactable"] is True
    # a service reading customers from the file would lose the profile: it refuses
    refused = client.post("/v1/staff/register", json={"card": "1234"})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "events_not_served"


def test_auto_reads_customers_from_the_store_once_it_holds_profiles(trained: Trained,
                                                                     store_url: str) -> None:
    settings = _settings(trained, store_url, "auto")
    assert ServiceSettings.from_env({}).customers_from == "auto"  # the service's default
    assert not load_from_registry(settings).from_store  # an empty store: the file

    with open_store(store_url) as store:
        store.profiles.replace(profile_documents(io.read_customers(
            trained.data_dir / io.CUSTOMERS).head(50)), now=NOW)

    assert load_from_registry(settings).from_store
