"""API keys and roles: 401 without a valid key, 403 when the role is too low, dev mode."""

from __future__ import annotations

import pytest

from service.auth import KeyRing, Principal, key_id
from tests.conftest import ADMIN_TOKEN, STAFF_KEY, STOREFRONT_KEY


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


DECISION = {"customer_id": "C0000002", "channel": "web"}


@pytest.mark.parametrize(("key", "decide", "outcome", "admin"), [
    (STOREFRONT_KEY, 200, 403, 403),
    (STAFF_KEY, 200, 404, 403),  # allowed: 404 is the unknown decision id
    (ADMIN_TOKEN, 200, 404, 400),  # allowed: 400 is the empty inventory body
])
def test_roles_nest_storefront_staff_admin(app, key, decide, outcome, admin):
    client = app.test_client()
    assert client.post("/v1/decisions", json=DECISION, headers=bearer(key)).status_code == decide
    response = client.post("/v1/outcomes", headers=bearer(key),
                           json={"decision_id": "nope", "offer_id": "x", "event": "shown"})
    assert response.status_code == outcome
    assert client.put("/v1/inventory", json={}, headers=bearer(key)).status_code == admin


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong-key-wrong-key",
                                    f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x",
                                    "Bearer tökén"])
def test_missing_or_wrong_keys_are_401_with_a_challenge(app, header):
    headers = {} if header is None else {"Authorization": header}
    response = app.test_client().post("/v1/decisions", json=DECISION, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "[redacted]" not in response.get_json()["error"]["message"]  # says how, in words


def test_public_endpoints_need_no_key(app):
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/model").status_code == 200


def test_keys_are_never_logged(app, caplog):
    client = app.test_client()
    with caplog.at_level("DEBUG"):
        client.post("/v1/decisions", json=DECISION, headers=bearer(STOREFRONT_KEY))
        client.post("/v1/decisions", json=DECISION, headers=bearer("wrong-key-wrong-key-1"))
    assert STOREFRONT_KEY not in caplog.text and "wrong-key-wrong-key-1" not in caplog.text


def test_key_ring_parses_env_text_and_files(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# role key\nstaff  s" + "t" * 20 + "\n\nadmin a" + "d" * 20 + "  # ops\n")
    ring = KeyRing.parse("storefront:" + "f" * 20, path, None)
    assert len(ring) == 3
    assert ring.identify("s" + "t" * 20) == Principal(key_id("s" + "t" * 20), "staff")
    assert ring.identify("nope") is None
    for bad, message in [("cashier:" + "k" * 20, "unknown role"), ("staff:short", "too short"),
                         ("staff", "role:key")]:
        with pytest.raises(ValueError, match=message):
            KeyRing.parse(bad, None, None)


def test_dev_mode_lets_keyless_requests_through_but_not_wrong_keys():
    ring = KeyRing([], dev_mode=True)
    assert ring.authenticate(None).role == "admin"
    from service.auth import Unauthorized

    with pytest.raises(Unauthorized):
        ring.authenticate("Bearer some-wrong-key-123456")


def test_without_keys_and_without_dev_mode_protected_endpoints_are_403(trained, loaded, state):
    from service import create_app
    from service.model_store import ModelStore
    from service.settings import ServiceSettings

    store = ModelStore(lambda: loaded)
    store.try_load()
    app = create_app(ServiceSettings(tracking_uri=trained.tracking_uri,
                                     data_dir=trained.data_dir), store=store, state=state)
    response = app.test_client().post("/v1/decisions", json=DECISION)
    assert response.status_code == 403
    assert "NBA_API_KEYS" in response.get_json()["error"]["message"]


def test_reports_need_the_staff_role(app):
    client = app.test_client()
    path = "/v1/reports/incrementality"
    assert client.get(path, headers=bearer(STOREFRONT_KEY)).status_code == 403
    assert client.get(path, headers=bearer(STAFF_KEY)).status_code == 404  # empty log
