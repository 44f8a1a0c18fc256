"""The run-wide solo lock (tests/solo.py) between real processes, as pytest-xdist workers use it."""

from __future__ import annotations

import fcntl
import multiprocessing
import time
from pathlib import Path

from tests import solo

SPAWN = multiprocessing.get_context("spawn")  # no fork of a threaded pytest


def take(folder: Path, exclusive: bool, name: str, release) -> None:
    """Note `name` as arrived, hold the lock, note it in the log, hold until `release` is set."""
    with open(folder / "arrived", "a") as arrived:
        arrived.write(name + "\n")
    with solo.hold(folder, exclusive):
        with open(folder / "log", "a") as log:
            log.write(name + "\n")
        release.wait(20)


def log(folder: Path) -> list[str]:
    return (folder / "log").read_text().split() if (folder / "log").exists() else []


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def turnstile_busy(folder: Path) -> bool:
    with open(folder / "solo.turnstile", "a") as turnstile:
        try:
            fcntl.flock(turnstile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def test_shared_takers_coexist_and_a_waiting_exclusive_one_is_not_starved(tmp_path: Path):
    first_done, later = SPAWN.Event(), SPAWN.Event()
    later.set()  # the writer and the later reader leave as soon as they are in
    reader = SPAWN.Process(target=take, args=(tmp_path, False, "reader", first_done))
    reader.start()
    try:
        wait_for(lambda: log(tmp_path) == ["reader"], "the first shared taker")
        with solo.hold(tmp_path, exclusive=False):  # a second shared taker gets in at once
            pass
        writer = SPAWN.Process(target=take, args=(tmp_path, True, "writer", later))
        writer.start()
        wait_for(lambda: turnstile_busy(tmp_path), "the exclusive taker to queue")
        late = SPAWN.Process(target=take, args=(tmp_path, False, "late", later))
        late.start()
        wait_for(lambda: "late" in (tmp_path / "arrived").read_text(), "the late reader")
        time.sleep(0.5)  # room for the late reader to overtake, were the turnstile broken
        assert log(tmp_path) == ["reader"]  # the writer waits for the reader; the late one too
        first_done.set()
        for process in (reader, writer, late):
            process.join(20)
            assert process.exitcode == 0
        assert log(tmp_path) == ["reader", "writer", "late"]
    finally:
        first_done.set()
        for child in SPAWN.active_children():
            child.kill()
