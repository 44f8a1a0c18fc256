"""Champion / challenger comparison on synthetic logs whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from training import compare
from training import evaluate as ev
from training.registry import push_history, rollback_target

ARMS = np.array(["control", "a", "b"], dtype=object)
#: P(convert) per arm in segment s=0 and s=1; a conversion is worth 10.
RATES = {"control": (0.10, 0.10), "a": (0.05, 0.30), "b": (0.30, 0.05)}


def logged_experiment(n: int = 30_000, seed: int = 0):
    """A uniform randomized log over control/a/b: `a` pays in segment 1, `b` in segment 0."""
    rng = np.random.default_rng(seed)
    segment = (rng.random(n) < 0.5).astype(int)
    logged = ARMS[rng.integers(0, 3, n)]
    rate = np.array([RATES[arm][s] for arm, s in zip(logged, segment, strict=True)])
    revenue = 10.0 * (rng.random(n) < rate)
    return segment, logged, revenue, np.full(n, 1.0 / 3.0)


def best(segment: np.ndarray) -> np.ndarray:
    """The optimal policy: true value 10 x 0.30 = 3.0 per customer."""
    return np.where(segment == 1, "a", "b").astype(object)


def worst(segment: np.ndarray) -> np.ndarray:
    """The reversed policy: true value 10 x 0.05 = 0.5 per customer."""
    return np.where(segment == 1, "b", "a").astype(object)


def test_a_clearly_better_candidate_passes_and_the_interval_covers_the_truth():
    segment, logged, revenue, propensity = logged_experiment()
    result = compare.paired_comparison(best(segment), worst(segment), logged, revenue, propensity)
    assert result.better and not result.worse and result.verdict == "better"
    assert result.difference.low < 2.5 < result.difference.high  # true difference 3.0 - 0.5
    assert result.candidate.low < 3.0 < result.candidate.high
    assert result.champion.low < 0.5 < result.champion.high
    assert result.agreement == 0.0 and result.rows == len(segment)
    assert compare.gate_status(result, force=False) == compare.PASSED


def test_a_clearly_worse_candidate_is_refused_unless_forced():
    segment, logged, revenue, propensity = logged_experiment()
    result = compare.paired_comparison(worst(segment), best(segment), logged, revenue, propensity)
    assert result.worse and result.difference.high < 0 and result.verdict == "worse"
    assert compare.gate_status(result, force=False) == compare.FAILED
    assert compare.gate_status(result, force=True) == compare.FORCED
    assert "worse than champion beyond noise" in compare.verdict_line(result)


def test_identical_policies_are_not_worse_with_a_zero_width_difference():
    segment, logged, revenue, propensity = logged_experiment()
    result = compare.paired_comparison(best(segment), best(segment), logged, revenue, propensity)
    assert result.difference == ev.Estimate(0.0, 0.0, 0.0)
    assert result.verdict == "not worse" and result.agreement == 1.0
    assert compare.gate_status(result, force=False) == compare.PASSED


def test_equally_good_policies_differ_only_by_noise_and_pass():
    segment, logged, revenue, propensity = logged_experiment()
    always_a, always_b = np.full(len(segment), "a", object), np.full(len(segment), "b", object)
    result = compare.paired_comparison(always_a, always_b, logged, revenue, propensity)
    assert result.difference.low < 0 < result.difference.high  # both are worth 1.75
    assert result.verdict == "not worse"


def test_pairing_is_tighter_than_the_two_separate_intervals():
    segment, logged, revenue, propensity = logged_experiment()
    mostly_best = best(segment)
    mostly_best[:3000] = "control"  # differs from `best` on 10% of rows only
    result = compare.paired_comparison(best(segment), mostly_best, logged, revenue, propensity)
    paired_width = result.difference.high - result.difference.low
    separate_width = (result.candidate.high - result.candidate.low
                      + result.champion.high - result.champion.low)
    assert paired_width < separate_width / 2


def test_contributions_match_the_pipeline_ipw_estimate():
    segment, logged, revenue, propensity = logged_experiment(5_000)
    codes = {arm: k for k, arm in enumerate(ARMS)}
    chosen = best(segment)
    expected = ev.ipw_value(ev.one_hot(np.array([codes[a] for a in chosen]), 3),
                            np.array([codes[a] for a in logged]), revenue, propensity)
    got = compare.mean_estimate(ev.ipw_contributions(chosen, logged, revenue, propensity))
    assert got.value == pytest.approx(expected.value, rel=1e-12)
    assert got.low == pytest.approx(expected.low, rel=1e-12)


def test_first_champion_and_bad_inputs():
    assert compare.gate_status(None, force=False) == compare.FIRST
    with pytest.raises(compare.CompareError, match="same length"):
        compare.paired_comparison(np.array(["a"]), np.array(["a", "b"]), np.array(["a"]),
                                  np.ones(1), np.ones(1))
    with pytest.raises(compare.CompareError, match="at least 2 rows"):
        compare.mean_estimate(np.ones(1))


def fake_comparison(difference: float) -> compare.VersionComparison:
    paired = compare.PairedComparison(ev.Estimate(10.0 + difference, 9.0, 11.0),
                                      ev.Estimate(10.0, 9.0, 11.0),
                                      ev.Estimate(difference, difference - 0.5, difference + 0.5),
                                      1234, 0.8)
    metrics = {"response_auc": 0.7, "qini_a": 0.02}
    return compare.VersionComparison("m", "3", "2", paired, metrics,
                                     metrics | {"qini_a": 0.01}, "abc", 42, 0.3)


def test_tags_record_the_decision_and_the_numbers():
    tags = compare.validation_tags(fake_comparison(-2.0), compare.FAILED)
    assert tags["validation_status"] == "failed" and tags["compared_to"] == "2"
    assert float(tags["difference_ci_high"]) == -1.5 and float(tags["difference_ci_low"]) == -2.5
    assert float(tags["candidate_policy_value"]) == 8.0
    assert float(tags["champion_policy_value"]) == 10.0
    assert tags["validation_rows"] == "1234" and tags["validation_exposures_sha256"] == "abc"
    assert set(compare.validation_tags(None, compare.FIRST)) == {"validation_status",
                                                                 "validated_at"}


def test_a_recorded_comparison_is_reused_only_for_the_same_champion_and_data():
    tags = compare.validation_tags(fake_comparison(-2.0), compare.FAILED)
    assert compare.recorded_difference(tags, "2", "abc") == ev.Estimate(-2.0, -2.5, -1.5)
    assert compare.recorded_difference(tags, "1", "abc") is None  # another champion
    assert compare.recorded_difference(tags, "2", "other") is None  # other exposures
    assert compare.recorded_difference(tags, "2", None) is None
    assert compare.recorded_difference({"compared_to": "2"}, "2", "abc") is None


def test_report_is_a_side_by_side_table_with_the_verdict():
    text = compare.report(fake_comparison(1.0))
    lines = text.splitlines()
    assert "candidate version 3 vs champion version 2 on 1,234 holdout rows" in lines[0]
    assert lines[1].split() == ["metric", "candidate", "v3", "champion", "v2", "difference"]
    assert any(line.startswith("qini_a") and line.endswith("+0.0100") for line in lines)
    assert lines[-1].startswith("verdict: candidate is better than champion beyond noise")


def test_champion_history_appends_and_rolls_back():
    assert push_history([], "1") == ["1"]
    assert push_history(["1", "2"], "2") == ["1", "2"]
    assert push_history(["1", "2"], "1") == ["1", "2", "1"]
    assert push_history([str(v) for v in range(100)], "x")[-1] == "x"
    assert len(push_history([str(v) for v in range(100)], "x")) == 100
    assert rollback_target(["1", "2", "3"], "3") == ("2", ["1", "2"])
    assert rollback_target(["1", "2", "2"], "2") == ("1", ["1"])
    assert rollback_target(["1", "2"], "5") == ("2", ["1", "2"])  # alias moved by hand
    assert rollback_target(["1"], "1") is None and rollback_target([], None) is None


def test_dr_with_an_outcome_model_is_tighter_than_ipw_and_covers_the_truth():
    segment, logged, revenue, propensity = logged_experiment()
    arms = list(ARMS)
    mu = np.array([[10.0 * RATES[arm][s] for arm in arms] for s in segment])  # a good model
    customers = np.arange(len(segment)) // 2  # two rows per customer
    result = compare.paired_comparison(best(segment), worst(segment), logged, revenue,
                                       propensity, arms=arms, mu=mu, clusters=customers)
    assert result.method == "DR" and result.ipw_difference is not None
    assert result.difference.low < 2.5 < result.difference.high
    assert result.difference.width < result.ipw_difference.width  # outcome noise dominates
    assert "DR policy value" in compare.evidence_line(result)
    with pytest.raises(compare.CompareError, match="not one of"):
        compare.paired_comparison(best(segment), worst(segment), logged, revenue, propensity,
                                  arms=["control", "a"])
