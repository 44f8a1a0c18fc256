"""bench/selection_truth.py reaches every world set, each world with its own columns (issue 12,
the department_catalogue diagnosis)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import curse_gate  # noqa: E402
import numpy as np  # noqa: E402
import selection_truth as st  # noqa: E402

from nba.sealed_worlds import SEALED  # noqa: E402
from nba.worlds import generate  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402


def test_every_world_of_every_set_is_named_once():
    sizes = sum(len(designs) for designs in st.WORLD_SETS.values())
    assert len(st.ALL_WORLDS) == sizes
    assert "department_catalogue" in st.ALL_WORLDS and "many_offers" in st.ALL_WORLDS


def test_fixed_policies_score_a_world_with_its_own_columns():
    world = generate(replace(SEALED["department_catalogue"], rows_per_arm=40), 100)
    settings = TrainSettings(params=BoosterParams(n_estimators=5, n_jobs=1))
    rows = st.fixed_policies(world, settings)
    assert [r[0].split(" (")[0] for r in rows] == [
        "oracle", "offer 1 to all", "true best single", "random offer",
        "DR's in-sample best single", "best single chosen out of fold"]
    _, net = st.selection_truth(world, settings)
    assert float(rows[0][2]) == round(float(net.max(axis=1).clip(0).mean()), 3)


def test_expected_optimism_is_the_curse_of_the_argmax_only():
    rng = np.random.default_rng(0)
    clusters = np.arange(2_000)
    terms = rng.normal(0.0, 1.0, (5, 2_000))  # 5 candidates, independent noise, SE ~0.022
    # equal truths: the argmax's excess over the baseline (candidate 0) is positive
    equal = st.expected_optimism(terms, clusters, np.zeros(5), 0, 0.0, seed=1)
    assert equal[0] > 0.02 and equal[1] > equal[0] and 0.5 < equal[2] <= 1.0
    # one candidate far ahead: it is always the pick, its noise minus the baseline's is 0 on
    # average
    ahead = st.expected_optimism(terms, clusters, np.array([0.0, 0, 0, 0, 1.0]), 0, 0.0, seed=1)
    assert abs(ahead[0]) < 0.005


def test_null_maximum_grows_with_the_candidates_and_the_level():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(1_000), 2)
    one = curse_gate.null_max_quantiles(rng.normal(0, 1, (1, 2_000)), clusters, (0.5, 0.05))
    many = curse_gate.null_max_quantiles(rng.normal(0, 1, (10, 2_000)), clusters, (0.5, 0.05))
    assert abs(one[0]) < 0.005 and one[1] > one[0]  # one candidate: median 0, 1.645 SE at 5%
    assert many[0] > one[0] and many[1] > one[1]
