"""Hostile bodies get a 4xx in the one error shape, never a 500, a traceback or a worker's
memory: deep nesting (400), an unbounded decision `context` (400), bodies over the cap (413,
also when chunked). Before (issue 14): JSON 5,000 deep was a 500 with a traceback, and a 500 MB
body padded inside `context` was answered 200 after the worker grew to 1.8 GB.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import Served, serve
from tests.integration.servers import call

pytestmark = [pytest.mark.slow, pytest.mark.solo]


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory) -> Iterator[Served]:
    import os
    import shutil

    root = tmp_path_factory.mktemp("hostile")
    shutil.copy(trained.root / "mlflow.db", root / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")} | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "NBA_POLL_SECONDS": "0",
        "NBA_DATA_DIR": str(trained.data_dir), "NBA_DEV_MODE": "1", "NBA_ACCESS_LOG": "",
        "NBA_STATE_URL": f"sqlite:///{root / 'state.db'}"}
    with serve(env, root / "server.log") as served:
        yield served


def json_routes(base: str) -> list[tuple[str, str]]:
    """Every (method, path) of the API that takes a JSON body, from its OpenAPI document."""
    spec = call(f"{base}/openapi.json")[1]
    return sorted((method.upper(), path) for path, ops in spec["paths"].items()
                  for method, op in ops.items() if "requestBody" in op)


def send(server: Served, method: str, path: str, body: bytes,
         headers: dict | None = None) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json",
                                          **(headers or {})})
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    return response.status, json.loads(text), text


def test_the_json_routes_are_found(server):
    routes = json_routes(server.base)
    assert ("POST", "/v1/decisions") in routes and ("POST", "/v1/outcomes") in routes
    assert len(routes) >= 5


@pytest.mark.parametrize("depth", [40, 5_000, 100_000])
def test_deep_nesting_is_a_400_on_every_json_route(server, depth):
    body = b"[" * depth + b"]" * depth
    wrapped = (b'{"customer_id": "C0000001", "channel": "web", "context": {"x": ' +
               b"[" * depth + b"]" * depth + b"}}")
    for method, path in json_routes(server.base):
        for payload in (body, wrapped):
            status, answer, text = send(server, method, path, payload)
            assert status in (400, 413), (path, status, text[:300])
            assert set(answer) == {"error"} and "Traceback" not in text


@pytest.mark.parametrize("context", [
    {f"k{i}": i for i in range(200)},                          # too many keys
    {"a": {"b": {"c": {"d": {"e": 1}}}}},                      # too deep
    {"pad": "x" * 10_000},                                     # too large
])
def test_an_unbounded_context_is_a_400(server, context):
    status, answer, _ = send(server, "POST", "/v1/decisions", json.dumps(
        {"customer_id": "C0000001", "channel": "web", "context": context}).encode())
    assert status == 400 and answer["error"]["code"] == "invalid_request"


def test_a_chunked_body_over_the_cap_is_cut_off_with_413(server):
    def chunks() -> Iterator[bytes]:
        yield b'{"customer_id": "C0000001", "channel": "web", "context": {"pad": "'
        for _ in range(1024):  # 1 MiB, past the 256 KiB default cap
            yield b"x" * 1024
        yield b'"}}'

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        conn.request("POST", "/v1/decisions", chunks(), {"Content-Type": "application/json"},
                     encode_chunked=True)
        response = conn.getresponse()
        status, text = response.status, response.read().decode()
    except (BrokenPipeError, ConnectionResetError):  # refused while still sending: also fine
        status, text = 413, '{"error": {"code": "payload_too_large"}}'
    finally:
        conn.close()
    assert status == 413 and "payload_too_large" in text


def raw_request(server: Served, method: str, target: str, headers: dict[str, str]
                ) -> tuple[int, str, str]:
    """One request with a request line and headers as long as we like (http.client checks
    neither): status, content type, body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize(("method", "target", "headers", "status", "code"), [
    # the request line over nginx's buffer: was nginx's HTML 500 ("empty URI in redirect to
    # named location"), since the error came before any URI was read
    ("GET", "/v1/model?x=" + "a" * 40_000, {}, 414, "uri_too_long"),
    ("GET", "/v1/model", {"X-Big": "a" * 30_000}, 431, "headers_too_large"),
    ("TRACE", "/healthz", {}, 405, "method_not_allowed"),  # answered by nginx itself
    # within nginx's bounds but over gunicorn's defaults: were gunicorn's HTML 400 / 431
    ("GET", "/v1/model?x=" + "a" * 9_000, {}, 200, None),
    ("GET", "/v1/model", {"X-Big": "a" * 9_000}, 200, None),
    ("GET", "/v1/model", {f"X-H{i}": "v" for i in range(150)}, 200, None),
])
def test_oversized_request_lines_and_headers_are_json(server, method, target, headers, status,
                                                      code):
    got, content_type, text = raw_request(server, method, target, headers)
    assert got == status, text[:300]
    assert content_type.startswith("application/json"), text[:300]
    if code is not None:
        assert json.loads(text)["error"]["code"] == code


def test_the_service_still_decides_afterwards(server):
    status, body = call(f"{server.base}/v1/decisions", {"customer_id": "C0000001",
                                                        "channel": "web"})
    assert status == 200 and body["offers"] is not None
    log = Path(server.log).read_text(errors="replace")
    assert "Traceback" not in log and '"level": "ERROR"' not in log
