"""nginx's own answers (service.front) are in the service's error shape: the real nginx, started
alone with no worker behind it, so it answers everything itself. Before: a client asking for
one of the internal error URIs got nginx's HTML 404, and its 501 and 505 were HTML too.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from service.front import _ERRORS, ERROR_PREFIX, Front, FrontSettings, nginx_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def front(tmp_path_factory) -> Iterator[int]:
    """The port of an nginx with no gunicorn behind it."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    nginx = Front(FrontSettings(enabled=True, host="127.0.0.1", port=port,
                                runtime_dir=tmp_path_factory.mktemp("front"),
                                max_body_bytes=1024, bulk_body_bytes=2048, client_timeout=2,
                                upstream_timeout=3))
    nginx.start()
    try:
        yield port
    finally:
        nginx.stop()


def raw(port: int, request: bytes) -> tuple[int, dict[str, str], str]:
    """Send `request` as is; status, headers (lower-case names) and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    status_line, *lines = head.split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(("request_bytes", "nginx_status"), [
    # the internal URIs of the error answers: a client reaching them gets a JSON 404
    (f"GET {ERROR_PREFIX}400 HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 404),
    (f"GET {ERROR_PREFIX}502 HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 404),
    (b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 502),  # no worker behind
])
def test_what_nginx_answers_itself_is_in_the_one_error_shape(front: int, request_bytes: bytes,
                                                             nginx_status: int) -> None:
    sent, code, message = _ERRORS[nginx_status]

    got, headers, body = raw(front, request_bytes)

    assert got == sent, body[:300]
    assert headers["content-type"].startswith("application/json"), body[:300]
    assert json.loads(body) == {"error": {"code": code, "message": message, "details": None}}
    assert ("retry-after" in headers) == (sent == 503)


def test_every_error_page_has_its_json_location(tmp_path) -> None:
    conf = nginx_config(FrontSettings(enabled=True, host="127.0.0.1", port=1, runtime_dir=tmp_path,
                                      max_body_bytes=1, bulk_body_bytes=1, client_timeout=1,
                                      upstream_timeout=1))
    for status in (400, 404, 405, 408, 411, 413, 414, 494, 500, 501, 502, 504, 505):
        assert f"error_page {status} =" in conf
        assert f"location = {ERROR_PREFIX}{status} {{" in conf
