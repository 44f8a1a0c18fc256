"""Hot reload: moving the champion alias swaps the model in every gunicorn worker, no request lost.

The gunicorn test works on its own registered model name (versions registered from the session
champion's artifacts), so the shared `trained` registry's champion never moves.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from service import create_app
from service.model_store import ModelStore
from service.settings import ServiceSettings
from tests.integration.servers import call, gunicorn
from training import registry

pytestmark = pytest.mark.slow  # the real trained registry; one test runs gunicorn

TOKEN = "hot-reload-test-token-4f1c"
POLL_SECONDS = 1


# ------------------------------------------------------------------ admin endpoint, test client

def admin_app(loaded, token: str | None, probe=None, loader=None):
    store = ModelStore(loader or (lambda: loaded), probe=probe or (lambda: loaded.version))
    store.try_load()
    return create_app(ServiceSettings(poll_seconds=0, admin_token=token), store=store)


def reload(client, authorization: str | None = None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.post("/v1/admin/reload", headers=headers)


def test_admin_reload_is_forbidden_without_a_configured_token(loaded):
    response = reload(admin_app(loaded, None).test_client(), f"Bearer {TOKEN}")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}",
                                           f"Bearer {TOKEN}x", "Bearer tökén"])
def test_admin_reload_needs_the_right_bearer_token(loaded, authorization):
    response = reload(admin_app(loaded, TOKEN).test_client(), authorization)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.get_data(as_text=True)


def test_admin_reload_with_the_right_token_checks_the_alias_now(loaded):
    client = admin_app(loaded, TOKEN).test_client()
    for scheme in ("Bearer", "bearer"):
        response = reload(client, f"{scheme} {TOKEN}")
        assert response.status_code == 200
        body = response.get_json()
        assert body["status"] == "unchanged" and body["version"] == loaded.version


def test_admin_reload_reports_a_rejected_version_and_keeps_serving(loaded):
    def broken() -> None:
        raise FileNotFoundError("no MLmodel")

    app = admin_app(loaded, TOKEN, probe=lambda: "999")
    app.extensions["nba.model_store"]._loader = broken
    client = app.test_client()
    response = reload(client, f"Bearer {TOKEN}")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "reload_failed" and "no MLmodel" in error["message"]
    assert error["details"]["version"] == "999"
    assert error["details"]["serving_version"] == loaded.version
    model = client.get("/v1/model").get_json()
    assert model["version"] == loaded.version
    assert model["last_reload_error"]["version"] == "999"


# ------------------------------------------------------------------ real gunicorn, moving alias

class Traffic:
    """A client thread posting decisions back to back, recording every outcome."""

    def __init__(self, base: str, max_seconds: float = 60.0) -> None:
        self.base = base
        self.max_seconds = max_seconds
        self.results: list[tuple[float, int, str | None]] = []  # (answered at, status, version)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(15)

    def versions_since(self, moment: float) -> set[str | None]:
        return {version for at, _, version in self.results if at >= moment}

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            i += 1
            body = {"customer_id": f"C{i % 50 + 1:07d}", "channel": "web", "limit": 3}
            try:
                status, answer = call(f"{self.base}/v1/decisions", body)
            except Exception as exc:  # a dropped connection is exactly what must not happen
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            version = answer.get("model", {}).get("version") if status == 200 else None
            self.results.append((time.monotonic(), status, version))
            if status != 200:
                self.failures.append(f"{status}: {answer}")


def model_infos(base: str, n: int = 8) -> list[dict]:
    """`n` concurrent GET /v1/model, so that every worker gets some."""
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: call(f"{base}/v1/model"), range(n)))
    assert all(status == 200 for status, _ in results), results
    return [body for _, body in results]


def wait_for_workers(base: str, done, workers: set[int], seconds: float = 30.0) -> None:
    """Poll /v1/model until `done(body)` holds for the last 12 answers of every worker."""
    streak = {pid: 0 for pid in workers}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for body in model_infos(base):
            assert body["worker_pid"] in workers, "a worker was restarted: not a hot reload"
            streak[body["worker_pid"]] = streak[body["worker_pid"]] + 1 if done(body) else 0
        if min(streak.values()) >= 12:
            return
        time.sleep(0.1)
    pytest.fail(f"workers did not converge in {seconds}s: {streak}")


@pytest.mark.slow
@pytest.mark.solo
def test_moving_the_alias_hot_swaps_every_worker_without_dropping_a_request(trained,
                                                                            tmp_path) -> None:
    # configure, not a bare MlflowClient: MLflow resolves a `models:/m-...` source through the
    # global tracking URI, which earlier tests may have pointed at another store
    client = registry.configure(trained.tracking_uri)
    champion = registry.get_alias(client, trained.model_name)
    assert champion is not None
    name = f"nba-hot-reload-{uuid.uuid4().hex[:8]}"  # our own model: the shared one never moves
    client.create_registered_model(name)

    def register(source: str) -> str:
        return str(client.create_model_version(name, source=source,
                                               run_id=champion.run_id).version)

    first = register(champion.source)
    registry.set_alias(client, name, first)
    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri, "NBA_MODEL_NAME": name,
                        "NBA_DATA_DIR": str(trained.data_dir), "NBA_ACCESS_LOG": "",
                        "NBA_POLL_SECONDS": str(POLL_SECONDS), "NBA_ADMIN_TOKEN": TOKEN}
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(env, log_path) as base:
        workers: set[int] = set()
        deadline = time.monotonic() + 20
        while len(workers) < 2 and time.monotonic() < deadline:
            workers |= {body["worker_pid"] for body in model_infos(base)}
        assert len(workers) == 2, "could not reach both workers"

        with Traffic(base) as traffic:
            time.sleep(0.5)
            second = register(champion.source)
            registry.set_alias(client, name, second)
            wait_for_workers(base, lambda b: b["version"] == second, workers)
            converged = time.monotonic()

            broken_dir = tmp_path / "broken-model"
            broken_dir.mkdir()
            broken = register(str(broken_dir))
            registry.set_alias(client, name, broken)
            wait_for_workers(base, lambda b: (b["last_reload_error"] or {}).get("version")
                             == broken, workers, seconds=20)
            for body in model_infos(base):
                assert body["version"] == second
                assert "MLmodel" in body["last_reload_error"]["error"]

            status, answer = call(f"{base}/v1/admin/reload", method="POST",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 409 and answer["error"]["details"]["version"] == broken
            assert answer["error"]["details"]["serving_version"] == second
            status, answer = call(f"{base}/v1/admin/reload", method="POST",
                                  headers={"Authorization": "Bearer nope"})
            assert status == 401

            registry.set_alias(client, name, second)  # roll back: the error is history
            wait_for_workers(base, lambda b: b["last_reload_error"] is None, workers, 20)
            time.sleep(0.3)

        assert traffic.failures == []
        assert len(traffic.results) > 50
        assert traffic.versions_since(converged) == {second}
        assert {first, second} <= traffic.versions_since(0)
    log = log_path.read_text()
    assert f"model version {broken} rejected, still serving {second}" in log
    assert TOKEN not in log
