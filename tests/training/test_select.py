"""The menu, the rules and the one-SE choice: pure functions on arrays of known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stats import aipw_scores, ipw_scores, profit_terms
from training import rules, select
from training.crossfit import arm_effects_out_of_fold, folds
from training.select import Candidate


def test_jackknife_se_is_the_delete_a_fold_formula():
    per_fold = np.array([[1.0], [2.0], [4.0]])  # three fold models' predictions of one row
    mean = 7.0 / 3.0
    expected = np.sqrt(2.0 / 3.0 * ((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2))
    assert rules.jackknife_se(per_fold)[0] == pytest.approx(expected)


def test_penalty_spares_the_default_offer_and_grows_with_fold_disagreement():
    rng = np.random.default_rng(0)
    steady = np.tile(rng.normal(0.02, 0.01, (1, 500, 3)), (3, 1, 1))
    noisy = steady + rng.normal(0, 0.02, steady.shape) * np.array([0.0, 1.0, 0.2])
    margins = np.array([0.0, 10.0, 10.0, 10.0])
    penalty = rules.deviation_penalty(noisy, 0, margins)
    assert penalty[0] == 0.0
    assert penalty[1] > 3 * penalty[2] > 0
    assert rules.deviation_penalty(steady, 0, margins) == pytest.approx(np.zeros(3), abs=1e-12)
    # with no paying default, every offer is a deviation from sending nothing
    assert (rules.deviation_penalty(noisy, None, margins)[1:] > 0).all()


def test_rules_resolve_and_apply():
    raw, population = np.array([[0.1, -0.1]]), np.array([0.0, 0.02])
    assert rules.apply(raw, population, 0.0)[0] == pytest.approx([0.0, 0.02])
    assert rules.apply(raw, population, 0.5, np.array([0.0, 0.01]))[0] == pytest.approx(
        [0.05, -0.05])
    assert rules.resolve("shrink_0.25").shrinkage == 0.25
    for bad in ("shrink_2", "shrink_x", "bold"):
        with pytest.raises(ValueError, match="unknown rule"):
            rules.resolve(bad)
    assert rules.default_offer(np.array([0.001, 0.01]), np.array([0, 10.0, 10.0]),
                               np.array([0, 0.05, 0.5])) is None  # neither pays its cost
    assert rules.default_offer(np.array([0.02, 0.01]), np.array([0, 10.0, 10.0]),
                               np.zeros(3)) == 0


def test_menu_lists_best_single_once_and_names_unknown_choices():
    menu = select.menu(("s", "x"), ("base",), ("best_single", "full"))
    assert [c.name for c in menu] == ["s/base/best_single", "s/base/full", "x/base/full"]
    with pytest.raises(ValueError, match="learner"):
        select.menu(("q",), ("base",), ("full",))
    with pytest.raises(ValueError, match="capacity"):
        select.menu(("s",), ("huge",), ("full",))


def test_folds_keep_a_customer_in_one_fold_and_are_balanced():
    customers = np.repeat([f"c{i}" for i in range(300)], 3)
    fold = folds(customers, 3, seed=1)
    assert pd.Series(fold).groupby(customers).nunique().max() == 1
    assert np.bincount(fold).min() > 250
    with pytest.raises(ValueError, match="at least 2 folds"):
        folds(customers, 1, seed=1)


def test_a_folds_average_effects_come_from_the_other_folds_only():
    segment, logged, y, truth = _segment_log(3000, 2)
    fold = np.arange(len(y)) % 3
    scores = aipw_scores(logged, np.full(len(y), 1 / 3), y, truth)
    effects = arm_effects_out_of_fold(scores, logged, fold)
    assert effects.shape == (3, 2)
    # offer a: +0.15 on average, offer b: +0.05 (the known truth), within noise
    assert effects == pytest.approx(np.tile([0.15, 0.05], (3, 1)), abs=0.04)
    changed = scores.copy()
    changed[fold == 0, 1] += 1.0  # fold 0's own scores do not move its estimate
    again = arm_effects_out_of_fold(changed, logged, fold)
    assert again[0] == pytest.approx(effects[0])
    assert again[1:, 0] == pytest.approx(effects[1:, 0] + 0.5)  # the others' do


def _segment_log(n: int, seed: int):
    """control/a/b uniform; `a` pays (+0.3) in segment 1 only, `b` (+0.05) everywhere."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 2, n)
    logged = rng.integers(0, 3, n)
    truth = np.column_stack([np.full(n, 0.1), 0.1 + 0.3 * segment, np.full(n, 0.15)])
    y = (rng.random(n) < truth[np.arange(n), logged]).astype(float)
    return segment, logged, y, truth


