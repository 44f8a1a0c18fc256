"""The service tests' small policy: trained once per session through the real pipeline.

These fixtures override `demo_dir`, `trained` and `loaded` of tests/conftest.py for this folder
only. The service's behaviour does not hang on model quality (tests/model checks that against
the true uplift), so a small demo retailer and few trees do: `pytest tests/service` then waits
seconds for its model instead of the full training run.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import DEMO_SEED, Trained

SERVICE_CUSTOMERS = 3_000
SERVICE_EXPOSURES = 12_000
SERVICE_TREES = 30


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo retailer on disk (the full demo's catalog, stock and customer mix)."""
    from nba import demo

    out = tmp_path_factory.mktemp("service-demo") / "data"
    demo.write(demo.generate(SERVICE_CUSTOMERS, SERVICE_EXPOSURES, DEMO_SEED), out)
    return out


@pytest.fixture(scope="session")
def trained(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small policy trained, registered and promoted by the real `training.pipeline.train`."""
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    logging.getLogger("causalml").setLevel(logging.WARNING)
    root = tmp_path_factory.mktemp("service-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    settings = TrainSettings(data_dir=demo_dir, tracking_uri=uri, artifact_root=root / "mlruns",
                             params=replace(BoosterParams(), n_estimators=SERVICE_TREES,
                                            n_jobs=1))
    result = train(settings)
    return Trained(root, demo_dir, uri, settings.model_name, result.version, result.metrics)


@pytest.fixture(scope="session")
def loaded(trained: Trained):
    """The small policy loaded exactly as the service loads it."""
    from service.model_store import load_from_registry
    from service.settings import ServiceSettings

    return load_from_registry(ServiceSettings(tracking_uri=trained.tracking_uri,
                                              data_dir=trained.data_dir, holdout_share=0.0))
