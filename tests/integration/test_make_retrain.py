"""`make retrain`: export the decision log after the original exposures, train, gated promote.

A small demo retailer and champion; a round of decisions is served through the real app and
answered by the simulator, then `make retrain` runs as an operator would, in a subprocess.
The retrain fits the first champion's one-candidate menu and trees (TRAIN_FLAGS): this test
protects the target's plumbing; the menu's choice is tested in tests/training.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features import io
from tests.conftest import ONE_CANDIDATE

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TREES = 40
#: `nba train` flags of the same one-candidate menu the first champion is trained with
TRAIN_FLAGS = (f"--trees {TREES} --learner {','.join(ONE_CANDIDATE['learners'])} "
               f"--capacity {','.join(ONE_CANDIDATE['capacities'])} "
               f"--rule {','.join(ONE_CANDIDATE['rules'])} --folds {ONE_CANDIDATE['folds']}")


def test_make_retrain_exports_trains_and_promotes_through_the_gate(tmp_path: Path):
    from nba import demo
    from nba.simulate import Simulator
    from service import create_app
    from service.settings import ServiceSettings
    from state import open_store
    from state.rows import stock_rows
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    data = tmp_path / "data"
    demo.write(demo.generate(3_000, 12_000, 3), data)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = train(TrainSettings(data_dir=data, tracking_uri=uri, artifact_root=tmp_path / "mlruns",
                                params=BoosterParams(n_estimators=TREES, n_jobs=1),
                                **ONE_CANDIDATE))
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(state_url) as store:
        store.replace_inventory(stock_rows(io.read_inventory(data / io.INVENTORY)),
                                now=pd.Timestamp.now(tz="UTC").to_pydatetime())
    app = create_app(ServiceSettings(tracking_uri=uri, data_dir=data, state_url=state_url,
                                     dev_mode=True, rate_limit=0.0, exploration=0.2,
                                     exploration_seed=1))
    client = app.test_client()

    def post(path: str, body: dict) -> tuple[int, dict]:
        response = client.post(path, json=body)
        return response.status_code, response.get_json()

    customers = io.read_customers(data / io.CUSTOMERS)
    simulator = Simulator(customers, pd.read_parquet(data / "true_uplift.parquet"), seed=2)
    summary = simulator.run(post, customers["customer_id"].head(1_500).tolist())
    assert summary.decisions == 1_500

    env = os.environ | {"MLFLOW_TRACKING_URI": uri, "NBA_STATE_URL": state_url,
                        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["make", "--no-print-directory", "retrain",
                             f"DATA_DIR={data}", f"RETRAIN_DIR={tmp_path / 'retrain'}",
                             f"VENV={Path(sys.executable).parent.parent}",
                             f"TRAIN_FLAGS={TRAIN_FLAGS}"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    retrained = io.read_exposures(tmp_path / "retrain" / io.EXPOSURES,
                                  io.read_catalog(data / io.OFFERS))
    original = io.read_exposures(data / io.EXPOSURES, io.read_catalog(data / io.OFFERS))
    assert len(retrained) == len(original) + 1_500  # the log appended after the exposures
    assert f"registered nba-policy version {int(first.version) + 1}" in result.stdout
    assert "s/base/full" in result.stdout and "x/low" not in result.stdout  # TRAIN_FLAGS' menu
    if result.returncode == 0:  # passed the gate: the new version is champion
        assert "nba-policy@champion -> version 2" in result.stdout
    else:  # refused with the numbers; the champion stays
        assert "refused" in result.stderr and "champion stays version 1" in result.stderr