def test_choice_takes_the_simplest_candidate_within_one_standard_error():
    segment, logged, y, truth = _segment_log(6000, 0)
    n = len(y)
    margins, costs = np.array([0.0, 10.0, 10.0]), np.zeros(3)
    targeted = np.where(segment == 1, 1, 2)
    arms = {"s/base/best_single": np.full(n, 2), "s/base/full": targeted,
            "x/base/full": targeted.copy()}
    candidates = [Candidate("s", "base", "best_single"), Candidate("s", "base", "full"),
                  Candidate("x", "base", "full")]
    table, *_ = select.score_menu(candidates, lambda c: arms[c.name],
                                 dr=aipw_scores(logged, np.full(n, 1 / 3), y, truth),
                                 ipw=ipw_scores(logged, np.full(n, 1 / 3), y, 3),
                                 margins=margins, costs=costs, clusters=np.arange(n) // 2)
    # targeting truly earns 0.5 * 3 + 0.5 * 0.5 = 1.75 vs 0.5 for the best single offer
    assert select.choose(table, candidates).name == "s/base/full"  # simpler than x, same arms
    assert table.set_index("candidate").loc["s/base/full", "dr_low"] > 1.5
    # with no real difference, the simplest (the best single offer) is chosen
    arms["s/base/full"] = arms["x/base/full"] = np.full(n, 2)
    table, *_ = select.score_menu(candidates, lambda c: arms[c.name],
                                 dr=aipw_scores(logged, np.full(n, 1 / 3), y, truth),
                                 ipw=ipw_scores(logged, np.full(n, 1 / 3), y, 3),
                                 margins=margins, costs=costs, clusters=np.arange(n) // 2)
    assert select.choose(table, candidates).name == "s/base/best_single"
    # a candidate better by less than its standard error: the best by DR (the default) takes
    # it, the one-SE rule keeps the simplest
    close = pd.DataFrame({"candidate": [c.name for c in candidates],
                          "gap_to_best": [0.05, 0.02, 0.0], "gap_se": [0.1, 0.1, 0.0]})
    assert select.choose(close, candidates).name == "x/base/full"
    assert select.choose(close, candidates, tolerance=1.0).name == "s/base/best_single"
    assert "<-" in select.format_menu(table, candidates[0])


def test_the_heterogeneity_gate_keeps_an_offer_whose_uplift_predicts_its_effect():
    # offer 0's predicted uplift tracks its true effect; offer 1's is noise around a flat effect
    rng = np.random.default_rng(4)
    n = 4_000
    truth = np.column_stack([0.2 * rng.random(n), np.full(n, 0.05)])
    predicted = np.column_stack([truth[:, 0] + rng.normal(0, 0.02, n), rng.normal(0.05, 0.02, n)])
    pseudo = truth + rng.normal(0, 0.5, (n, 2))  # DR effect scores: unbiased, very noisy
    customers = np.arange(n) // 2
    fold = customers % 3  # a customer's rows share a fold
    assert rules.heterogeneity_gate(predicted, pseudo, fold, customers).tolist() == [True, False]
    gated = rules.apply(predicted, np.array([0.1, 0.05]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(gated[:, 0], predicted[:, 0])
    np.testing.assert_allclose(gated[:, 1], 0.05)


def test_the_offer_screen_keeps_a_real_offer_and_averages_a_noise_one():
    # offer 0's uplift ranks customers by a real effect (0.3 on the high half, 0 below);
    # offer 1's uplift is noise around a flat effect; offer 2 is never modelled (NaN)
    rng = np.random.default_rng(5)
    n = 6_000
    customers = np.arange(n) // 2
    fold = customers % 3
    truth = np.column_stack([0.3 * (rng.random(n) < 0.5), np.full(n, 0.1), np.full(n, 0.1)])
    uplift = np.column_stack([truth[:, 0] + rng.normal(0, 0.05, n), rng.normal(0.1, 0.05, n),
                              np.full(n, np.nan)])
    pseudo = truth + rng.normal(0, 1.0, (n, 3))  # DR effect scores: unbiased, very noisy
    # offer 1: its high half responds by chance; with an honest test at z = 0 that is a coin
    # flip, so give each fold's rows whose high half responded less than its low half
    high = rules.fold_halves(uplift, fold)[:, 1] == 1.0
    for j in range(3):
        rows = fold == j
        gap = pseudo[rows & high, 1].mean() - pseudo[rows & ~high, 1].mean() + 0.01
        pseudo[rows, 1] -= np.where(high[rows], 1, -1) * gap / 2
    assert rules.offer_screen(uplift, pseudo, fold, customers).tolist() == [True, False, False]
    # the real difference, 0.3, is about 11 SE (sd 1 over two halves of 3,000 rows): it clears
    # a one-sided 1.645 SE and fails 20 SE
    assert rules.offer_screen(uplift, pseudo, fold, customers, z=1.645)[0]
    assert not rules.offer_screen(uplift, pseudo, fold, customers, z=20.0)[0]
    # a screened-out offer competes by its average: served as the gate's per-offer shrinkage
    served = rules.apply(uplift, np.array([0.15, 0.1, 0.1]), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(served[:, 1], 0.1)
    assert rules.resolve("screened").screened


def test_the_offer_screen_contrast_is_each_folds_high_minus_low_half_pooled():
    # 2 folds of 4 rows; fold 0's high half responds 2 more, fold 1's 4 more: the pooled
    # contrast weighs the folds by their rows, (2 + 4) / 2 = 3, whatever the folds' levels
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    uplift = np.array([[0.1], [0.2], [0.3], [0.4], [5.1], [5.2], [5.3], [5.4]])
    pseudo = np.array([[1.0], [1.0], [3.0], [3.0], [-9.0], [-9.0], [-5.0], [-5.0]])
    halves = rules.fold_halves(uplift, fold)
    assert halves[:, 0].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    slope, _ = rules.fold_slopes(halves, pseudo, fold, np.arange(8))
    assert slope[0] == pytest.approx(3.0)
    assert rules.offer_screen(uplift, pseudo, fold, np.arange(8)).tolist() == [True]
    # one fold (pooled): fold 1's rows are all "high" and respond far less: shut
    assert rules.offer_screen(uplift, pseudo, np.zeros(8), np.arange(8)).tolist() == [False]


def test_the_offer_screen_keeps_a_real_offer_whose_uplift_ties_at_the_top():
    # shallow trees: 6 of 10 rows share the top uplift, so nothing lies above the median; the
    # rank split still puts the tied top rows against the low ones, where the effect is
    uplift = np.array([[0.1], [0.1], [0.1], [0.1], [0.3], [0.3], [0.3], [0.3], [0.3], [0.3]])
    pseudo = np.array([[0.0], [0.0], [0.0], [0.0], [2.0], [2.0], [2.0], [2.0], [2.0], [2.0]])
    fold = np.zeros(10, dtype=np.int64)
    assert rules.fold_halves(uplift, fold)[:, 0].tolist() == [0] * 5 + [1] * 5
    assert rules.offer_screen(uplift, pseudo, fold, np.arange(10)).tolist() == [True]
    # an offer whose uplift does not vary has no halves to contrast: it competes by its average
    assert rules.offer_screen(np.full((10, 1), 0.2), pseudo, fold, np.arange(10)).tolist() \
        == [False]


N_FOLD_LEVELS = 30_000


def fold_levels(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customers, fold, level, uplift, pseudo): a real effect 0-0.2, each fold's model off by
    a level that runs against the fold's own noise (a fold's lucky outcomes raise the other
    folds' models), 3 rows per customer, folds by customer."""
    rng = np.random.default_rng(seed)
    customers = np.arange(N_FOLD_LEVELS) // 3
    fold = customers % 3
    truth = 0.2 * rng.random((N_FOLD_LEVELS, 1))
    level = np.array([0.3, 0.0, -0.3])[fold][:, None]
    return (customers, fold, level, truth + level,
            truth - level + rng.normal(0, 0.5, (N_FOLD_LEVELS, 1)))


def test_the_offer_screen_splits_rows_within_their_fold_only():
    # as in test_the_heterogeneity_gate_compares_rows_within_their_fold_only: each fold's model
    # is off by a level that runs against the fold's own noise (a fold's lucky outcomes raise
    # the other folds' models). Pooled over folds the median split sorts rows by fold and the
    # real offer is shut; within folds each split sorts by the true effect and it is kept
    customers, fold, level, uplift, pseudo = fold_levels(8)
    rng, n = np.random.default_rng(9), N_FOLD_LEVELS
    assert rules.offer_screen(uplift, pseudo, np.zeros(n), customers).tolist() == [False]
    assert rules.offer_screen(uplift, pseudo, fold, customers, z=1.645).tolist() == [True]
    # a flat offer with the same fold levels is not kept for them: its within-fold contrast
    # is noise (here below zero), where pooled it would be judged by the levels alone
    flat = np.full((n, 1), 0.1) + level + rng.normal(0, 0.05, (n, 1))
    flat_pseudo = 0.1 + rng.normal(0, 0.5, (n, 1))
    contrast = rules.fold_slopes(rules.fold_halves(flat, fold), flat_pseudo, fold, customers)
    assert rules.offer_screen(flat, flat_pseudo, fold, customers, z=1.645).tolist() == [False]
    assert abs(contrast[0][0]) < 3 * contrast[1][0]


def test_the_heterogeneity_gate_compares_rows_within_their_fold_only():
    # as in test_calibration_slopes_compare_rows_within_their_fold_only: fold levels that run
    # against the folds' own noise make the pooled slope negative; within folds it is clearly
    # positive and the gate opens, its SE from the within-fold residuals
    customers, fold, _, uplift, pseudo = fold_levels(7)
    n = N_FOLD_LEVELS
    assert np.polyfit(uplift[:, 0], pseudo[:, 0], 1)[0] < 0
    slopes, se = rules.fold_slopes(uplift, pseudo, fold, customers)
    assert slopes[0] == pytest.approx(1.0, abs=0.15)
    # about the textbook SE of a slope: residual sd / (sd(u) sqrt(n)), here 0.5 / 0.0577 / 173
    assert se[0] == pytest.approx(0.5 / (0.2 / np.sqrt(12)) / np.sqrt(n), rel=0.3)
    assert rules.heterogeneity_gate(uplift, pseudo, fold, customers).tolist() == [True]
    # pooled over folds (one fold) the same rows shut it
    assert rules.heterogeneity_gate(uplift, pseudo, np.zeros(n), customers).tolist() == [False]


def test_the_nested_choice_of_a_fold_comes_from_the_other_folds_only():
    # candidate "lucky" is far best on fold 0's rows only; elsewhere "steady" is best
    fold = np.repeat([0, 1, 2], 4)
    steady = np.full(12, 1.0)
    lucky = np.where(fold == 0, 9.0, 0.0)
    single = np.zeros(12)
    candidates = [Candidate("s", "base", "best_single"), Candidate("s", "base", "full"),
                  Candidate("x", "base", "full")]
    terms = {"s/base/best_single": single, "s/base/full": steady, "x/base/full": lucky}
    nested = select.nested_selection(terms, candidates, single, fold, np.arange(12))
    # fold 0 is served the choice of folds 1-2 (steady), not its own in-sample winner
    assert nested.choices == ("s/base/full", "x/base/full", "x/base/full")
    served = np.concatenate([steady[:4], lucky[4:]])  # 1.0 on fold 0, 0.0 on folds 1-2
    assert nested.value.value == pytest.approx(served.mean())
    assert nested.gain.value == pytest.approx(served.mean())
    # the full-data argmax (lucky, mean 3.0) looks three times better than it serves (1/3)
    assert lucky.mean() > 8 * nested.value.value


def _nested_kept(arms: dict[str, np.ndarray], seed: int) -> tuple[str, str]:
    """(the full-data choice, the served one after the nested check) on a segment log."""
    from training.pipeline import _nested_check

    segment, logged, y, truth = _segment_log(6000, seed)
    n = len(y)
    dr = aipw_scores(logged, np.full(n, 1 / 3), y, truth)
    candidates = [Candidate("s", "base", "best_single")] + [
        Candidate(lrn, cap, rule) for lrn in ("s", "t", "x") for cap in ("low", "base")
        for rule in ("confident", "shrink_0.5", "full")]
    table, *_ = select.score_menu(candidates, lambda c: arms[c.name], dr=dr,
                                 ipw=ipw_scores(logged, np.full(n, 1 / 3), y, 3),
                                 margins=np.array([0.0, 10.0, 10.0]), costs=np.zeros(3),
                                 clusters=np.arange(n) // 2)
    terms = {c.name: profit_terms(arms[c.name], dr, np.array([0.0, 10.0, 10.0]), np.zeros(3))
             for c in candidates}
    full = select.choose(table, candidates)
    nested = select.nested_selection(terms, candidates, terms[candidates[0].name],
                                     folds(np.arange(n) // 2, 3, seed), np.arange(n) // 2)
    served, note = _nested_check(nested, full, candidates[0], 0.0)
    assert "nested" in note and served.name in note
    assert _nested_check(nested, full, candidates[0], None)[0] == full  # off: reported only
    return full.name, served.name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_targeting_by_noise_is_replaced_by_the_best_single_offer(seed):
    # offer a (+0.15 on average) is the best single offer; 18 "targeting" candidates each send
    # b (+0.05) to a random 5% instead: truly worse, noise that an argmax can still favour
    rng = np.random.default_rng(100 + seed)
    n = 6000
    arms = {"s/base/best_single": np.full(n, 1)}
    for lrn in ("s", "t", "x"):
        for cap in ("low", "base"):
            for rule in ("confident", "shrink_0.5", "full"):
                arms[f"{lrn}/{cap}/{rule}"] = np.where(rng.random(n) < 0.05, 2, 1)
    full, served = _nested_kept(arms, seed)
    assert full != "s/base/best_single"  # the argmax over 19 noisy values picks noise here
    assert served == "s/base/best_single"


def test_targeting_a_real_segment_effect_is_kept():
    segment, *_ = _segment_log(6000, 0)
    arms = {"s/base/best_single": np.full(len(segment), 1)}
    targeted = np.where(segment == 1, 1, 2)  # truly +0.05 x 10 on segment 0's half
    for lrn in ("s", "t", "x"):
        for cap in ("low", "base"):
            for rule in ("confident", "shrink_0.5", "full"):
                arms[f"{lrn}/{cap}/{rule}"] = targeted
    full, served = _nested_kept(arms, 0)
    assert served == full == "s/low/confident"
def test_selection_cap_grows_with_the_arms_and_keeps_the_demo_at_the_floor():
    from training.pipeline import selection_mask
    from training.settings import TrainSettings

    settings = TrainSettings()
    assert settings.selection_cap(13) == settings.select_rows == 25_000  # the demo's 13 arms
    # 32 offers at 1,000 rows per arm (the many_offers world): every row is scored, not the
    # 25,000 (760 per arm) that left each offer's DR value noisier than the demo's
    customers = pd.Series([f"c{i // 2}" for i in range(33_000)])
    assert settings.selection_cap(33) == 62_700
    assert selection_mask(customers, settings.selection_cap(33), 0).all()
    assert selection_mask(customers, settings.select_rows, 0).mean() == pytest.approx(
        25_000 / 33_000, rel=0.02)


def test_fit_chosen_scores_every_row_of_a_many_arm_log_under_the_cap():
    from dataclasses import replace

    from features.build import infer_spec
    from nba.worlds import DESIGNS, FEATURES, generate
    from training.pipeline import STEPS, Progress, fit_chosen
    from training.settings import BoosterParams, TrainSettings

    world = generate(replace(DESIGNS["many_offers"], rows_per_arm=60), 0)  # 33 arms, 1,980 rows
    settings = TrainSettings(params=BoosterParams(n_estimators=10, n_jobs=1), learners=("s",),
                             capacities=("low",), rules=("best_single", "full"), folds=2,
                             select_rows=1_000, select_rows_per_arm=60)
    _, selection = fit_chosen(world.exposures, infer_spec(world.exposures, FEATURES),
                              world.catalog, settings, Progress(STEPS))
    assert selection.rows == len(world.exposures) == 1_980
    assert list(selection.arms) == list(selection.table["candidate"])
    assert all(len(a) == 1_980 for a in selection.arms.values())
    _, capped = fit_chosen(world.exposures, infer_spec(world.exposures, FEATURES),
                           world.catalog, replace(settings, select_rows_per_arm=0),
                           Progress(STEPS))
    assert capped.rows < 1_200  # about 1,000: the floor alone


def test_fit_chosen_refuses_an_arm_one_fold_cannot_fit_before_fitting():
    """6 rows of one customer pass a count over all rows (2 per fold x 3 folds), but the fold
    holding that customer leaves its models 0 rows of the arm to fit on."""
    from dataclasses import replace

    from features.build import infer_spec
    from features.errors import ContractError
    from nba.worlds import DESIGNS, FEATURES, generate
    from training.pipeline import STEPS, Progress, check_arm_rows, fit_chosen, thin_arms
    from training.settings import TrainSettings

    world = generate(replace(DESIGNS["many_offers"], rows_per_arm=60), 0)
    rare = world.exposures["treatment"] == world.catalog.offer_ids[0]
    exposures = world.exposures.copy()
    exposures.loc[rare, "customer_id"] = "one_customer"
    exposures = pd.concat([exposures[~rare], exposures[rare].head(6)], ignore_index=True)
    settings = TrainSettings(folds=3, select_rows=10_000)
    check_arm_rows(exposures, settings.folds)  # the count over all rows passes
    assert thin_arms(exposures, settings) == {world.catalog.offer_ids[0]: 0}
    assert thin_arms(world.exposures, settings) == {}
    with pytest.raises(ContractError, match="too few rows to cross-fit 3 folds"):
        fit_chosen(exposures, infer_spec(exposures, FEATURES), world.catalog, settings,
                   Progress(STEPS))


def test_calibration_slopes_shrink_noise_to_the_average_and_keep_calibrated_uplift():
    # offer 0's uplift is its true effect; offer 1's is noise around a flat effect; offer 2's is
    # the truth at half scale (slope 2, clipped to 1); offer 3's is anti-correlated (clipped to 0)
    rng = np.random.default_rng(5)
    n = 20_000
    truth = np.column_stack([0.2 * rng.random(n), np.full(n, 0.05), 0.2 * rng.random(n),
                             0.2 * rng.random(n)])
    pseudo = truth + rng.normal(0, 0.5, truth.shape)  # DR effect scores: unbiased, very noisy
    uplift = np.column_stack([truth[:, 0], rng.normal(0.05, 0.02, n), 0.5 * truth[:, 2],
                              -truth[:, 3]])
    fold = np.arange(n) % 3
    slopes = rules.calibration_slopes(uplift, pseudo, fold)
    assert slopes[0] == pytest.approx(1.0, abs=0.15)
    assert slopes[1] == pytest.approx(0.0, abs=0.15)
    assert slopes[2] == 1.0 and slopes[3] == 0.0
    # a slope's shrinkage reaches the ranking: noise-only offer 1 ranks at its average
    population = np.array([0.1, 0.05, 0.1, 0.1])
    ranked = rules.apply(uplift, population, slopes)
    np.testing.assert_allclose(ranked[:, 1], population[1] + slopes[1] * (uplift[:, 1] - 0.05),
                               rtol=1e-12)
    np.testing.assert_allclose(ranked[:, 3], 0.1)
    # unmodelled (NaN) rows are left out; an offer with no variation keeps 0
    uplift[:100, 0] = np.nan
    uplift[:, 1] = 0.05
    again = rules.calibration_slopes(uplift, pseudo, fold)
    assert again[0] == pytest.approx(slopes[0], abs=0.05) and again[1] == 0.0


def test_calibration_slopes_compare_rows_within_their_fold_only():
    # each fold's model is off by a level that runs against the fold's own noise (as when a
    # fold's lucky outcomes raise the other folds' models): pooled over folds the slope would
    # come out negative; within folds it is the calibrated 1
    _, fold, _, uplift, pseudo = fold_levels(6)
    pooled = np.polyfit(uplift[:, 0], pseudo[:, 0], 1)[0]
    assert pooled < 0
    assert rules.calibration_slopes(uplift, pseudo, fold)[0] == pytest.approx(1.0, abs=0.1)


def test_the_contact_guard_serves_only_a_policy_that_shows_it_pays():
    menu = select.menu(("s",), ("low",), ("best_single", "full"))
    single, full = menu

    def table(single_dr: tuple[float, float, float], full_dr: tuple[float, float, float]):
        return pd.DataFrame([{"candidate": c.name, "dr": v, "dr_low": lo, "dr_high": hi}
                             for c, (v, lo, hi) in ((single, single_dr), (full, full_dr))])

    clear = table((0.2, 0.1, 0.3), (0.5, 0.3, 0.7))
    assert select.guard_contacts(clear, full, single, 0.5) == (full, "")
    # targeting within 0.5 SE of nothing: the best single offer, which clears, is served
    served, note = select.guard_contacts(table((0.2, 0.1, 0.3), (0.05, -0.35, 0.45)), full,
                                         single, 0.5)
    assert served == single and "s/low/full" in note
    # neither clears: nobody, on the chosen pair
    served, note = select.guard_contacts(table((-0.1, -0.3, 0.1), (0.05, -0.35, 0.45)), full,
                                         single, 0.5)
    assert served.rule == "nobody" and served.learner == "s" and "nobody" in note
    assert not select.rule_of(served).contacts
    # z = 0: a positive point estimate is enough
    assert select.guard_contacts(table((0.2, 0.1, 0.3), (0.05, -0.35, 0.45)), full, single,
                                 0.0)[0] == full


def test_targeting_evidence_names_the_rows_a_noisy_gain_would_need():
    from stats import Estimate

    clear, _ = select.targeting_evidence(Estimate(0.30, 0.10, 0.50), 2_000)
    assert "beyond noise" in clear
    line, needed = select.targeting_evidence(Estimate(0.10, -0.10, 0.30), 2_000)
    # SE 0.102: a gain of 0.10 needs (2.8 x 0.102 / 0.10)^2 = 8.2 times the rows
    assert needed == pytest.approx(2_000 * 8.17, rel=0.01)
    assert f"{needed:,} rows per arm" in line and "not yet evidence" in line
    line, needed = select.targeting_evidence(Estimate(-0.05, -0.25, 0.15), 2_000)
    assert needed is None and "no gain" in line
