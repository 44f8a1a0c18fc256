"""Live state through the API: launch holds, stock updates, outcomes and contact caps.

The app fixture gives every test a fresh SQLite state store holding the demo inventory.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from features import io
from tests.conftest import ADMIN_TOKEN

SNEAKER = "collab_sneaker_early_access"
SKU = "SNK-COLLAB-01"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def decide(client, customer_id: str, limit: int = 20, channel: str = "web") -> dict:
    response = client.post("/v1/decisions", json={"customer_id": customer_id,
                                                  "channel": channel, "limit": limit})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def offer_of(body: dict, offer_id: str) -> dict | None:
    return next((o for o in body["offers"] if o["offer_id"] == offer_id), None)


def reason_of(body: dict, offer_id: str) -> dict | None:
    return next((s for s in body["suppressed"] if s["offer_id"] == offer_id), None)


@pytest.fixture(scope="module")
def customers(trained) -> pd.DataFrame:
    return io.read_customers(trained.data_dir / io.CUSTOMERS)


@pytest.fixture(scope="module")
def sneaker_fans(customers, loaded) -> list[str]:
    """High-value loyal customers whose best offers include the sneaker launch (model's view)."""
    loyal = customers[customers["contactable"]
                      & customers["loyalty_tier"].isin(["gold", "platinum"])]
    ids = loyal.sort_values("customer_value", ascending=False)["customer_id"].head(400)
    index = loaded.policy.catalog.offer_ids.index(SNEAKER)
    fans = []
    for customer_id in ids:
        row = loaded.customers.row(customer_id)
        uplift, _, _ = loaded.policy.score(loaded.customers.matrix[row:row + 1])
        if uplift[0, index] * 48.0 - 0.05 > 0:
            fans.append(customer_id)
    assert len(fans) >= 5, "the demo model should see sneaker uplift in loyal customers"
    return fans


def in_stock_fan(client, fans: list[str]) -> tuple[str, dict]:
    """The first fan who is shown the sneaker (their size is in stock online)."""
    for customer_id in fans:
        body = decide(client, customer_id)
        if offer_of(body, SNEAKER) is not None:
            return customer_id, body
    pytest.fail("no fan was shown the sneaker")


def test_a_launch_offer_shown_holds_one_unit_for_the_customer(client, sneaker_fans, state):
    customer_id, body = in_stock_fan(client, sneaker_fans)
    sneaker = offer_of(body, SNEAKER)
    assert sneaker["action"] == "offer"
    assert sneaker["reservation"]["reservation_id"]
    assert any("units left" in r["message"] for r in sneaker["reasons"])
    counts = state.launch_counts(SNEAKER, now=datetime.now(UTC))
    assert (counts.reserved, counts.confirmed) == (1, 0)
    again = offer_of(decide(client, customer_id), SNEAKER)
    assert again["reservation"]["reservation_id"] == sneaker["reservation"]["reservation_id"]
    assert state.launch_counts(SNEAKER, now=datetime.now(UTC)).reserved == 1


def test_outcomes_confirm_or_release_the_hold(client, sneaker_fans, state):
    customer_id, body = in_stock_fan(client, sneaker_fans)
    accepted = client.post("/v1/outcomes", json={"decision_id": body["decision_id"],
                                                 "offer_id": SNEAKER, "event": "purchased",
                                                 "revenue": 180.0})
    assert accepted.status_code == 200
    assert accepted.get_json()["reservation"]["status"] == "confirmed"
    counts = state.launch_counts(SNEAKER, now=datetime.now(UTC))
    assert (counts.reserved, counts.confirmed) == (0, 1)

    other, second = in_stock_fan(client, [c for c in sneaker_fans if c != customer_id])
    declined = client.post("/v1/outcomes", json={"decision_id": second["decision_id"],
                                                 "offer_id": SNEAKER, "event": "declined"})
    assert declined.get_json()["reservation"]["status"] == "released"
    counts = state.launch_counts(SNEAKER, now=datetime.now(UTC))
    assert (counts.reserved, counts.confirmed) == (0, 1)


def test_declined_twice_the_offer_is_capped_and_a_repeated_event_counts_once(client,
                                                                            sneaker_fans):
    customer_id, body = in_stock_fan(client, sneaker_fans)
    decline = {"decision_id": body["decision_id"], "offer_id": SNEAKER, "event": "declined"}
    first, repeat = client.post("/v1/outcomes", json=decline), client.post("/v1/outcomes",
                                                                          json=decline)
    assert first.get_json()["recorded"] is True and repeat.get_json()["recorded"] is False
    second = decide(client, customer_id)
    assert offer_of(second, SNEAKER) is not None  # one decline: not capped yet
    assert client.post("/v1/outcomes", json=decline | {
        "decision_id": second["decision_id"]}).get_json()["recorded"] is True
    capped = reason_of(decide(client, customer_id), SNEAKER)
    assert capped["reason"] == "contact_cap" and "declined 2 times" in capped["message"]


def test_contact_cap_counts_offers_per_channel_across_requests(client, customers):
    customer_id = customers.loc[customers["contactable"], "customer_id"].iloc[3]
    shown = 0
    for _ in range(6):
        shown += len(decide(client, customer_id, limit=3)["offers"])
    assert shown == 9  # the demo cap: 9 offers per channel per 24 h
    last = decide(client, customer_id, limit=3)
    assert last["offers"] == []
    assert "contact_cap" in {s["reason"] for s in last["suppressed"]}
    assert decide(client, customer_id, limit=3, channel="app")["offers"]  # other channel: fresh


def test_stock_update_is_seen_by_the_next_decision_and_falls_back_to_the_waitlist(
        client, sneaker_fans, customers):
    customer_id, body = in_stock_fan(client, sneaker_fans)
    size = customers.set_index("customer_id").loc[customer_id, "preferred_size"]
    response = client.put("/v1/inventory", headers=ADMIN, json={"rows": [
        {"sku": SKU, "size": size, "on_hand": 0}]})
    assert response.status_code == 200 and response.get_json()["updated"] == 1
    after = decide(client, customer_id)
    waitlist = offer_of(after, SNEAKER)
    assert waitlist is not None and waitlist["action"] == "waitlist"
    assert waitlist["reservation"] is None
    assert any("re-stock waiting list" in r["message"] for r in waitlist["reasons"])


@pytest.mark.parametrize(("body", "mentions"), [
    ({}, "rows"),
    ({"rows": []}, "rows"),
    ({"rows": [{"sku": SKU, "on_hand": -1}]}, "rows.0.on_hand"),
    ({"rows": [{"sku": SKU, "on_hand": "many"}]}, "rows.0.on_hand"),
    ({"rows": [{"on_hand": 3}]}, "rows.0.sku"),
    ({"rows": [{"sku": SKU, "on_hand": 1, "aisle": 4}]}, "aisle"),
])
def test_bad_inventory_updates_are_a_400_naming_the_field(client, body, mentions):
    response = client.put("/v1/inventory", headers=ADMIN, json=body)
    assert response.status_code == 400
    assert mentions in response.get_json()["error"]["message"]


def test_duplicate_rows_in_one_update_are_a_400(client):
    row = {"sku": SKU, "size": "42", "on_hand": 1}
    response = client.put("/v1/inventory", headers=ADMIN, json={"rows": [row, row]})
    assert response.status_code == 400
    assert "duplicate" in response.get_json()["error"]["message"]


def test_inventory_updates_need_the_admin_role(app):
    from tests.conftest import STAFF_KEY

    anonymous = app.test_client()
    body = {"rows": [{"sku": SKU, "on_hand": 1}]}
    assert anonymous.put("/v1/inventory", json=body).status_code == 401
    wrong = anonymous.put("/v1/inventory", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    staff = anonymous.put("/v1/inventory", json=body,
                          headers={"Authorization": f"Bearer {STAFF_KEY}"})
    assert staff.status_code == 403 and "admin role" in staff.get_json()["error"]["message"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"decision_id": "nope", "offer_id": SNEAKER, "event": "accepted"}, 404,
     "unknown_decision"),
    ({"decision_id": "x", "offer_id": SNEAKER, "event": "liked"}, 400, "invalid_request"),
    ({"decision_id": "x", "offer_id": SNEAKER, "event": "purchased", "revenue": -5}, 400,
     "invalid_request"),
    ({"offer_id": SNEAKER, "event": "accepted"}, 400, "invalid_request"),
])
def test_bad_outcomes_are_a_4xx(client, body, status, code):
    response = client.post("/v1/outcomes", json=body)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_an_outcome_for_an_offer_the_decision_did_not_show_is_a_400(client, customers):
    customer_id = customers.loc[customers["contactable"], "customer_id"].iloc[0]
    body = decide(client, customer_id, limit=1)
    response = client.post("/v1/outcomes", json={"decision_id": body["decision_id"],
                                                 "offer_id": "not_shown", "event": "accepted"})
    assert response.status_code == 400
    assert "was not shown" in response.get_json()["error"]["message"]


