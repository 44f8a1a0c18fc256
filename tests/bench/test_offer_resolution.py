"""bench/offer_resolution.py: one world x seed gives one row of figures against the truth."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import offer_resolution as bench  # noqa: E402

from nba.worlds import HELD_OUT  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402


def test_one_world_gives_a_row_with_the_offers_and_their_coverage_of_the_truth() -> None:
    design = HELD_OUT["dominant_costly"]
    settings = TrainSettings(params=replace(BoosterParams(), n_estimators=10, n_jobs=1))
    row = bench.one("dominant_costly", design, 0, settings)
    assert row[0] == "dominant_costly" and row[2] == str(len(design.margins))
    covered, offers = row[-1].split("/")
    assert int(offers) == len(design.margins) and 0 <= int(covered) <= int(offers)
    assert row[6] in ("yes", "no")
