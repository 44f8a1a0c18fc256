"""One promotion at a time per registry: a lock held while an alias and its history move.

`set_alias` reads the champion and the `champion_history` tag, then writes both; two promotions
at the same instant lost a history entry and left the history disagreeing with the alias
(issue 14). The lock lives with the registry itself: a PostgreSQL advisory lock in the registry
database (every host sees it), or for a SQLite registry (one host) an exclusive `flock` on a
file beside the database. Other registries (an MLflow server) get no lock, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import URL, make_url

log = logging.getLogger(__name__)


class LockTimeout(RuntimeError):
    """Another promotion held the lock for longer than the wait allowed."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a registered model's promotions."""
    digest = hashlib.sha256(f"nba-promote:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def promotion_lock(tracking_uri: str, name: str, timeout: float = 120.0) -> Iterator[None]:
    """Hold the promotion lock of model `name` in the registry at `tracking_uri`.

    Raises LockTimeout after `timeout` seconds of waiting.
    """
    url = make_url(tracking_uri)
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database and url.database != ":memory:":
        with _file_lock(f"{url.database}.promote.lock", timeout):
            yield
    elif backend == "postgresql":
        with _advisory_lock(url, lock_key(name), timeout):
            yield
    else:
        log.warning("no promotion lock for a %s registry: run one promotion at a time", backend)
        yield


@contextlib.contextmanager
def _file_lock(path: str, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"another promotion held {path} for {timeout:g} s") \
                        from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _advisory_lock(url: URL, key: int, timeout: float) -> Iterator[None]:
    import psycopg

    params: dict[str, Any] = {k: v for k, v in url.query.items() if isinstance(v, str)}
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                         dbname=url.database, autocommit=True, **params) as conn:
        conn.execute(f"SET lock_timeout = {max(1, round(timeout * 1000))}")
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        except psycopg.errors.LockNotAvailable:
            raise LockTimeout(f"another promotion held the registry lock for {timeout:g} s") \
                from None
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
