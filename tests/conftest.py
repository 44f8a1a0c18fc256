"""Session fixtures: one demo retailer and one really trained, registered champion.

Training is the slow part (real causalml + LightGBM + MLflow), so the suite does it once and
every service, model and integration test reuses that registry.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("OMP_NUM_THREADS", "2")

DEMO_CUSTOMERS = 30_000
DEMO_EXPOSURES = 150_000
DEMO_SEED = 11


@dataclass(frozen=True)
class Trained:
    """A registry with one champion trained on demo data."""

    root: Path
    data_dir: Path
    tracking_uri: str
    model_name: str
    version: str
    metrics: dict[str, float]


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo retailer on disk, with its true uplift."""
    from nba import demo

    out = tmp_path_factory.mktemp("demo") / "data"
    demo.write(demo.generate(DEMO_CUSTOMERS, DEMO_EXPOSURES, DEMO_SEED), out)
    return out


@pytest.fixture(scope="session")
def trained(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train, register and promote one real policy (the suite's only full training run).

    One LightGBM thread: with two, OpenMP's spinning makes fitting 10-50x slower whenever
    anything else holds the other core (measured in bench/), and CI machines have two.
    """
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    logging.getLogger("causalml").setLevel(logging.WARNING)
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    settings = TrainSettings(data_dir=demo_dir, tracking_uri=uri, artifact_root=root / "mlruns",
                             params=replace(BoosterParams(), n_estimators=120, n_jobs=1))
    result = train(settings)
    return Trained(root, demo_dir, uri, settings.model_name, result.version, result.metrics)


@pytest.fixture(scope="session")
def loaded(trained: Trained):
    """The champion loaded exactly as the service loads it."""
    from service.model_store import load_from_registry
    from service.settings import ServiceSettings

    return load_from_registry(ServiceSettings(tracking_uri=trained.tracking_uri,
                                              data_dir=trained.data_dir))


@pytest.fixture(scope="session")
def app(trained: Trained, loaded):
    """The Flask app serving the trained champion (one store shared by the session)."""
    from service import create_app
    from service.model_store import ModelStore
    from service.settings import ServiceSettings

    store = ModelStore(lambda: loaded)
    store.try_load()
    return create_app(ServiceSettings(tracking_uri=trained.tracking_uri,
                                      data_dir=trained.data_dir), store=store)


@pytest.fixture
def client(app):
    """Flask test client."""
    return app.test_client()
