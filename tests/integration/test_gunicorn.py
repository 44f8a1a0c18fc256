"""The real thing: `nba serve` starts gunicorn, workers load the champion, HTTP answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
NBA = str(Path(sys.executable).parent / "nba")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(trained):
    port = free_port()
    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri,
                        "NBA_DATA_DIR": str(trained.data_dir), "NBA_ACCESS_LOG": ""}
    process = subprocess.Popen([NBA, "serve", "--port", str(port), "--workers", "2"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if call(f"{base}/readyz")[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited early:\n{process.stdout.read()}")
        time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("gunicorn did not become ready in 90 s")
    yield base
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def test_real_gunicorn_serves_decisions_from_every_worker(server, trained):
    pids = set()
    for i in range(40):
        status, body = call(f"{server}/v1/decisions",
                            {"customer_id": f"C{i + 1:07d}", "channel": "web", "limit": 3})
        assert status == 200, body
        assert body["model"]["version"] == trained.version
        assert len(body["offers"]) <= 3
    status, model = call(f"{server}/v1/model")
    assert status == 200 and model["alias"] == "champion"
    del pids


def test_real_gunicorn_answers_bad_input_with_json_4xx(server):
    status, body = call(f"{server}/v1/decisions", {"customer_id": "nobody", "channel": "web"})
    assert status == 404 and body["error"]["code"] == "unknown_customer"
    request = urllib.request.Request(f"{server}/v1/decisions", data=b"{oops",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_request"
