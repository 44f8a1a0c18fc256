"""Selection recovers known answers on small synthetic worlds (nba.worlds): the best single
offer where nothing varies, targeting where a segment effect is strong."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nba.worlds import DESIGNS, Design, generate, train_and_score
from training.settings import BoosterParams, TrainSettings

pytestmark = pytest.mark.slow  # each test trains a small menu with cross-fitting (~20-60 s)

SETTINGS = TrainSettings(params=BoosterParams(n_estimators=60, n_jobs=1), learners=("s",),
                         capacities=("low", "base"), folds=3, nested_z=0.0)


def _flat(frame: pd.DataFrame) -> np.ndarray:
    return np.tile([0.01, 0.06, 0.02], (len(frame), 1))


def test_with_no_heterogeneity_the_best_single_offer_is_recovered():
    # offer_01 is clearly best for everyone (the benchmark's flat world has offers closer than
    # the noise of 1,000 rows per arm, where any blanket offer within noise is a fair answer)
    world = generate(Design("flat", (20.0,) * 3, (0.1,) * 3, _flat, rows_per_arm=1_000), seed=5)
    outcome = train_and_score(world, SETTINGS)
    assert (outcome.arms == 2).mean() > 0.95
    assert outcome.policy >= 0.95 * outcome.best_single
    assert outcome.gain[1] <= 0.0  # no evidence that deviating from it pays
    # out of sample, choosing from the menu does not beat it (the winner's curse shows)
    assert outcome.nested_gain[0] < 0.0
    assert outcome.chosen.endswith("best_single")


def test_where_no_offer_pays_nothing_is_sent():
    # every offer lifts conversion by 0.005 (worth 0.10) and costs 0.50: the right answer is
    # to contact nobody, whatever the argmax over noisy candidates says
    world = generate(Design("pays_never", (20.0,) * 3, (0.5,) * 3,
                            lambda f: np.full((len(f), 3), 0.005), rows_per_arm=1_000), seed=7)
    outcome = train_and_score(world, replace(SETTINGS, contact_z=0.5))
    assert (outcome.arms == 0).all() and outcome.policy == 0.0
    assert outcome.chosen.endswith("/nobody")


def test_a_thresholded_segment_effect_is_targeted():
    world = generate(replace(DESIGNS["thresholded"], rows_per_arm=1_500), seed=6)
    outcome = train_and_score(world, SETTINGS)
    assert not outcome.chosen.endswith("best_single")
    assert outcome.policy > outcome.best_single
    assert outcome.policy >= 0.6 * outcome.oracle
    assert outcome.gain[0] > 0  # the cross-fitted DR estimate of the gain agrees
    assert outcome.nested_gain[1] > 0  # and so does the nested one, beyond its noise
    assert outcome.chosen == outcome.full_choice  # the nested check kept the targeting choice


def fit_one_rule(world, spec, rule: str):
    """The real selection and refit with a menu of one candidate, t/low/<rule>."""
    from training.pipeline import STEPS, Progress, fit_chosen

    settings = replace(SETTINGS, learners=("t",), capacities=("low",), rules=(rule,),
                       nested_z=None)
    policy, selection = fit_chosen(world.exposures, spec, world.catalog, settings,
                                   Progress(STEPS))
    assert selection.chosen.name == f"t/low/{rule}"
    return policy, selection


def test_the_calibrated_rule_serves_a_slope_per_offer_and_targets_a_segment_effect():
    from features.build import build_matrix, infer_spec
    from nba.worlds import FEATURES
    from training.pipeline import policy_arms

    world = generate(replace(DESIGNS["thresholded"], rows_per_arm=1_500), seed=6)
    spec = infer_spec(world.exposures, FEATURES)
    policy, selection = fit_one_rule(world, spec, "calibrated")
    slopes = np.asarray(policy.shrinkage)
    assert slopes.shape == (len(world.catalog.offers),)
    assert np.all((slopes >= 0.0) & (slopes <= 1.0)) and slopes.max() > 0.3
    metrics = selection.evaluation.metrics
    assert [metrics[f"shrinkage_{o}"] for o in world.catalog.offer_ids] == slopes.tolist()
    arms = policy_arms(policy, policy.score(build_matrix(world.test, spec))[0], None)
    assert world.value(arms) > world.best_single()


def test_the_screened_rule_keeps_the_offer_whose_effect_varies():
    from features.build import build_matrix, infer_spec
    from nba.worlds import FEATURES
    from training.pipeline import policy_arms

    # offer 0 pays only where x1 > 0.6 (net 2.3 there, -0.1 elsewhere); offers 1-3 lift
    # everyone alike (net 0.7): the oracle (1.34) sends offer 0 above 0.6 and a flat one below,
    # the best single offer (offer 0 to all) earns 0.86
    def one_of_four(f: pd.DataFrame) -> np.ndarray:
        x1 = f["x1"].to_numpy()
        return np.column_stack([0.12 * (x1 > 0.6), *[np.full(len(f), 0.04)] * 3])

    world = generate(Design("one_of_four", (20.0,) * 4, (0.1,) * 4, one_of_four,
                            rows_per_arm=1_500), seed=8)
    spec = infer_spec(world.exposures, FEATURES)
    policy, selection = fit_one_rule(world, spec, "screened")
    kept = np.asarray(policy.shrinkage)
    assert kept.shape == (4,) and set(kept.tolist()) <= {0.0, 1.0} and kept[0] == 1.0
    metrics = selection.evaluation.metrics
    assert [metrics[f"shrinkage_{o}"] for o in world.catalog.offer_ids] == kept.tolist()
    arms = policy_arms(policy, policy.score(build_matrix(world.test, spec))[0], None)
    assert world.value(arms) > world.best_single()
