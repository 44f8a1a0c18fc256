"""After `kill -9` of the gunicorn master nothing keeps the port: a restart works at once.

Before (issue 14) the orphaned workers kept the listening socket and a new `nba serve` failed
with "Connection in use". Workers (and nginx) now die with the master (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.faults.conftest import serve, wait_until
from tests.integration.servers import call

pytestmark = [pytest.mark.slow, pytest.mark.solo]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_kill_9_of_the_master_frees_the_port_for_an_immediate_restart(base_env, tmp_path: Path):
    env = base_env | {"NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    with serve(env, tmp_path / "first.log") as first:
        workers = {call(f"{first.base}/v1/model")[1]["worker_pid"] for _ in range(20)}
        children = [int(p) for p in Path(f"/proc/{first.process.pid}/task/{first.process.pid}"
                                         "/children").read_text().split()]
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        # at once: no sleep before the new server takes the same port
        with serve(env, tmp_path / "second.log", port=first.port) as second:
            assert call(f"{second.base}/healthz")[0] == 200
            assert call(f"{second.base}/v1/model")[1]["worker_pid"] not in workers
        wait_until(lambda: not any(_alive(p) for p in children), 10,
                   lambda: f"orphans alive: {[p for p in children if _alive(p)]}")
    assert workers <= set(children)
