"""Promotions are serialized: with promotions racing in separate processes, the champion
history records every one and ends on the version the alias points at. Before (issue 14) two
`set_alias` at the same instant lost an entry and left the history disagreeing with the alias.
And `nba promote --force` of a version whose model files are gone is one clear error line.
"""

from __future__ import annotations

import multiprocessing
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Trained
from tests.faults.conftest import MODEL
from tests.integration.servers import NBA

pytestmark = [pytest.mark.slow, pytest.mark.solo]
RACERS = 6


def _promote(uri: str, version: str, barrier) -> None:
    from training import registry

    client = registry.configure(uri)
    barrier.wait(30)
    registry.set_alias(client, MODEL, version)


def _registry_with_versions(uri: str, trained: Trained, count: int) -> list[str]:
    """`count` more versions of the trained model (same files) in the registry at `uri`."""
    from training import registry

    source = registry.configure(trained.tracking_uri).get_model_version_download_uri(
        MODEL, trained.version)
    client = registry.configure(uri)
    return [str(client.create_model_version(MODEL, source=source, run_id=None).version)
            for _ in range(count)]


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_uri(request, sqlite_registry: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{sqlite_registry}"
    return request.getfixturevalue("pg_registry")


def test_concurrent_promotions_keep_the_history_and_the_alias_in_agreement(registry_uri,
                                                                          trained):
    from training import registry

    versions = _registry_with_versions(registry_uri, trained, RACERS)
    client = registry.configure(registry_uri)
    before = registry.champion_history(client, MODEL)
    # each racer a process of its own with its own registry client, forked from a server
    # that imported this module (and MLflow) once: six fresh interpreters importing MLflow at
    # once on two cores took most of this test's ~30 s
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    barrier = context.Barrier(RACERS)
    racers = [context.Process(target=_promote, args=(registry_uri, v, barrier))
              for v in versions]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(120)
    assert all(racer.exitcode == 0 for racer in racers)
    client = registry.configure(registry_uri)
    history = registry.champion_history(client, MODEL)
    champion = registry.get_alias(client, MODEL)
    assert history[:len(before)] == before
    assert sorted(history[len(before):], key=int) == sorted(versions, key=int)  # none lost
    assert history[-1] == champion.version


def test_promote_force_of_a_version_without_model_files_is_one_line(sqlite_registry: Path,
                                                                    trained, tmp_path: Path):
    from training import registry

    uri = f"sqlite:///{sqlite_registry}"
    client = registry.configure(uri)
    ghost = client.create_model_version(MODEL, source=str(tmp_path / "gone"), run_id=None)
    done = subprocess.run([NBA, "promote", "--version", str(ghost.version), "--force",
                           "--tracking-uri", uri, "--data-dir", str(trained.data_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model files are missing" in lines[0], done.stderr
    assert registry.get_alias(client, MODEL).version == trained.version  # unchanged
