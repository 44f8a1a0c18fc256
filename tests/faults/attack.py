"""Hostile clients for the fault suite (and bench/bench_front.py): slowloris and friends.

Every loop is bounded in count and time, and only ever aims at a loopback address.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Slowloris:
    """`connections` sockets that trickle a request one byte a second, re-opened when closed.

    Half send their headers one byte at a time (never finishing them), half send complete
    headers announcing a body and then trickle the body: both kinds hold a sync worker for as
    long as they like when nothing buffers in front of it.
    """

    host: str
    port: int
    connections: int = 50
    reopened: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if not self.host.startswith("127.") and self.host not in ("localhost", "::1"):
            raise ValueError("attacks aim at loopback addresses only")

    def __enter__(self) -> Slowloris:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _open(self, i: int) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2)
            if i % 2:
                sock.sendall(b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            else:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            return sock
        except OSError:
            return None

    def _run(self, limit_seconds: float = 600) -> None:
        socks: list[socket.socket | None] = [self._open(i) for i in range(self.connections)]
        ends = time.monotonic() + limit_seconds
        while not self._stop.wait(1.0) and time.monotonic() < ends:
            for i, sock in enumerate(socks):
                try:
                    if sock is None:
                        raise OSError("not connected")
                    sock.sendall(b"X" if i % 2 == 0 else b" ")
                except OSError:
                    if sock is not None:
                        sock.close()
                    socks[i] = self._open(i)
                    self.reopened += 1
        for sock in socks:
            if sock is not None:
                sock.close()
