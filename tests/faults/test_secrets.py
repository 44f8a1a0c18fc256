"""No password in any answer or log line; no internal host, port, user or database in public
answers. A real server with passworded URLs for the registry, the state store and Redis
(trust auth accepts any password; Redis requires this one), through good times and outages.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import STOREFRONT_KEY
from tests.faults.conftest import serve, wait_until
from tests.faults.dependencies import Redis

pytestmark = [pytest.mark.slow, pytest.mark.solo]
PASSWORD = "Pw-5ecret-7q2x9"
USER = "nba_secret_user"
STATE_DB = "nba_secret_state"


def fetch(url: str, body: dict | None = None, headers: dict | None = None,
          method: str | None = None, raw: bytes | None = None) -> tuple[int, str]:
    """(status, headers and body as text) of any answer."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, f"{response.headers}\n{response.read().decode()}"
    except urllib.error.HTTPError as error:
        return error.code, f"{error.headers}\n{error.read().decode()}"


def test_no_password_anywhere_and_no_internal_address_in_public_answers(
        base_env, pg_up, pg_registry: str, tmp_path: Path):
    pg_up.create_database(STATE_DB, owner=USER)
    redis_server = Redis(password=PASSWORD)
    redis_server.start()
    registry = pg_registry.replace("postgresql://postgres@",
                                   f"postgresql://postgres:{PASSWORD}@")
    state = pg_up.url(STATE_DB, USER, PASSWORD)
    env = base_env | {"MLFLOW_TRACKING_URI": registry, "NBA_STATE_URL": state,
                      "NBA_REDIS_URL": redis_server.url, "NBA_DEV_MODE": "0",
                      "NBA_API_KEYS": f"storefront:{STOREFRONT_KEY}", "NBA_RATE_LIMIT": "50"}
    auth = {"Authorization": f"Bearer {STOREFRONT_KEY}"}
    answers: list[tuple[str, int, str]] = []

    def ask(path: str, **kwargs) -> int:
        status, text = fetch(server.base + path, **kwargs)
        answers.append((path, status, text))
        return status

    def round_of_requests() -> None:
        for path in ("/healthz", "/readyz", "/v1/model", "/metrics", "/openapi.json", "/staff",
                     "/nope"):
            ask(path)
        ask("/v1/decisions", body={"customer_id": "C0000001", "channel": "web"}, headers=auth)
        ask("/v1/decisions", raw=b"{not json", headers=auth)
        ask("/v1/outcomes", body={"decision_id": "x", "event": "shown"}, headers=auth)
        ask("/v1/admin/reload", method="POST", headers=auth)

    try:
        with serve(env, tmp_path / "server.log") as server:
            round_of_requests()
            redis_server.freeze()
            round_of_requests()
            redis_server.stop()
            round_of_requests()
            pg_up.stop()  # registry and state store at once
            time.sleep(3)  # pollers fail meanwhile
            round_of_requests()
            pg_up.start()
            wait_until(lambda: ask("/readyz") == 200, 30)
            round_of_requests()
    finally:
        redis_server.stop()
    statuses = {status for _, status, _ in answers}
    assert {200, 503} <= statuses  # good times and outages were both seen
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert PASSWORD not in log
    for path, status, text in answers:
        assert PASSWORD not in text, (path, status)
        for private in (USER, STATE_DB, "nba_registry", str(pg_up.port),
                        str(redis_server.port)):
            assert private not in text, (path, status, private, text[-500:])
