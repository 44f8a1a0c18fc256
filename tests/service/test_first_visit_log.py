"""First visits are randomized like known customers (holdout and exploration, keyed by the
session id or card), so their decision log exports rows a first-visit policy trains from.

The loop: anonymous sessions and unknown ids are decided by the service (the suite's champion
has no first-visit policy: the priors decide), some buy, `nba export-training` marks them
`new_customer`, and training's first-visit step fits a policy on them. Small: 400 visits,
one learner, few trees.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from features import io
from features.schema import feature_columns
from nba.cli import main
from state import Outcome
from tests.conftest import ADMIN_TOKEN, ONE_CANDIDATE, service_app
from training import first_visit

VISITS = 400
HOLDOUT, EXPLORATION = 0.25, 0.5
DEVICES, PAGES = ("mobile", "desktop", "tablet"), ("home", "footwear", "denim", "sale")


@pytest.fixture
def randomized_client(trained, loaded, state):
    """The service with a 25% holdout and 50% exploration (the suite's app has neither)."""
    app = service_app(trained, loaded, state, holdout_share=HOLDOUT, exploration=EXPLORATION,
                      exploration_seed=7)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN_TOKEN}"
    return client


def test_a_log_of_first_visits_exports_randomized_rows_that_train_a_first_visit_policy(
        randomized_client, state, trained, tmp_path: Path) -> None:
    rng = random.Random(3)
    bodies = []
    for i in range(VISITS):
        who = {"session_id": f"s{i}"} if i % 2 else {"customer_id": f"card-{i}"}
        cart = round(rng.uniform(5, 120), 2)
        context = {"device": rng.choice(DEVICES), "page": rng.choice(PAGES), "cart_value": cart}
        response = randomized_client.post("/v1/decisions",
                                          json={"channel": "web", "context": context, **who})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["customer_known"] is False
        bodies.append((body, context))
        served = body["offers"][0]["offer_id"] if body["offers"] else None
        # buyers: more of them with a big cart, more again with the gift
        if rng.random() < 0.1 + cart / 400 + 0.15 * (
                served == "first_purchase_gift"):
            state.log.record_outcome(Outcome(body["decision_id"], served, "purchased",
                                             cart, datetime.now(UTC)))

    held = [b for b, _ in bodies if all(s["reason"] == "holdout" for s in b["suppressed"])
            and not b["offers"]]
    # the holdout is the hash of the visitor's id: the same share as for known customers
    assert 0.15 < len(held) / VISITS < 0.35
    logged = [state.log.get(b["decision_id"]) for b, _ in bodies]
    assert any(r is not None and r.explored for r in logged)
    assert all(r is not None and 0 < r.propensity < 1 for r in logged)

    out = tmp_path / "exposures.parquet"
    db = state.url
    assert main(["export-training", "--out", str(out), "--state-url", db,
                 "--data-dir", str(trained.data_dir)]) == 0
    catalog = io.read_catalog(trained.data_dir / io.OFFERS)
    exposures = io.read_exposures(out, catalog)
    known, newcomers = first_visit.split(exposures)
    assert len(known) == 0 and len(newcomers) == VISITS
    assert (newcomers["treatment"] == catalog.control_label).sum() >= len(held)
    assert newcomers["propensity"].lt(1).all()

    kinds = feature_columns(pq.read_schema(out), io.EXPOSURES)
    settings = replace(trained_settings(trained), data_dir=tmp_path)
    assert first_visit.why_not(newcomers, kinds, catalog) is None
    policy = first_visit.fit(newcomers, kinds, catalog, settings)
    assert policy is not None
    assert policy.spec.names == ["device", "page", "cart_value"]
    assert policy.meta["first_visit_rows"] == VISITS
    assert set(policy.catalog.offer_ids) == {"first_purchase_gift", "consent_prompt"}


def trained_settings(trained):
    """Small training settings (few trees, one candidate, two folds)."""
    from training.settings import BoosterParams, TrainSettings

    return TrainSettings(data_dir=trained.data_dir, tracking_uri=trained.tracking_uri,
                         params=replace(BoosterParams(), n_estimators=10, n_jobs=1),
                         **ONE_CANDIDATE)
