"""A run-wide readers-writer file lock, so timing-sensitive tests run alone under pytest-xdist.

Tests marked `solo` (fault injection, hot reload, the 200-client launch: each holds a wall-clock
budget) take the lock exclusively; every other test takes it shared. A waiting exclusive taker
holds the turnstile, so shared takers that come later queue behind it instead of starving it.
`flock` locks belong to an open file, so one process may hold the lock in one mode only at a
time, and a crashed holder releases it with its file.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def hold(folder: Path, exclusive: bool) -> Iterator[None]:
    """Hold the lock in `folder` (shared by every process of one run) for the block."""
    with open(folder / "solo.turnstile", "a") as turnstile, open(folder / "solo.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)  # its holder is served next, a writer too
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
