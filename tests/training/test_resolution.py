"""Each offer's DR net value and how finely the data tell the offers apart (report only)."""

from __future__ import annotations

import numpy as np
import pytest

from stats.policy_value import aipw_scores, arm_effects
from training.resolution import format_resolution, offer_resolution, resolution_summary, top_two

OFFERS = ("a", "b", "c")
MARGINS = np.array([0.0, 2.0, 1.0, 1.0])  # index 0: control
COSTS = np.array([0.0, 0.1, 0.0, 0.05])


def world(n: int, effects: tuple[float, ...], seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(DR scores, logged arms, customers) of a uniform randomized test with known effects over
    a 0.1 base rate; two rows a customer."""
    rng = np.random.default_rng(seed)
    logged = rng.integers(0, len(effects) + 1, n)
    rate = 0.1 + np.concatenate([[0.0], effects])[logged]
    converted = (rng.random(n) < rate).astype(float)
    propensity = np.full(n, 1 / (len(effects) + 1))
    dr = aipw_scores(logged, propensity, converted, np.zeros((n, len(effects) + 1)))
    return dr, logged, np.arange(n) // 2


def test_net_is_margin_times_the_dr_arm_effect_minus_cost_and_covers_the_truth():
    effects = (0.30, 0.10, 0.05)
    dr, logged, customers = world(40_000, effects)
    table = offer_resolution(dr, logged, MARGINS, COSTS, OFFERS, customers)
    expected = MARGINS[1:] * arm_effects(dr, logged) - COSTS[1:]
    truth = dict(zip(OFFERS, MARGINS[1:] * np.array(effects) - COSTS[1:], strict=True))
    by_offer = table.set_index("offer")
    assert by_offer.loc[list(OFFERS), "net"].to_numpy() == pytest.approx(expected)
    assert list(table["offer"]) == ["a", "b", "c"]  # 0.5, 0.1, 0.0: best first
    for offer, value in truth.items():
        assert by_offer.loc[offer, "net_low"] <= value <= by_offer.loc[offer, "net_high"]
    assert list(table["overlaps_best"]) == [True, False, False]


def test_offers_the_data_cannot_tell_apart_are_counted_and_the_rows_to_resolve_them_given():
    dr, logged, customers = world(2_000, (0.12, 0.11, 0.02), seed=3)
    margins, costs = np.ones(4), np.zeros(4)
    table = offer_resolution(dr, logged, margins, costs, OFFERS, customers)
    difference = top_two(dr, margins, costs, OFFERS, table, customers)
    assert difference is not None and difference.low < 0 < difference.high
    line, metrics = resolution_summary(table, difference, 500)
    overlapping = int(table["overlaps_best"].sum()) - 1
    assert overlapping >= 1
    assert metrics["offers_indistinguishable_from_best"] == overlapping
    assert metrics["offer_best_resolved"] == 0.0
    assert f"{overlapping} of the other 2 offers' 95% intervals overlap" in line
    if difference.value > 0:
        needed = metrics["offer_rows_per_arm_to_resolve_top_two"]
        assert needed > 500  # the SE shrinks as 1 / sqrt(rows): more rows than today
        assert f"{int(needed):,} rows per arm would tell a gap of this size apart" in line


def test_a_clear_best_offer_is_said_to_be_told_from_the_runner_up():
    dr, logged, customers = world(20_000, (0.40, 0.05, 0.0), seed=1)
    table = offer_resolution(dr, logged, MARGINS, COSTS, OFFERS, customers)
    line, metrics = resolution_summary(
        table, top_two(dr, MARGINS, COSTS, OFFERS, table, customers), 5_000)
    assert metrics["offers_indistinguishable_from_best"] == 0
    assert metrics["offer_best_resolved"] == 1.0
    assert "offer_rows_per_arm_to_resolve_top_two" not in metrics
    assert "the best single offer is told from the runner-up" in line


def test_an_offer_never_logged_has_no_figures_and_sorts_last():
    dr, logged, customers = world(4_000, (0.2, 0.1, 0.0))
    logged = np.where(logged == 1, 0, logged)  # offer "a" never shown
    table = offer_resolution(dr, logged, MARGINS, COSTS, OFFERS, customers)
    assert table["offer"].iloc[-1] == "a" and np.isnan(table["net"].iloc[-1])
    assert not table["overlaps_best"].iloc[-1]
    _, metrics = resolution_summary(table, None, 1_000)
    assert metrics["offers_with_estimate"] == 2


def test_arms_and_offers_must_match():
    dr, logged, customers = world(100, (0.2, 0.1))
    with pytest.raises(ValueError, match="3 arms for 3 offers"):
        offer_resolution(dr, logged, MARGINS, COSTS, OFFERS, customers)


def test_the_printed_table_shows_the_top_offers_and_counts_the_rest():
    effects = tuple(np.linspace(0.2, 0.0, 12))
    offers = tuple(f"o{k:02d}" for k in range(12))
    dr, logged, customers = world(6_000, effects)
    ones, zeros = np.ones(13), np.zeros(13)
    table = offer_resolution(dr, logged, ones, zeros, offers, customers)
    line, _ = resolution_summary(table, top_two(dr, ones, zeros, offers, table, customers), 460)
    text = format_resolution(table, line, top=10)
    rest = int(table["overlaps_best"].iloc[10:].sum())
    assert f"... and 2 more offer(s), {rest} of them overlapping the best" in text
    assert text.endswith(line)
    shown = text[: -len(line)]
    assert all(o in shown for o in table["offer"].iloc[:10])
    assert not any(o in shown for o in table["offer"].iloc[10:])
