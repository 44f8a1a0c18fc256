"""Time budgets for state-store calls: a per-thread deadline the database client itself enforces.

PostgreSQL's statement_timeout and lock_timeout end slow statements on a server that runs. A
server frozen by SIGSTOP runs nothing: the kernel still ACKs TCP, so neither those time-outs nor
TCP keepalives or TCP_USER_TIMEOUT ever fire, and a blocking client waits forever. The client
must stop waiting by itself: `TimedConnection` (a psycopg connection) waits for the server at
most until the thread's deadline, then closes its socket and raises `OutOfTime`, so the pool
discards the connection and the caller answers 503.

The service sets the deadline once per request (`deadline(seconds)`), so all the store calls
of one request share one budget; outside a deadline (the CLI, batch jobs) nothing changes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_local = threading.local()


@dataclass(frozen=True)
class Timeouts:
    """Time limits of the service's store: one budget; PostgreSQL and SQLite limits from it."""

    #: seconds the store may take within one request (the deadline the service sets)
    budget: float = 2.0

    @property
    def statement_ms(self) -> int:
        """PostgreSQL statement_timeout: a statement never outlives the budget."""
        return max(1, round(self.budget * 1000))

    @property
    def lock_ms(self) -> int:
        """PostgreSQL lock_timeout: half the budget, so a lock wait fails with time to answer."""
        return max(1, round(self.budget * 500))

    @property
    def sqlite_busy_ms(self) -> int:
        """SQLite busy_timeout: how long a request waits for another process's write lock."""
        return max(1, round(self.budget * 1000))


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Run the block with at most `seconds` for this thread's store calls (nested: the nearer)."""
    previous = start(seconds)
    try:
        yield
    finally:
        restore(previous)


def start(seconds: float) -> float | None:
    """Begin a deadline `seconds` from now (or keep a nearer one); returns what to restore."""
    previous: float | None = getattr(_local, "deadline", None)
    ends = time.monotonic() + seconds
    _local.deadline = ends if previous is None else min(previous, ends)
    return previous


def restore(previous: float | None) -> None:
    """End the deadline `start` began, putting back the one before it."""
    _local.deadline = previous


def remaining() -> float | None:
    """Seconds left of this thread's deadline (may be <= 0), or None when there is none."""
    ends = getattr(_local, "deadline", None)
    return None if ends is None else ends - time.monotonic()


def timed_connection_class() -> Any:
    """The psycopg Connection subclass that honours the deadline (psycopg imported lazily)."""
    global _timed
    if _timed is None:
        _timed = _make_timed_connection()
    return _timed


_timed: type | None = None


def _make_timed_connection() -> type:
    import psycopg
    from psycopg import errors

    class OutOfTime(psycopg.OperationalError):
        """The server did not answer within the thread's deadline; the connection is closed."""

    class TimedConnection(psycopg.Connection):
        """A psycopg connection whose waits for the server end at the thread's deadline."""

        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            """Connect within the deadline (libpq's floor: at least 2 s)."""
            left = remaining()
            if left is not None:
                if left <= 0:
                    raise OutOfTime("state store: no time left in this request to connect")
                given = kwargs.get("connect_timeout")
                ceiling = math.ceil(left)
                kwargs["connect_timeout"] = ceiling if given is None else min(int(given),
                                                                               ceiling)
            return super().connect(conninfo, **kwargs)

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            """psycopg's wait, bounded by the thread's deadline."""
            left = remaining()
            if left is None:
                return super().wait(gen, interval=interval, timeout=timeout)
            if left <= 0:
                self._give_up()
            try:
                return super().wait(gen, interval=interval,
                                    timeout=left if timeout is None else min(timeout, left))
            except errors._WaitTimeout:
                self._give_up()

        def _give_up(self) -> None:
            # the server may be frozen: don't say goodbye (that could block too), just drop it
            self.pgconn.finish()
            raise OutOfTime("state store: no answer within the request's time budget "
                            "(server frozen or overloaded); connection dropped")

    TimedConnection.OutOfTime = OutOfTime  # type: ignore[attr-defined]
    return TimedConnection


def is_out_of_time(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) is a deadline expiry of a TimedConnection."""
    seen = exc
    for _ in range(4):
        if type(seen).__name__ == "OutOfTime":
            return True
        nxt = getattr(seen, "orig", None) or seen.__cause__
        if nxt is None:
            return False
        seen = nxt
    return False
