"""The service tests' small policy: trained once per session through the real pipeline.

These fixtures override `demo_dir`, `trained` and `loaded` of tests/conftest.py for this folder
only. The service's behaviour does not hang on model quality (tests/model checks that against
the true uplift), so a small demo retailer and few trees do: `pytest tests/service` then waits
seconds for its model instead of the full training run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Trained, load_champion, train_champion, write_demo

SERVICE_CUSTOMERS = 3_000
SERVICE_EXPOSURES = 12_000
SERVICE_TREES = 30


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo retailer on disk (the full demo's catalog, stock and customer mix)."""
    return write_demo(tmp_path_factory.mktemp("service-demo"), SERVICE_CUSTOMERS,
                      SERVICE_EXPOSURES)


@pytest.fixture(scope="session")
def trained(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small policy trained, registered and promoted by the real `training.pipeline.train`."""
    return train_champion(demo_dir, tmp_path_factory.mktemp("service-registry"), SERVICE_TREES)


@pytest.fixture(scope="session")
def loaded(trained: Trained):
    """The small policy loaded exactly as the service loads it."""
    return load_champion(trained)