def test_the_derived_floor_rises_as_units_run_down(client, sneaker_fans, state, customers):
    lowest = customers[customers["contactable"]
                       & customers["loyalty_tier"].isin(["silver", "gold", "platinum"])]
    probe = lowest.sort_values("customer_value")["customer_id"].iloc[0]

    def floor() -> float:
        reason = reason_of(decide(client, probe), SNEAKER)
        assert reason is not None
        message = reason["message"]
        return float(message.split("current launch floor ")[1].split(" ")[0])

    before = floor()
    now = datetime.now(UTC)
    for i in range(300):
        state.reserve(offer_id=SNEAKER, supply=500, customer_id=f"someone-{i}",
                      decision_id=f"d{i}", hold_seconds=900, now=now)
    after = floor()
    assert after > before
    assert "200 of 500 units left" in reason_of(decide(client, probe), SNEAKER)["message"]


@pytest.fixture
def experiment_client(trained, loaded, state):
    """An app with the default 5% holdout (its customers: `held_out`) and no exploration."""
    from service import create_app
    from service.model_store import ModelStore
    from service.settings import ServiceSettings

    store = ModelStore(lambda: loaded)
    store.try_load()
    settings = ServiceSettings(tracking_uri=trained.tracking_uri, data_dir=trained.data_dir,
                               holdout_share=0.05, exploration=0.0, dev_mode=True)
    return create_app(settings, store=store, state=state).test_client()


