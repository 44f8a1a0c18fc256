"""The closed loop: serve, log, learn from the log, serve better (checked against the TRUTH).

A simulator built on the demo generator's true uplift answers the service's decisions as the
customers would. After one round of traffic (5% global holdout, 20% exploration) the decision
log is exported in the exposures contract and APPENDED to the original exposures, as a real
retrain does, and the pipeline retrains with the champion's own settings (same boosters, same
seed, one thread; shrinkage re-tuned as `nba train` does): only the data differs. The retrained
policy's TRUE expected incremental profit per customer, known from the simulator, must be at
least the first policy's, on the same customers.

Measured with 10,000 decisions (true value per customer):
- the suite's champion (training seed 42) is 2.5914; retrained after seven unseeded rounds of
  traffic: 2.6322, 2.6494, 2.6396, 2.6017, 2.6418, 2.6457, 2.5985 (mean 2.630, sd 0.019, all
  above). A normal fit still puts about 2% below 2.5914, so the service's exploration draws
  are seeded here (`seeded_exploration`): this test's round gives 2.6417, the same each run.
- training the original exposures alone with seeds 42-46 gives 2.5914, 2.2316, 2.5641,
  2.6236, 2.5734: the seed moves the value by about 0.03, and by 0.36 when the tuning split
  picks another shrinkage (seed 43: 0.5).
- that shrinkage choice can also undo the loop's gain: a champion trained with seed 44 went
  2.5641 -> 2.4710 because the re-tuned shrinkage flipped 1.0 -> 0.75; with shrinkage fixed
  at 1.0 the same data gave 2.6102 (+0.046). The log helps; the tuning split's noisy IPW pick
  of the shrinkage is the likeliest reason for this test to fail after a pipeline change.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import io
from nba.demo import TRUE_UPLIFT
from nba.simulate import Simulator, true_policy_value
from tests.conftest import ADMIN_TOKEN, service_app
from training.export import export_training

pytestmark = pytest.mark.slow

HOLDOUT_SHARE = 0.05
EXPLORATION = 0.2
DECISIONS = 10_000  # ~53 s of traffic through the Flask test client on an idle 2-core machine
SIMULATOR_SEED = 1  # customers sampled, their answers, and the service's exploration draws
#: Allowed shortfall of the retrained policy's true value per customer: none. Both sides are
#: deterministic here (measured spread of unseeded rounds: module docstring).
TOLERANCE = 0.0


@pytest.fixture(scope="module")
def loaded_with_holdout(trained):
    """The champion loaded as the service loads it, with a 5% global holdout."""
    from service.model_store import load_from_registry
    from service.settings import ServiceSettings

    return load_from_registry(ServiceSettings(tracking_uri=trained.tracking_uri,
                                              data_dir=trained.data_dir,
                                              holdout_share=HOLDOUT_SHARE))


@pytest.fixture
def loop_client(trained, loaded_with_holdout, state):
    """An in-process service that holds out, explores and logs into a fresh state store."""
    app = service_app(trained, loaded_with_holdout, state, holdout_share=HOLDOUT_SHARE,
                      exploration=EXPLORATION,
                      # seeded: one run of this test is one fixed round of traffic
                      exploration_seed=SIMULATOR_SEED)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN_TOKEN}"
    return client


def retrain(data_dir: Path, exposures: pd.DataFrame, root: Path, like) -> object:
    """Train with the pipeline on `exposures` beside the original catalog and customers, with
    the settings the first policy was trained with; returns the new champion as loaded."""
    from service.model_store import load_from_registry
    from service.settings import ServiceSettings
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    out = root / "data"
    out.mkdir(parents=True)
    for name in (io.OFFERS, io.CUSTOMERS):
        shutil.copy(data_dir / name, out / name)
    io.write_parquet(exposures, out / io.EXPOSURES)
    meta = like.policy.meta
    learner, _, rule = meta["candidate"].split("/")  # meta["params"] has its capacity applied
    uri = f"sqlite:///{root / 'mlflow.db'}"
    train(TrainSettings(data_dir=out, tracking_uri=uri, artifact_root=root / "mlruns",
                        params=BoosterParams(**(meta["params"] | {"n_jobs": 1})),
                        seed=meta["seed"], learners=(learner,), capacities=("base",),
                        rules=(rule,)))
    return load_from_registry(ServiceSettings(tracking_uri=uri, data_dir=out,
                                              holdout_share=0.0))


def test_retraining_on_the_logged_loop_is_at_least_as_good_in_true_value(
        trained, loaded_with_holdout, loop_client, state, tmp_path):
    first = loaded_with_holdout
    catalog = first.policy.catalog
    customers = io.read_customers(trained.data_dir / io.CUSTOMERS)
    truth = pd.read_parquet(trained.data_dir / TRUE_UPLIFT)
    simulator = Simulator(customers, truth, seed=SIMULATOR_SEED)
    rng = np.random.default_rng(SIMULATOR_SEED)
    ids = rng.choice(customers["customer_id"].to_numpy(), DECISIONS, replace=False).tolist()

    def post(path: str, body: dict) -> tuple[int, dict]:
        response = loop_client.post(path, json=body)
        return response.status_code, response.get_json()

    started = time.perf_counter()
    summary = simulator.run(post, ids, channel="web")
    simulated = time.perf_counter() - started

    # the log is complete ...
    decisions, outcomes = state.log.decisions_frame(), state.log.outcomes_frame()
    assert len(decisions) == summary.decisions == DECISIONS
    assert len(outcomes) == summary.outcomes and summary.duplicates == 0
    served = np.array([len(o) > 0 for o in decisions["offer_ids"]])
    shown = set(outcomes.loc[outcomes["event"] == "shown", "decision_id"])
    assert shown == set(decisions.loc[served, "decision_id"])
    # ... and causal: a randomized holdout of the set share, exploration, known propensities
    holdout = decisions["holdout"].to_numpy(dtype=bool)
    assert holdout.sum() == summary.holdouts
    four_sd = 4 * math.sqrt(HOLDOUT_SHARE * (1 - HOLDOUT_SHARE) / DECISIONS)
    assert abs(holdout.mean() - HOLDOUT_SHARE) <= four_sd, holdout.mean()
    assert not served[holdout].any()
    propensity = decisions["propensity"].to_numpy()
    assert ((propensity > 0) & (propensity <= 1)).all()
    explored = decisions["explored"].to_numpy(dtype=bool)
    assert explored.sum() == summary.explored > 0
    assert (propensity[explored] <= EXPLORATION).all()  # a random pick, never the sure thing

    logged = export_training(decisions, outcomes, catalog.control_label)
    assert len(logged) == DECISIONS
    assert (logged["treatment"] != catalog.control_label).sum() == served.sum()
    original = io.read_exposures(trained.data_dir / io.EXPOSURES, catalog)
    started = time.perf_counter()
    retrained = retrain(trained.data_dir, pd.concat([original, logged], ignore_index=True),
                        tmp_path / "retrain", first)
    trained_in = time.perf_counter() - started
    assert retrained.policy.meta["trained_rows"] > first.policy.meta["trained_rows"]

    before = true_policy_value(first.policy, first.customers, truth, catalog)
    after = true_policy_value(retrained.policy, retrained.customers, truth, catalog)
    print(f"\nclosed loop: {DECISIONS:,} decisions in {simulated:.1f}s "
          f"({summary.holdouts} holdouts, {summary.explored} explored, "
          f"{summary.conversions} conversions); retrained on {len(original):,} + "
          f"{len(logged):,} rows in {trained_in:.1f}s; true value per customer "
          f"{before:.4f} -> {after:.4f}")
    assert after >= before - TOLERANCE, (before, after)
