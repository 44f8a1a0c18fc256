"""Evaluation metrics on data whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from training import evaluate as ev

RNG = np.random.default_rng(0)


def randomized(n: int = 40_000):
    """A 50/50 experiment where uplift is 0.2 for x > 0.5 and 0 otherwise."""
    x = RNG.random(n)
    treated = RNG.random(n) < 0.5
    true_uplift = np.where(x > 0.5, 0.2, 0.0)
    converted = (RNG.random(n) < 0.1 + treated * true_uplift).astype(int)
    return x, treated.astype(int), converted, true_uplift


def test_qini_of_the_true_ranking_beats_random_and_random_is_near_zero():
    x, treated, converted, truth = randomized()
    perfect = ev.qini_coefficient(truth + 1e-9 * x, treated, converted)
    noise = ev.qini_coefficient(RNG.random(len(x)), treated, converted)
    backwards = ev.qini_coefficient(-truth, treated, converted)
    assert perfect > 0.02 > abs(noise)
    assert backwards < 0


def test_qini_curve_ends_at_the_average_effect():
    x, treated, converted, truth = randomized()
    _, q = ev.qini_curve(x, treated, converted)
    ate = converted[treated == 1].mean() - converted[treated == 0].mean()
    assert q[0] == 0.0
    assert q[-1] == pytest.approx(ate, abs=1e-9)


def test_auuc_random_is_half_the_ate_and_the_model_beats_it():
    x, treated, converted, truth = randomized()
    ate = converted[treated == 1].mean() - converted[treated == 0].mean()
    assert ev.auuc(x, treated, converted) > ate / 2 + 0.01
    assert ev.auuc(RNG.random(len(x)), treated, converted) == pytest.approx(ate / 2, abs=0.01)


def test_uplift_at_top_share_and_by_decile_recover_the_truth():
    x, treated, converted, truth = randomized()
    assert ev.uplift_at(x, treated, converted, 0.3) == pytest.approx(0.2, abs=0.02)
    predicted, observed = ev.uplift_by_decile(truth + 1e-9 * x, treated, converted)
    assert observed[:5].mean() == pytest.approx(0.2, abs=0.02)
    assert observed[5:].mean() == pytest.approx(0.0, abs=0.02)


def test_ipw_value_is_unbiased_for_known_policies():
    n, arms = 60_000, 3
    logged = RNG.integers(0, arms, n)
    propensity = np.full(n, 1 / arms)
    means = np.array([1.0, 2.0, 3.5])
    reward = means[logged] + RNG.normal(0, 1, n)
    for arm in range(arms):
        estimate = ev.ipw_value(ev.one_hot(np.full(n, arm), arms), logged, reward, propensity)
        assert estimate.low < means[arm] < estimate.high
    mixed = np.full((n, arms), 1 / arms)
    assert ev.ipw_value(mixed, logged, reward, propensity).value == pytest.approx(
        means.mean(), abs=0.05)


def test_greedy_arm_picks_the_best_eligible_positive_offer():
    net = np.array([[0.5, 1.0], [-0.1, -0.2], [0.3, 2.0]])
    eligible = np.array([[True, True], [True, True], [True, False]])
    assert ev.greedy_arm(net, eligible).tolist() == [2, 0, 1]
