"""tests/conftest.py `once_per_run` as two pytest-xdist workers meet it, in one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import once_per_run


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The temp-path factory of xdist worker `name`, whose run folder is `tmp_path`."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    return lambda name: pytest.TempPathFactory(tmp_path / f"popen-{name}", 0, "all",
                                               lambda *args: None, _ispytest=True)


def test_the_first_worker_builds_and_the_next_reads_its_result(worker):
    builds: list[Path] = []
    assert once_per_run(worker("gw0"), "x", lambda folder: builds.append(folder) or 7) == 7
    assert once_per_run(worker("gw1"), "x", lambda folder: builds.append(folder) or 8) == 7
    assert len(builds) == 1


def test_a_failed_build_fails_later_workers_with_its_error_unbuilt(worker):
    builds: list[Path] = []

    def broken(folder: Path) -> None:
        builds.append(folder)
        (folder / "mlflow.db").write_text("half written")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        once_per_run(worker("gw0"), "x", broken)
    with pytest.raises(pytest.fail.Exception,
                       match="x failed to build in another worker: RuntimeError: disk full"):
        once_per_run(worker("gw1"), "x", broken)
    assert len(builds) == 1


def test_a_builder_killed_mid_build_is_not_built_over(worker, tmp_path: Path):
    (tmp_path / "shared-x" / "built").mkdir(parents=True)  # what a killed builder leaves
    with pytest.raises(pytest.fail.Exception, match="died before finishing"):
        once_per_run(worker("gw1"), "x", lambda folder: 1)
