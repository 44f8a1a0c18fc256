"""The HTTP API through Flask's test client, serving a really trained champion."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features import io


def post(client, body, **kwargs):
    return client.post("/v1/decisions", json=body, **kwargs)


@pytest.fixture(scope="module")
def customers(trained) -> pd.DataFrame:
    return io.read_customers(trained.data_dir / io.CUSTOMERS)


def test_decision_ranks_offers_and_accounts_for_every_offer(client, loaded, customers):
    customer_id = customers.loc[customers["contactable"], "customer_id"].iloc[0]
    response = post(client, {"customer_id": customer_id, "channel": "web", "limit": 3})
    assert response.status_code == 200
    body = response.get_json()
    assert body["customer_id"] == customer_id
    assert body["model"] == {"name": loaded.name, "version": loaded.version}
    assert len(body["decision_id"]) == 32
    values = [o["expected_incremental_value"] for o in body["offers"]]
    assert values == sorted(values, reverse=True) and all(v > 0 for v in values)
    assert [o["rank"] for o in body["offers"]] == list(range(1, len(values) + 1))
    assert all(o["reasons"] for o in body["offers"])
    seen = [o["offer_id"] for o in body["offers"]] + [s["offer_id"] for s in body["suppressed"]]
    assert sorted(seen) == sorted(loaded.policy.catalog.offer_ids)


def test_decision_matches_the_models_uplift(client, loaded, customers):
    customer_id = customers["customer_id"].iloc[5]
    body = post(client, {"customer_id": customer_id, "channel": "app", "limit": 20}).get_json()
    row = loaded.customers.row(customer_id)
    uplift, _, _ = loaded.policy.score(loaded.customers.matrix[row:row + 1])
    ids = loaded.policy.catalog.offer_ids
    for offer in body["offers"]:
        assert offer["uplift"] == pytest.approx(uplift[0, ids.index(offer["offer_id"])],
                                                abs=1e-6)


def test_not_contactable_customer_is_suppressed_everywhere(client, customers):
    customer_id = customers.loc[~customers["contactable"], "customer_id"].iloc[0]
    body = post(client, {"customer_id": customer_id, "channel": "web"}).get_json()
    assert body["offers"] == []
    assert {s["reason"] for s in body["suppressed"]} == {"not_contactable"}


def test_low_value_customer_is_below_the_derived_launch_floor(client, customers):
    eligible = customers[customers["contactable"]
                         & customers["loyalty_tier"].isin(["silver", "gold", "platinum"])]
    lowest = eligible.sort_values("customer_value")["customer_id"].iloc[0]
    body = post(client, {"customer_id": lowest, "channel": "web", "limit": 20}).get_json()
    sneaker = next(s for s in body["suppressed"]
                   if s["offer_id"] == "collab_sneaker_early_access")
    assert sneaker["reason"] == "below_value_threshold"
    assert "current launch floor" in sneaker["message"]
    assert "500 of 500 units left" in sneaker["message"]


@pytest.mark.parametrize(("body", "status", "code", "mentions"), [
    ({"channel": "web"}, 400, "invalid_request", "customer_id"),
    ({"customer_id": "C0000001", "channel": "fax"}, 400, "invalid_request", "unknown channel"),
    ({"customer_id": "C0000001", "channel": "web", "limit": 0}, 400, "invalid_request", "limit"),
    ({"customer_id": "C0000001", "channel": "web", "limit": 21}, 400, "invalid_request", "limit"),
    ({"customer_id": "C0000001", "channel": "web", "limit": "many"}, 400, "invalid_request",
     "limit"),
    ({"customer_id": 17, "channel": "web"}, 400, "invalid_request", "customer_id"),
    ({"customer_id": "C0000001", "channel": "web", "colour": "red"}, 400, "invalid_request",
     "colour"),
    ({"customer_id": "C0000001", "channel": "web", "context": []}, 400, "invalid_request",
     "context"),
    ({"customer_id": "C0000001", "session_id": "s1", "channel": "web"}, 400,
     "invalid_request", "exactly one of customer_id"),
    ({"session_id": "s1", "channel": "web", "context": {"cart_value": -1}}, 400,
     "invalid_request", "context.cart_value"),
    ({"session_id": "s1", "channel": "web", "context": {"device": "toaster"}}, 400,
     "invalid_request", "context.device"),
    ([1, 2], 400, "invalid_request", "must be a JSON object, got an array"),
    ("C0000001", 400, "invalid_request", "must be a JSON object, got a string"),
    ({"customer_id": "C0000001", "channel": "web", "limit": True}, 400, "invalid_request",
     "limit: Value error, must be a whole number from 1 to 20, not true/false"),
    ({"customer_id": "C0000001", "channel": "web", "limit": "3"}, 400, "invalid_request",
     "limit: Value error, must be a whole number from 1 to 20, not a string"),
    ({"session_id": "s1", "channel": "web", "context": {"cart_value": math.nan}}, 400,
     "invalid_request", "context.cart_value: Input should be a finite number"),
    ({"session_id": "s1", "channel": "web", "context": {"cart_value": -math.inf}}, 400,
     "invalid_request", "context.cart_value: Input should be a finite number"),
])
def test_bad_requests_get_a_4xx_json_error_naming_the_problem(client, body, status, code,
                                                              mentions):
    response = post(client, body)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code
    assert mentions in error["message"]


@pytest.mark.parametrize(("raw", "said"), [(b"null", "got null"), (b"true", "got true/false"),
                                           (b"1.5", "got a number")])
def test_a_body_that_is_not_an_object_is_named_in_json_words(client, raw, said):
    """`null` was "got NoneType"."""
    response = client.post("/v1/decisions", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == f"request body must be a JSON object, {said}"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"null", b"\xff\xfe"])
def test_malformed_json_is_a_400(client, raw):
    response = client.post("/v1/decisions", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_unknown_route_and_wrong_method_are_json(client):
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"
    response = client.get("/v1/decisions")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_health_ready_and_model_endpoints(client, loaded):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["model"]["version"] == loaded.version
    model = client.get("/v1/model").get_json()
    assert model["alias"] == "champion" and model["version"] == loaded.version
    assert model["run_id"] and "policy_value_learned_uplift_policy" in model["metrics"]


def test_service_without_a_champion_is_not_ready_and_says_why(tmp_path, trained):
    from service import create_app
    from service.settings import ServiceSettings

    app = create_app(ServiceSettings(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}",
                                     data_dir=trained.data_dir, retry_seconds=0.0,
                                     dev_mode=True,
                                     state_url=f"sqlite:///{tmp_path / 'state.db'}"))
    client = app.test_client()
    ready = client.get("/readyz")
    error = ready.get_json()["error"]
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    assert error["code"] == "model_not_ready" and "nba train" in error["message"]
    assert "nba train" in error["details"]["model"]
    assert "state_store" not in error["details"]  # the store answers
    response = post(client, {"customer_id": "C0000001", "channel": "web"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "model_not_ready"
    assert not (tmp_path / "empty.db").exists()  # the service never creates a registry


def test_batch_decides_every_customer_in_order_and_new_ones_too(client, customers, state):
    ids = customers.loc[customers["contactable"], "customer_id"].head(5).tolist()
    response = client.post("/v1/decisions:batch", json={
        "customer_ids": [ids[0], "nobody", *ids[1:]], "channel": "app", "limit": 2})
    assert response.status_code == 200
    decisions = response.get_json()["decisions"]
    assert [d["customer_id"] for d in decisions] == [ids[0], "nobody", *ids[1:]]
    assert [d["customer_known"] for d in decisions] == [True, False, True, True, True, True]
    assert all(len(d["offers"]) <= 2 for d in decisions if "offers" in d)
    logged = set(state.log.decisions_frame()["decision_id"])
    assert {d["decision_id"] for d in decisions if "decision_id" in d} == logged


@pytest.mark.parametrize(("body", "mentions"), [
    ({"customer_ids": [], "channel": "web"}, "customer_ids"),
    ({"customer_ids": ["C1"] * 1001, "channel": "web"}, "customer_ids"),
    ({"customer_ids": [""], "channel": "web"}, "customer_ids.0"),
    ({"customer_ids": ["C0000001"], "channel": "fax"}, "unknown channel"),
])
def test_bad_batches_are_a_400_naming_the_field(client, body, mentions):
    response = client.post("/v1/decisions:batch", json=body)
    assert response.status_code == 400 and mentions in response.get_json()["error"]["message"]
