"""The fault suite's fixtures: its own PostgreSQL and Redis, registries, and `nba serve`."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Trained
from tests.faults.dependencies import Postgres, Redis
from tests.integration.servers import NBA, call, free_port

MODEL = "nba-policy"


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL server of the suite's own (tests that freeze or stop it bring it back)."""
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_up(pg: Postgres) -> Iterator[Postgres]:
    """The suite's PostgreSQL, running; thawed and running again after the test whatever it did."""
    if pg.process is None or pg.process.poll() is not None:
        pg.start()
    yield pg
    pg.thaw()
    if pg.process is None or pg.process.poll() is not None:
        pg.start()


@pytest.fixture
def state_url(pg_up: Postgres) -> str:
    """A fresh state-store database on the suite's PostgreSQL."""
    name = f"state_{uuid.uuid4().hex[:12]}"
    pg_up.create_database(name)
    return pg_up.url(name)


@pytest.fixture(scope="session")
def pg_registry(pg: Postgres, trained: Trained) -> str:
    """A registry database on the suite's PostgreSQL: the trained champion registered again
    (same model files), for the name `nba-policy`. Returns its URL without password."""
    from training import registry

    pg.create_database("nba_registry")
    url = pg.url("nba_registry")
    source_client = registry.configure(trained.tracking_uri)
    files = source_client.get_model_version_download_uri(MODEL, trained.version)
    client = registry.configure(url)  # MLflow creates its tables: this is `nba train`'s part
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, source=files, run_id=None)
    registry.set_alias(client, MODEL, version.version)
    registry.configure(trained.tracking_uri)  # leave MLflow's globals as the suite expects
    return url


@pytest.fixture
def sqlite_registry(trained: Trained, tmp_path: Path) -> Path:
    """A copy of the trained registry database (its model files stay where they are)."""
    path = tmp_path / "registry" / "mlflow.db"
    path.parent.mkdir()
    shutil.copy(trained.root / "mlflow.db", path)
    return path


@pytest.fixture
def redis_server() -> Iterator[Redis]:
    """A Redis of the test's own, stopped afterwards."""
    server = Redis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Served:
    """A running `nba serve`: its URL, process (the gunicorn master) and log."""

    base: str
    port: int
    process: subprocess.Popen
    log: Path

    def lines(self) -> list[str]:
        """The log so far (gunicorn, nginx and the app: one stream)."""
        return self.log.read_text(errors="replace").splitlines()


@contextmanager
def serve(env: dict[str, str], log: Path, *, workers: int = 2, wait_for: str | None = "/readyz",
          port: int | None = None) -> Iterator[Served]:
    """`nba serve` on a free port with `env`; stopped (SIGTERM, then SIGKILL) afterwards."""
    port = port or free_port()
    with open(log, "a") as out:
        process = subprocess.Popen([NBA, "serve", "--port", str(port), "--workers", str(workers)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", port, process, log)
    try:
        if wait_for is not None:
            wait_until(lambda: _status(served.base + wait_for) == 200, 90,
                       lambda: f"not ready:\n{log.read_text()[-3000:]}", process)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _status(url: str) -> int | None:
    try:
        return call(url)[0]
    except (OSError, ValueError):
        return None


def wait_until(condition, timeout: float, why=lambda: "timed out",
               process: subprocess.Popen | None = None) -> None:
    """Poll `condition` every 0.2 s; fail with `why()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"the server exited: {why()}")
        time.sleep(0.2)
    pytest.fail(why())


@pytest.fixture
def base_env(trained: Trained, sqlite_registry: Path) -> dict[str, str]:
    """Environment of a served champion: a copy of the registry, polling every second."""
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NBA_", "MLFLOW_TRACKING_URI", "GUNICORN_CMD_ARGS"))}
    return env | {"MLFLOW_TRACKING_URI": f"sqlite:///{sqlite_registry}",
                  "NBA_DATA_DIR": str(trained.data_dir), "NBA_POLL_SECONDS": "1",
                  "NBA_RETRY_SECONDS": "1", "NBA_DEV_MODE": "1", "NBA_ACCESS_LOG": "",
                  "NBA_STATE_TIMEOUT": "1", "NBA_EXPLORATION": "0.1"}
