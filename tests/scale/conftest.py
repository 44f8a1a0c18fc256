"""The scale engines' fixtures: a small demo policy and ONE Spark session for the whole run.

`demo_dir`, `trained` and `loaded` override tests/conftest.py's for this folder with the
service tests' small retailer and policy (tests/conftest.py's `small_*`, trained once for both
folders: the engines' equality does not hang on model quality). Spark starts a JVM (several
seconds and ~0.5 GB), so the session is made once and shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Trained


@pytest.fixture(scope="session")
def demo_dir(small_demo_dir: Path) -> Path:
    """A small demo retailer on disk."""
    return small_demo_dir


@pytest.fixture(scope="session")
def trained(small_trained: Trained) -> Trained:
    """A small policy trained, registered and promoted by the real pipeline."""
    return small_trained


@pytest.fixture(scope="session")
def loaded(small_loaded):
    """The small policy loaded exactly as the service loads it."""
    return small_loaded


@pytest.fixture(scope="session")
def spark() -> Iterator:
    """One real Spark session in local[2] (Debian's Java 17: `make java`)."""
    from training.spark_score import session

    spark = session("local[2]", app_name="nba-tests", batch_size=500)
    yield spark
    spark.stop()
