"""The split-half reliability of bench/reliability_truth.py (issue 12's ninth round, not adopted),
on hand-made halves whose signal and noise are known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import reliability_truth as rt  # noqa: E402


def split_halves(seed: int, signal_sd: tuple[float, ...], rows: int = 20_000
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uplift, halves, customers): per offer a signal of the given sd, two half models each
    off by their own independent noise (sd 1), the full model off by half as much noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0.0, 1.0, (rows, len(signal_sd))) * np.array(signal_sd)
    noise = rng.normal(0.0, 1.0, (rows, 2, len(signal_sd)))
    halves = signal[:, None, :] + noise
    return signal + noise.mean(axis=1), halves, np.arange(rows) // 2


def test_halves_are_disjoint_customers_of_the_given_rows():
    customers = np.repeat(np.arange(40), 3).astype(str)
    rows = np.arange(120) >= 30
    first, second = rt.half_masks(customers, rows, 0)
    assert not np.any(first & second) and np.array_equal(first | second, rows)
    assert set(customers[first]).isdisjoint(customers[second])


def test_split_half_reliability_is_about_zero_on_pure_noise():
    uplift, halves, customers = split_halves(0, (0.0, 0.0))
    reliability, cov, se = rt.split_half_reliability(uplift, halves, customers)
    assert np.all(reliability < 0.03)
    assert np.all(np.abs(cov) < 3 * se)


def test_split_half_reliability_is_the_signal_share_of_the_uplift_spread():
    # var(uplift) = signal 1 + noise 1/2, cov(halves) = signal 1: a reliability of 2/3
    uplift, halves, customers = split_halves(1, (1.0, 0.0))
    reliability, cov, se = rt.split_half_reliability(uplift, halves, customers)
    assert reliability[0] == pytest.approx(2 / 3, abs=0.03)
    assert cov[0] > 10 * se[0]
    assert reliability[1] < 0.03


def test_the_reliability_screen_keeps_the_varying_offer_and_shuts_the_flat_one_per_fold():
    uplift, halves, customers = split_halves(2, (0.5, 0.0, 0.0))
    fold = customers % 3
    keep = rt.reliability_by_fold(uplift, halves, fold, customers, screen_z=1.645)
    assert keep.shape == (3, 3)
    assert keep[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert keep[:, 1:].sum() <= 1  # each flat offer passes a 5% one-sided test by luck only
    shrink = rt.reliability_by_fold(uplift, halves, fold, customers)
    assert np.all(shrink[:, 0] > 0.2) and np.all(shrink[:, 1:] < 0.05)


def test_cached_fits_of_a_pair_are_dropped_once_its_capacity_settings_change():
    now = rt.fitted_with(["x_low", "t_base"], 100)
    data = {"s_x_low": np.array(now["x_low"]), "h_x_low": np.zeros(2), "p_x_low": np.zeros(2),
            "s_t_base": np.array("fitted with an older base"), "h_t_base": np.zeros(2),
            "p_t_base": np.zeros(2), "dr": np.zeros(2)}
    rt.drop_stale(data, now, ("h_", "p_"))
    assert sorted(data) == ["dr", "h_x_low", "p_x_low", "s_t_base", "s_x_low"]
    assert now["x_low"] != rt.fitted_with(["x_low"], 50)["x_low"]  # trees count too
