"""A missing or broken registry is an error the service retries; it never creates one, and each
worker recovers by itself when the registry is back, with last_reload_error telling the truth.

Before (issue 14): a worker started while the SQLite registry was missing created an empty
mlflow.db and kept its handle on it; with the file truncated and restored, workers kept failing
("no such table") until restarted, with last_reload_error null.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults.conftest import serve, wait_until
from tests.integration.servers import call

pytestmark = [pytest.mark.slow, pytest.mark.solo]


def every_worker(base: str, check, workers: int = 2, tries: int = 40) -> bool:
    """True when `check(/v1/model body)` holds for answers from `workers` distinct workers."""
    seen: dict[int, bool] = {}
    for _ in range(tries):
        status, body = call(f"{base}/v1/model")
        if status == 200:
            seen[body["worker_pid"]] = bool(check(body))
    return len(seen) >= workers and all(seen.values())


def test_a_worker_started_without_the_registry_never_creates_it_and_recovers(
        base_env, sqlite_registry: Path, tmp_path: Path):
    aside = tmp_path / "aside.db"
    shutil.move(sqlite_registry, aside)
    env = base_env | {"NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    with serve(env, tmp_path / "server.log", wait_for="/healthz") as server:
        status, body = call(f"{server.base}/readyz")
        assert status == 503 and "not found" in body["error"]["details"]["model"]
        assert str(sqlite_registry) not in str(body)  # no path in a public answer
        decision = call(f"{server.base}/v1/decisions", {"customer_id": "C0000001",
                                                        "channel": "web"})
        assert decision[0] == 503 and decision[1]["error"]["code"] == "model_not_ready"
        assert not sqlite_registry.exists()  # not created, not even empty
        shutil.move(aside, sqlite_registry)
        wait_until(lambda: every_worker(server.base, lambda b: b["last_reload_error"] is None),
                   30, lambda: "\n".join(server.lines()[-20:]))
        assert call(f"{server.base}/readyz")[0] == 200


def test_a_truncated_then_restored_registry_is_reported_then_followed_again(
        base_env, sqlite_registry: Path, tmp_path: Path):
    env = base_env | {"NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    backup = tmp_path / "backup.db"
    shutil.copy(sqlite_registry, backup)
    with serve(env, tmp_path / "server.log") as server:
        wait_until(lambda: every_worker(server.base, lambda b: True), 30)  # both serve
        sqlite_registry.write_bytes(b"")  # truncated in place
        wait_until(lambda: every_worker(server.base, lambda b: "no MLflow tables" in (
            b["last_reload_error"] or {}).get("error", "")), 20)
        # still serving the loaded champion meanwhile
        assert call(f"{server.base}/v1/decisions", {"customer_id": "C0000001",
                                                    "channel": "web"})[0] == 200
        shutil.copy(backup, tmp_path / "restored.db")
        (tmp_path / "restored.db").replace(sqlite_registry)  # restored as a new file
        wait_until(lambda: every_worker(server.base, lambda b: b["last_reload_error"] is None),
                   20, lambda: "\n".join(server.lines()[-20:]))
        reload = call(f"{server.base}/v1/admin/reload", method="POST")
        assert reload[0] == 200 and reload[1]["status"] == "unchanged"


def test_a_postgres_registry_stopped_and_restarted(base_env, pg_up, pg_registry: str,
                                                  tmp_path: Path):
    env = base_env | {"MLFLOW_TRACKING_URI": pg_registry,
                      "NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    with serve(env, tmp_path / "server.log") as server:
        wait_until(lambda: every_worker(server.base, lambda b: True), 30)  # both serve
        pg_up.stop()
        wait_until(lambda: every_worker(server.base, lambda b: "registry unavailable" in (
            b["last_reload_error"] or {}).get("error", "")), 20)
        assert call(f"{server.base}/v1/decisions", {"customer_id": "C0000001",
                                                    "channel": "web"})[0] == 200
        pg_up.start()
        wait_until(lambda: every_worker(server.base, lambda b: b["last_reload_error"] is None),
                   30, lambda: "\n".join(server.lines()[-20:]))
        assert call(f"{server.base}/v1/admin/reload", method="POST")[0] == 200
