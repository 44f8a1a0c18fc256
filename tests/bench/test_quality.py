"""The Hillstrom benchmark's targets logic (bench/quality.py), on hand-made per-seed results."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import quality  # noqa: E402


def run(gain: tuple[float, float, float], *, best: str = "mens e-mail to all",
        sent: float = 1.0, at30: float = 0.07) -> dict:
    """One seed's result, with only what the targets read."""
    return {"vs_best_arm": (best, *gain), "uplift_at_30_womens": at30,
            "policies": {"learned (ours)": {"sent": sent}}}


@pytest.mark.parametrize(("gains", "worse"), [
    ([(0.0, 0.0, 0.0)], 0),  # the learned policy is the best arm: a tie, not worse
    ([(-0.02, -0.05, 0.01), (0.01, -0.01, 0.03)], 0),  # below on the point, within noise
    ([(-0.02, -0.05, -0.001), (0.01, -0.01, 0.03)], 1),  # one interval entirely below 0
    ([(-0.02, -0.05, -0.001), (-0.03, -0.06, -0.01)], 2),
])
def test_a_seed_is_worse_only_when_its_whole_interval_is_below_zero(gains, worse):
    assert quality.seeds_worse(np.array(gains)) == worse


def test_uplift_target_is_met_on_the_mean_and_counts_the_seeds_below():
    published = quality.PUBLISHED_UPLIFT_AT_30
    mean, below, met = quality.uplift_target([published + 0.01, published - 0.005])
    assert (round(mean, 6), below, met) == (round(published + 0.0025, 6), 1, True)
    assert quality.uplift_target([published - 0.001])[1:] == (1, False)


def test_variants_cover_every_outcome_at_every_cost_with_the_cost_in_its_unit():
    grid = {(v.outcome, v.cost) for v in quality.VARIANTS if v.test_size == 0.3}
    assert grid == {(o, c) for o in ("spend", "visit", "conversion") for c in (0.0, 0.30, 1.00)}
    assert len({v.name for v in quality.VARIANTS}) == len(quality.VARIANTS)
    assert quality.UPLIFT_VARIANT in {v.name for v in quality.VARIANTS}
    # spend is modelled through conversions (valued at the mean order), visits as visits
    assert {v.outcome: v.converted for v in quality.VARIANTS} == {
        "spend": "conversion", "conversion": "conversion", "visit": "visit"}


def test_targets_block_marks_each_variant_and_the_uplift_target():
    by_name = {v.name: v for v in quality.VARIANTS}
    results = [
        (by_name["spend, c=0.00"], [run((0.0, 0.0, 0.0)), run((0.01, -0.02, 0.04))]),
        (by_name["visit, c=1.00"], [run((-0.01, -0.02, -0.001), best="treat nobody", sent=0.1),
                                    run((0.0, 0.0, 0.0), best="treat nobody", sent=0.0)]),
        (by_name[quality.UPLIFT_VARIANT], [run((0.0, -0.001, 0.001), at30=0.05)]),
    ]
    block = quality.targets(results)
    rows = {line.split("|")[1].strip(): line for line in block.splitlines()
            if line.startswith("| ") and "variant" not in line}
    cells = [cell.strip() for cell in rows["spend, c=0.00"].strip(" |").split("|")]
    assert "0 of 2" in cells and cells[-1] == "met"
    assert "| 1 of 2" in rows["visit, c=1.00"] and "NOT met" in rows["visit, c=1.00"]
    assert "| 5% " in rows["visit, c=1.00"]  # the learned policy's share e-mailed, over seeds
    assert "every variant run: **NOT met** (1 of 3 variants" in block
    assert f"0.0500 >= {quality.PUBLISHED_UPLIFT_AT_30}" in block
    assert "uplift@30%" in block and "**NOT met** (mean over 1 seeds; 1 below)" in block


def test_targets_block_says_when_the_uplift_variant_was_not_run():
    spend = next(v for v in quality.VARIANTS if v.outcome == "spend")
    block = quality.targets([(spend, [run((0.0, 0.0, 0.0))])])
    assert "every variant run: **met**" in block
    assert f"not run (it is measured on the '{quality.UPLIFT_VARIANT}' variant)" in block
