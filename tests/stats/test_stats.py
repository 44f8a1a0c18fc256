"""The statistics module against statsmodels / scipy on the same data, and against known truth."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep

from stats import (
    Z95,
    aipw_scores,
    arm_effects,
    clustered_se,
    ipw_scores,
    mean_estimate,
    mean_variance,
    newcombe_difference,
    normal_difference,
    paired_difference,
    policy_terms,
    profit_terms,
    relative_lift,
    srm_chi_square,
    welch_difference,
)


@pytest.fixture
def clustered() -> tuple[np.ndarray, np.ndarray]:
    """Terms with a strong customer effect: 300 customers, 1 to 6 rows each."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 7, 300)
    clusters = np.repeat(np.arange(300), sizes)
    terms = rng.normal(0, 1, 300)[clusters] + rng.normal(0, 0.5, len(clusters))
    return terms, clusters


def test_clustered_se_equals_statsmodels_cluster_robust_ols(clustered):
    terms, clusters = clustered
    fit = sm.OLS(terms, np.ones(len(terms))).fit(cov_type="cluster",
                                                 cov_kwds={"groups": clusters})
    assert clustered_se(terms, clusters) == pytest.approx(float(fit.bse[0]), rel=1e-9)
    # and it is wider than pretending the rows were independent
    assert clustered_se(terms, clusters) > 1.5 * clustered_se(terms)


def test_one_row_per_cluster_is_the_textbook_interval():
    terms = np.array([1.0, 3.0, 2.0, 6.0])
    se = np.std(terms, ddof=1) / 2.0
    assert clustered_se(terms, np.array(["a", "b", "c", "d"])) == pytest.approx(se)
    estimate = mean_estimate(terms)
    assert (estimate.value, estimate.low, estimate.high) == pytest.approx(
        (3.0, 3.0 - Z95 * se, 3.0 + Z95 * se))
    assert pytest.approx(1.959964, abs=1e-6) == Z95


def test_hand_computed_clustered_example():
    # clusters {a: 1, 3}, {b: 2}, {c: 6}: mean 3, centred cluster sums -2, -1, 3
    se = clustered_se(np.array([1.0, 3.0, 2.0, 6.0]), np.array(["a", "a", "b", "c"]))
    assert se == pytest.approx(np.sqrt(3 / 2 * (4 + 1 + 9)) / 4)


def test_too_few_rows_or_clusters_raise():
    with pytest.raises(ValueError, match="at least 2 rows"):
        mean_estimate(np.array([1.0]))
    with pytest.raises(ValueError, match="at least 2 clusters"):
        mean_estimate(np.array([1.0, 2.0]), np.array(["a", "a"]))
    with pytest.raises(ValueError, match="cluster labels"):
        mean_estimate(np.array([1.0, 2.0]), np.array(["a"]))


def test_paired_difference_is_tighter_than_separate_intervals(clustered):
    terms, clusters = clustered
    other = terms + 0.1 + np.random.default_rng(4).normal(0, 0.05, len(terms))
    paired = paired_difference(other, terms, clusters)
    assert paired.covers(0.1)
    assert paired.width < 0.2 * mean_estimate(terms, clusters).width


def test_srm_matches_scipy_and_flags_a_mismatch():
    chi2, p = srm_chi_square(60, 1000, 0.05)
    assert chi2 == pytest.approx((60 - 50) ** 2 / 50 + (940 - 950) ** 2 / 950)
    assert p == pytest.approx(float(sps.chi2.sf(chi2, 1)))
    assert srm_chi_square(500, 1000, 0.05)[1] < 1e-9


