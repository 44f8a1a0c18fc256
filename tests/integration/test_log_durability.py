"""Every decision a client received is in the log, even when a worker is killed mid-load.

The log entry is committed before the response is written, so a `kill -9` can lose a request
in flight (the client sees a broken connection) but never a decision the client got.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from state import open_store
from tests.integration.servers import call, gunicorn

pytestmark = pytest.mark.slow
CLIENTS = 8


@pytest.mark.solo  # kill -9 under load: a wall-clock budget, alone under xdist
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_of_a_worker_loses_no_decision_a_client_received(trained, store_url,
                                                                tmp_path: Path):
    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri,
                        "NBA_DATA_DIR": str(trained.data_dir), "NBA_ACCESS_LOG": "",
                        "NBA_STATE_URL": store_url, "NBA_POLL_SECONDS": "0",
                        "NBA_HOLDOUT_SHARE": "0.05", "NBA_EXPLORATION": "0.1"}
    received: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client(seed: int, base: str) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            customer = f"C{rng.randint(1, 30_000):07d}"
            try:
                status, body = call(f"{base}/v1/decisions",
                                    {"customer_id": customer, "channel": "app"})
            except OSError as error:  # the killed worker's connections break
                failures.append(repr(error))
                continue
            if status == 200:
                received.append(body["decision_id"])

    with gunicorn(env, tmp_path / "server.log", workers=2) as base:
        threads = [threading.Thread(target=client, args=(i, base)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        victim = call(f"{base}/v1/model")[1]["worker_pid"]
        os.kill(victim, signal.SIGKILL)
        before_kill = len(received)
        time.sleep(3.0)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        after = call(f"{base}/v1/model")
    assert after[0] == 200 and after[1]["worker_pid"] != victim  # gunicorn replaced it
    assert len(received) > before_kill > 50  # load before and after the kill

    with open_store(store_url) as store:
        logged = set(store.log.decisions_frame()["decision_id"])
    missing = [d for d in received if d not in logged]
    assert not missing, f"{len(missing)} decisions answered but not logged"
