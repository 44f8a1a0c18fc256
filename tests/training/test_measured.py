"""The chosen candidate's kept fold policies are the ones selection scored."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from decisioning.eligibility import tier_eligibility
from features.build import build_matrix, infer_spec
from nba.worlds import DESIGNS, FEATURES, generate
from training import crossfit
from training import evaluate as ev
from training.pipeline import STEPS, Progress, economics, select_policy
from training.settings import BoosterParams, TrainSettings


@pytest.mark.parametrize("rule", ["nobody", "best_single", "confident", "shrink_0.5", "gated"])
def test_each_folds_kept_policy_picks_the_arms_selection_scored(rule):
    world = generate(replace(DESIGNS["costly_narrow"], rows_per_arm=400), 3)
    settings = TrainSettings(params=BoosterParams(n_estimators=10, n_jobs=1), learners=("t",),
                             capacities=("low",), rules=(rule,), contact_z=None,
                             crossfit_workers=1)
    spec = infer_spec(world.exposures, FEATURES)
    selection = select_policy(world.exposures, spec, world.catalog, settings, Progress(STEPS))
    measured = selection.measured
    assert selection.chosen.rule == rule and measured is not None
    assert measured.folds == settings.folds
    assert all((m is None) == (rule in ("nobody", "best_single")) for m in measured.models)
    fold = crossfit.folds(world.exposures["customer_id"].astype(str).to_numpy(), settings.folds,
                          settings.seed)
    X = build_matrix(world.exposures, spec)
    margins, costs = economics(world.catalog)
    eligible = tier_eligibility(world.catalog, None)  # the worlds have no tiers: one row
    again = np.empty(len(X), dtype=np.int64)
    for j in range(measured.folds):
        net = measured.ranked(j, X[fold == j]) * margins[1:] - costs[1:]
        again[fold == j] = ev.greedy_arm(np.nan_to_num(net, nan=-np.inf), eligible)
    assert np.array_equal(again, selection.arms[selection.chosen.name])
    if rule == "nobody":
        assert not again.any()
