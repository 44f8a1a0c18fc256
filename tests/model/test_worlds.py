"""Selection recovers known answers on small synthetic worlds (nba.worlds): the best single
offer where nothing varies, targeting where a segment effect is strong."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nba.worlds import DESIGNS, generate, train_and_score
from training.settings import BoosterParams, TrainSettings

pytestmark = pytest.mark.slow  # each test trains a small menu with cross-fitting (~20-60 s)

SETTINGS = TrainSettings(params=BoosterParams(n_estimators=60, n_jobs=1), learners=("s",),
                         capacities=("low", "base"), folds=3)


def test_with_no_heterogeneity_the_best_single_offer_is_recovered():
    world = generate(replace(DESIGNS["no_heterogeneity"], rows_per_arm=1_000), seed=5)
    outcome = train_and_score(world, SETTINGS)
    assert outcome.policy >= 0.95 * outcome.best_single
    assert (outcome.arms == 3).mean() > 0.8  # offer_02 has the best flat effect
    low, high = outcome.gain[1], outcome.gain[2]
    assert low <= 0.0 <= high or outcome.chosen.endswith("best_single")


def test_a_thresholded_segment_effect_is_targeted():
    world = generate(replace(DESIGNS["thresholded"], rows_per_arm=1_500), seed=6)
    outcome = train_and_score(world, SETTINGS)
    assert not outcome.chosen.endswith("best_single")
    assert outcome.policy > outcome.best_single
    assert outcome.policy >= 0.6 * outcome.oracle
    assert outcome.gain[1] > 0  # the cross-fitted DR gain over the best single offer is real