def held_out(customers, held: bool) -> list[str]:
    """Contactable customers in (or out of) the default holdout: the salted hash decides."""
    from decisioning.decision import DEFAULT_SALT
    from decisioning.experiment import in_holdout

    return [c for c in customers.loc[customers["contactable"], "customer_id"]
            if in_holdout(c, 0.05, DEFAULT_SALT) == held]


def test_holdout_customers_get_nothing_and_the_log_keeps_what_they_would_have_got(
        experiment_client, state, customers):
    held = held_out(customers, True)
    body = decide(experiment_client, held[0])
    assert body["holdout"] is True and body["offers"] == []
    assert {s["reason"] for s in body["suppressed"]} == {"holdout"}
    record = state.log.get(body["decision_id"])
    assert record.holdout and record.offer_ids == ()
    assert record.chosen_offer is not None  # the offer the policy would have served
    assert record.propensity == pytest.approx(0.05)
    purchase = experiment_client.post("/v1/outcomes", json={
        "decision_id": body["decision_id"], "offer_id": None, "event": "purchased",
        "revenue": 42.5})
    assert purchase.status_code == 200 and purchase.get_json()["recorded"] is True
    outcomes = state.log.outcomes_frame()
    assert outcomes["revenue"].tolist() == [42.5] and outcomes["offer_id"].isna().all()


def test_every_served_decision_is_logged_with_propensity_candidates_and_features(
        experiment_client, state, customers):
    customer_id = held_out(customers, False)[60]
    body = decide(experiment_client, customer_id, limit=3)
    assert body["holdout"] is False
    record = state.log.get(body["decision_id"])
    assert record.offer_ids == tuple(o["offer_id"] for o in body["offers"])
    assert record.propensity == pytest.approx(0.95 if body["offers"] else 1.0)
    assert {c.offer_id for c in record.candidates} >= set(record.offer_ids)
    assert record.features["frequency"] == int(
        customers.set_index("customer_id").loc[customer_id, "frequency"])
    assert set(record.suppressed) == {s["offer_id"] for s in body["suppressed"]}


def test_only_a_purchase_may_come_without_an_offer(client, customers):
    customer_id = customers.loc[customers["contactable"], "customer_id"].iloc[0]
    body = decide(client, customer_id, limit=1)
    response = client.post("/v1/outcomes", json={"decision_id": body["decision_id"],
                                                 "event": "accepted"})
    assert response.status_code == 400
    assert "needs an offer_id" in response.get_json()["error"]["message"]
