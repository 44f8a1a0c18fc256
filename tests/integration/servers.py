"""Real servers for integration tests: `nba serve` (gunicorn) on a free loopback port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NBA = str(Path(sys.executable).parent / "nba")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: dict | None = None, headers: dict | None = None,
         method: str | None = None) -> tuple[int, dict]:
    """JSON request; returns (status, body) for 2xx and 4xx/5xx alike."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, workers: int = 2,
             wait_for: str = "/readyz") -> Iterator[str]:
    """`nba serve` on a free port; yields its base URL once `wait_for` answers 200.

    The state store defaults to a SQLite file beside the log (never the working directory).
    """
    port = free_port()
    env = {"NBA_STATE_URL": f"sqlite:///{log_path.parent / 'state.db'}",
           "NBA_DEV_MODE": "1"} | env
    with open(log_path, "w") as log:
        process = subprocess.Popen([NBA, "serve", "--port", str(port), "--workers",
                                    str(workers)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if call(f"{base}{wait_for}")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited early:\n{log_path.read_text()}")
            time.sleep(0.3)
        else:
            pytest.fail(f"gunicorn was not ready in 90 s:\n{log_path.read_text()}")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
