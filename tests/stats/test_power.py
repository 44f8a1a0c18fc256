"""rows_to_detect against simulation: at the rows it names, the test detects the gain with the
power asked for."""

import numpy as np
from statsmodels.stats.power import NormalIndPower

from stats import Estimate, mean_estimate
from stats.power import detectable_gain, rows_to_detect


def test_rows_named_give_the_power_asked_for() -> None:
    rng = np.random.default_rng(0)
    true_gain, pilot_rows = 0.05, 400
    pilot = mean_estimate(rng.normal(true_gain, 1.0, pilot_rows),
                          np.arange(pilot_rows))
    # plan for the true gain with the pilot's noise: the SE at pilot size is ~1/sqrt(400)
    planned = rows_to_detect(Estimate(true_gain, true_gain - 1.96 * pilot.se,
                                         true_gain + 1.96 * pilot.se), pilot_rows)
    assert planned is not None and planned > pilot_rows
    draws = rng.normal(true_gain, 1.0, (2_000, planned))
    z = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / np.sqrt(planned))
    assert 0.76 <= float(np.mean(z > 1.96)) <= 0.84


def test_no_size_to_plan_for_without_a_positive_gain() -> None:
    rng = np.random.default_rng(1)
    estimate = mean_estimate(rng.normal(-0.1, 1.0, 500), np.arange(500))
    assert estimate.value < 0 and rows_to_detect(estimate, 500) is None


def test_detectable_gain_is_2_8_standard_errors_at_5_percent_and_80_power() -> None:
    assert abs(detectable_gain(1.0) - 2.8016) < 1e-3


def test_agrees_with_statsmodels_one_sample_power() -> None:
    se, rows, gain = 0.02, 1_000, 0.03  # per-row sd = se * sqrt(rows)
    planned = rows_to_detect(Estimate(gain, gain - 1.96 * se, gain + 1.96 * se), rows)
    expected = NormalIndPower().solve_power(effect_size=gain / (se * np.sqrt(rows)),
                                            alpha=0.05, power=0.8, ratio=0)
    assert planned is not None and abs(planned - expected) <= 1.0 + 1e-3 * expected
