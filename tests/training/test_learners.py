"""Capacity that scales with the data: the leaf floor of a small arm still lets a tree split."""

from __future__ import annotations

import numpy as np

from training.learners import CAPACITIES, fit_learner, fit_to_rows, rows_per_arm
from training.settings import BoosterParams

PARAMS = CAPACITIES["small"].apply(BoosterParams(n_estimators=60, n_jobs=1))


def test_the_leaf_floor_is_capped_by_rows_per_arm_and_kept_with_many_rows():
    assert fit_to_rows(PARAMS, 480).min_child_samples == 480 // 8
    assert fit_to_rows(PARAMS, 100_000).min_child_samples == PARAMS.min_child_samples
    assert fit_to_rows(PARAMS, 50).min_child_samples == 20  # never below the floor
    assert rows_per_arm(np.array(["c", "a", "a", "b", "b", "b"], dtype=object)) == 2


def test_a_narrow_effect_in_a_small_arm_is_recovered_at_small_capacity():
    # 600 rows per arm, the offer works only in the top eighth of x0 (75 rows): low's fixed
    # floor of 200 rows a leaf cannot isolate it (0.23 of the 0.6 uplift); small's capped one can
    rng = np.random.default_rng(3)
    n = 1_200
    X = rng.random((n, 3))
    treatment = np.where(np.arange(n) % 2 == 0, "control", "a").astype(object)
    narrow = X[:, 0] > 0.875
    converted = (rng.random(n) < 0.05 + 0.6 * (treatment == "a") * narrow).astype(int)
    model = fit_learner("t", X, treatment, converted, np.full(n, 0.5), control_label="control",
                        params=PARAMS, seed=0)
    test = rng.random((2_000, 3))
    uplift = model.predict(test)[0][:, 0]
    inside = test[:, 0] > 0.875
    assert uplift[inside].mean() > 0.3
    assert uplift[~inside].mean() < 0.1


def test_a_capacitys_regularisers_reach_lightgbm_and_the_base_settings_pass_none():
    base = BoosterParams(n_estimators=40, n_jobs=1)
    assert "extra_trees" not in base.as_lightgbm(0) and "path_smooth" not in base.as_lightgbm(0)
    slow = CAPACITIES["low_slow"].apply(base)
    assert (slow.learning_rate, slow.n_estimators) == (base.learning_rate / 2, 40)
    assert CAPACITIES["low_l2"].apply(base).reg_lambda == 20.0
    rng = np.random.default_rng(0)
    X = rng.random((800, 3))
    treatment = np.where(np.arange(800) % 2 == 0, "control", "a").astype(object)
    converted = (rng.random(800) < 0.1 + 0.2 * (treatment == "a") * (X[:, 0] > 0.5)).astype(int)
    for name, key, value in (("low_et", "extra_trees", True), ("low_smooth", "path_smooth", 100.0)):
        params = CAPACITIES[name].apply(base)
        model = fit_learner("t", X, treatment, converted, np.full(800, 0.5),
                            control_label="control", params=params, seed=0)
        assert model.control.params[key] == value
        assert model.predict(X)[0].shape == (800, 1)
