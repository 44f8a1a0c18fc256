"""bench/selection_truth.py reaches every world set, each world with its own columns (issue 12,
the department_catalogue diagnosis)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

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
