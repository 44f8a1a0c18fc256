"""The scale engines' fixtures: a small demo policy and ONE Spark session for the whole run.

`demo_dir`, `trained` and `loaded` override tests/conftest.py's for this folder with the
service tests' small retailer (the engines' equality does not hang on model quality). Spark
starts a JVM (several seconds and ~0.5 GB), so the session is made once and shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Trained, load_champion, train_champion, write_demo

SCALE_CUSTOMERS = 3_000
SCALE_EXPOSURES = 12_000
SCALE_TREES = 30


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo retailer on disk."""
    return write_demo(tmp_path_factory.mktemp("scale-demo"), SCALE_CUSTOMERS, SCALE_EXPOSURES)


@pytest.fixture(scope="session")
def trained(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small policy trained, registered and promoted by the real pipeline."""
    return train_champion(demo_dir, tmp_path_factory.mktemp("scale-registry"), SCALE_TREES)


@pytest.fixture(scope="session")
def loaded(trained: Trained):
    """The small policy loaded exactly as the service loads it."""
    return load_champion(trained)


@pytest.fixture(scope="session")
def spark() -> Iterator:
    """One real Spark session in local[2] (Debian's Java 17: `make java`)."""
    from training.spark_score import session

    spark = session("local[2]", app_name="nba-tests", batch_size=500)
    yield spark
    spark.stop()
