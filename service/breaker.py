"""A circuit breaker: after `failures` failures in a row a dependency is skipped for `seconds`.

Closed: calls go through. Open: calls are not made (`allow()` is False) so a frozen or down
dependency costs a request nothing. After `seconds`, half-open: one caller is let through as a
probe; its success closes the breaker, its failure opens it for another `seconds`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Thread-safe; one per dependency per process."""

    def __init__(self, failures: int = 5, seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or seconds <= 0:
            raise ValueError("a breaker needs failures >= 1 and seconds > 0")
        self.failures, self.seconds, self._clock = failures, seconds, clock
        self._lock = threading.Lock()
        self._failed = 0
        self._opened_at: float | None = None
        self._probing: float | None = None  # when the probe in flight started

    @property
    def state(self) -> str:
        """closed, open or half_open (open, but the next caller may probe)."""
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self._clock() - self._opened_at >= self.seconds else OPEN

    def allow(self) -> bool:
        """May a call be made now? True when closed, and for the one probe when half-open (a
        probe never reported within `seconds` is given up, and the next caller probes)."""
        with self._lock:
            state = self._state()
            if state == CLOSED:
                return True
            now = self._clock()
            if state == HALF_OPEN and (self._probing is None
                                       or now - self._probing >= self.seconds):
                self._probing = now
                return True
            return False

    def succeeded(self) -> None:
        """A call went through: close the breaker."""
        with self._lock:
            self._failed, self._opened_at, self._probing = 0, None, None

    def failed(self) -> bool:
        """A call failed; returns True when this failure opened (or re-opened) the breaker."""
        with self._lock:
            self._failed += 1
            reopen = self._probing is not None or (self._opened_at is None
                                                   and self._failed >= self.failures)
            self._probing = None
            if reopen:
                self._opened_at = self._clock()
            return reopen
