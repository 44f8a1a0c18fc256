"""Warnings that repeat at most once per interval, with a count of those held back.

A dependency that is down fails every request; one WARNING per request buried the log (4,214
lines in 15 s with Redis down). The first occurrence is logged at once, the rest once per
interval, each saying how many were held back meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class ThrottledLog:
    """Logs each key at most once per `interval` seconds (per process)."""

    def __init__(self, logger: logging.Logger, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger, self._interval, self._clock = logger, interval, clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> bool:
        """Log `message % args` under `key` unless logged less than `interval` ago; True if so."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        suffix = f" ({held} more like this in the last {self._interval:g} s)" if held else ""
        self._logger.warning(message + suffix, *args)
        return True
