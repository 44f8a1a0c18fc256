"""Split-half uplift on a world with known truth: a varying offer is reliable, a flat one not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from features.build import build_matrix, infer_spec
from nba.worlds import DESIGNS, FEATURES, generate
from training import crossfit, rules
from training.learners import CAPACITIES
from training.settings import BoosterParams


@pytest.fixture(scope="module")
def sleeping_dogs():
    """(OOF uplift, split halves, placebo halves, fold, customers) of t/low on sleeping dogs
    at 4,000 rows per arm: offer 1 turns on x1 (sd 0.055), offer 2 is a flat 0.015."""
    world = generate(replace(DESIGNS["sleeping_dogs"], rows_per_arm=4_000), seed=1)
    frame = world.exposures
    X = build_matrix(frame, infer_spec(frame, FEATURES))
    customers = frame["customer_id"].astype(str).to_numpy()
    fold = crossfit.folds(customers, 3, 1)
    args = ("t", X, frame["treatment"].to_numpy(dtype=object), frame["converted"].to_numpy(),
            frame["propensity"].to_numpy(), fold)
    kwargs = {"offer_ids": world.catalog.offer_ids, "control_label": world.catalog.control_label,
              "params": CAPACITIES["low"].apply(BoosterParams(n_estimators=100, n_jobs=1)),
              "seed": 1}
    uplift = crossfit.uplift_predictions(*args, **kwargs).uplift
    halves = crossfit.split_half_uplift(*args, customers, **kwargs)
    placebo = crossfit.split_half_uplift(*args, customers, **kwargs, placebo=True)
    return uplift, halves, placebo, fold, customers


def test_halves_are_fitted_on_disjoint_customers_of_the_other_folds():
    customers = np.repeat(np.arange(40), 3).astype(str)
    rows = np.arange(120) >= 30
    first, second = crossfit.half_masks(customers, rows, 0)
    assert not np.any(first & second) and np.array_equal(first | second, rows)
    assert set(customers[first]).isdisjoint(customers[second])


def test_the_varying_offer_is_reliable_in_every_fold_and_the_flat_one_far_less(sleeping_dogs):
    uplift, halves, placebo, fold, customers = sleeping_dogs
    assert np.isfinite(halves).all()
    reliability = rules.reliability_by_fold(uplift, halves, fold, customers)
    assert reliability[:, 1].min() > 0.6
    # one split per fold is a noisy estimate: a fold of the flat offer can reach ~0.45
    assert reliability[:, 2].mean() < 0.5 * reliability[:, 1].mean()
    # with the arms shuffled no offer varies: the halves agree on little for any offer
    assert rules.reliability_by_fold(uplift, placebo, fold, customers)[:, 1].max() < 0.2
