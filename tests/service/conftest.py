"""The service tests' small policy: trained once per session through the real pipeline.

These fixtures override `demo_dir`, `trained` and `loaded` of tests/conftest.py for this folder
only. The service's behaviour does not hang on model quality (tests/model checks that against
the true uplift), so a small demo retailer and few trees do: `pytest tests/service` then waits
seconds for its model instead of the full training run. The small policy is the one
tests/scale uses (tests/conftest.py's `small_*`): one training for both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Trained


@pytest.fixture(scope="session")
def demo_dir(small_demo_dir: Path) -> Path:
    """A small demo retailer on disk (the full demo's catalog, stock and customer mix)."""
    return small_demo_dir


@pytest.fixture(scope="session")
def trained(small_trained: Trained) -> Trained:
    """A small policy trained, registered and promoted by the real `training.pipeline.train`."""
    return small_trained


@pytest.fixture(scope="session")
def loaded(small_loaded):
    """The small policy loaded exactly as the service loads it."""
    return small_loaded