def _logged_world(n: int, seed: int):
    """3 arms, non-uniform known propensities; conversion depends on x and the arm."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    truth = np.column_stack([0.1 + 0.2 * x, 0.15 + 0.2 * x, 0.05 + 0.5 * x])  # P(y | arm)
    probs = np.array([0.5, 0.3, 0.2])
    logged = rng.choice(3, n, p=probs)
    y = (rng.uniform(0, 1, n) < truth[np.arange(n), logged]).astype(float)
    return x, truth, probs[logged], logged, y


def test_dr_and_ipw_estimates_of_a_known_policy_cover_its_true_value_and_dr_is_tighter():
    margins, costs = np.array([0.0, 10.0, 20.0]), np.array([0.0, 0.5, 1.0])
    covered = {"ipw": 0, "dr": 0}
    widths = {"ipw": [], "dr": []}
    for seed in range(40):
        x, truth, propensity, logged, y = _logged_world(4000, seed)
        chosen = np.where(x > 0.5, 2, 1)  # a segment policy
        true_value = np.mean(margins[chosen] * (truth[np.arange(len(x)), chosen] - truth[:, 0])
                             - costs[chosen])
        noisy_model = np.clip(truth + 0.03 * np.sin(7 * x)[:, None], 0, 1)  # a decent model
        for name, scores in (("ipw", ipw_scores(logged, propensity, y, 3)),
                             ("dr", aipw_scores(logged, propensity, y, noisy_model))):
            estimate = mean_estimate(profit_terms(chosen, scores, margins, costs))
            covered[name] += estimate.covers(true_value)
            widths[name].append(estimate.width)
    assert covered["dr"] >= 34 and covered["ipw"] >= 34  # 95% of 40 is 38; binomial slack
    assert np.mean(widths["dr"]) < 0.8 * np.mean(widths["ipw"])


def test_dr_with_a_wrong_outcome_model_is_still_unbiased():
    margins, costs = np.array([0.0, 1.0, 1.0]), np.zeros(3)
    estimates = []
    for seed in range(30):
        x, truth, propensity, logged, y = _logged_world(3000, seed)
        wrong = np.full_like(truth, 0.5)
        estimates.append(profit_terms(np.full(len(x), 2), aipw_scores(logged, propensity, y,
                                                                       wrong),
                                      margins, costs).mean())
    true_value = np.mean(truth[:, 2] - truth[:, 0])
    assert abs(np.mean(estimates) - true_value) < 3 * np.std(estimates) / np.sqrt(30)


def test_arm_effects_are_unconfounded_where_the_naive_arm_means_are_not():
    # arm 2 is logged mostly to high-x customers, who convert more anyway: comparing arm means
    # credits the offer with the customers' x; the DR arm effect recovers the true average
    rng = np.random.default_rng(7)
    n = 40_000
    x = rng.uniform(0, 1, n)
    truth = np.column_stack([0.1 + 0.4 * x, 0.12 + 0.4 * x, 0.11 + 0.4 * x])
    probs = np.column_stack([np.full(n, 0.4), 0.6 - 0.5 * x, 0.5 * x])
    logged = (probs.cumsum(axis=1) < rng.uniform(0, 1, (n, 1))).sum(axis=1)
    y = (rng.uniform(0, 1, n) < truth[np.arange(n), logged]).astype(float)
    mu = np.column_stack([0.1 + 0.4 * x] * 3)  # a model that knows x but not the offers
    effects = arm_effects(aipw_scores(logged, probs[np.arange(n), logged], y, mu), logged)
    assert effects == pytest.approx([0.02, 0.01], abs=0.01)
    naive = [y[logged == a].mean() - y[logged == 0].mean() for a in (1, 2)]
    assert naive[1] - 0.01 > 0.05 and naive[0] - 0.02 < -0.04
    # an arm nobody was shown has no effect to report
    unseen = arm_effects(np.ones((3, 3)), np.array([0, 1, 0]))
    assert unseen[0] == 0.0 and np.isnan(unseen[1])


def test_ipw_scores_are_reward_over_propensity_where_the_policy_matches():
    scores = ipw_scores(np.array([0, 1, 1]), np.array([0.5, 0.25, 0.25]),
                        np.array([1.0, 2.0, 0.0]), 2)
    assert policy_terms(np.array([1, 1, 0]), scores) == pytest.approx([0.0, 8.0, 0.0])
    with pytest.raises(ValueError, match="propensities"):
        ipw_scores(np.array([0]), np.array([0.0]), np.array([1.0]), 2)


def test_srm_edges_no_rows_and_a_switched_off_group():
    assert srm_chi_square(0, 0, 0.05) == (0.0, 1.0)
    assert srm_chi_square(3, 100, 0.0) == (float("inf"), 0.0)
    assert srm_chi_square(0, 100, 0.0) == (0.0, 1.0)


def test_mean_variance_with_ddof_0_is_the_sandwich_without_small_sample_factor(clustered):
    terms, clusters = clustered
    mean, variance, units = mean_variance(terms, clusters, ddof=0)
    assert units == len(np.unique(clusters)) and mean == pytest.approx(terms.mean())
    assert variance == pytest.approx(clustered_se(terms, clusters) ** 2 * (units - 1) / units)


def test_welch_difference_is_scipys_welch_interval_without_clusters() -> None:
    """One decision per customer: the report's Welch interval is scipy's, to the digit."""
    rng = np.random.default_rng(5)
    a, b = rng.gamma(2.0, 3.0, 300), rng.gamma(2.0, 2.5, 250)
    ours = welch_difference(a, b)
    theirs = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert ours is not None
    assert ours.value == pytest.approx(a.mean() - b.mean())
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high))


def test_normal_difference_is_the_unpooled_wald_interval_of_two_proportions() -> None:
    """0/1 outcomes: p_a - p_b +/- z sqrt(p_a(1-p_a)/n_a + p_b(1-p_b)/n_b), z from scipy."""
    a = np.r_[np.ones(30), np.zeros(70)]
    b = np.r_[np.ones(20), np.zeros(80)]
    half = sps.norm.ppf(0.975) * np.sqrt(0.3 * 0.7 / 100 + 0.2 * 0.8 / 100)
    ours = normal_difference(a, b)
    assert ours is not None
    assert (ours.value, ours.low, ours.high) == pytest.approx((0.1, 0.1 - half, 0.1 + half))


def test_relative_lift_is_the_delta_method_on_the_log_ratio() -> None:
    """The interval is exp(log(m_a/m_b) +/- z se) - 1, and None when a mean is not positive."""
    a, b = np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0])
    se = np.sqrt(a.var(ddof=1) / 3 / 16 + b.var(ddof=1) / 3 / 4)
    ours = relative_lift(a, b, ddof=1)
    assert ours is not None
    z = sps.norm.ppf(0.975)
    assert (ours.value, ours.low, ours.high) == pytest.approx(
        (1.0, 2 * np.exp(-z * se) - 1, 2 * np.exp(z * se) - 1))
    assert relative_lift(a, np.zeros(3), ddof=1) is None


@pytest.mark.parametrize(("k_a", "n_a", "k_b", "n_b"), [(30, 100, 20, 100), (13, 200, 0, 7),
                                                        (5, 5, 2, 9), (0, 40, 0, 3)])
def test_newcombe_difference_is_statsmodels_newcomb_interval(k_a, n_a, k_b, n_b) -> None:
    """One row per customer: exactly statsmodels' Newcombe interval, also at 0/n and n/n."""
    a = np.r_[np.ones(k_a), np.zeros(n_a - k_a)]
    b = np.r_[np.ones(k_b), np.zeros(n_b - k_b)]
    ours = newcombe_difference(a, b, (np.arange(n_a), np.arange(n_b)))
    low, high = confint_proportions_2indep(k_a, n_a, k_b, n_b, method="newcomb", compare="diff")
    assert ours is not None
    assert (ours.value, ours.low, ours.high) == pytest.approx((k_a / n_a - k_b / n_b, low, high))
    assert ours.high - ours.low > 0.1  # never the Wald interval's zero width at 0/n


def test_newcombe_difference_counts_repeat_customers_once() -> None:
    """0 of 10 decisions by 2 customers is worth about 2 draws, not 10: a wider interval."""
    a = np.r_[np.ones(30), np.zeros(70)]
    b = np.zeros(10)
    per_row = newcombe_difference(a, b)
    by_customer = newcombe_difference(a, b, (np.arange(100), np.repeat([0, 1], 5)))
    assert per_row is not None and by_customer is not None
    assert by_customer.low < per_row.low
