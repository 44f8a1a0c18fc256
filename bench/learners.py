"""Which uplift learner should be the default? causalml learners compared on the real Hillstrom
e-mail experiment (64,000 customers randomized 1/3 each into control, mens and womens e-mail).

Run from the repo root: `.venv/bin/python bench/learners.py [--hillstrom PATH] [--seeds 5]`.
Writes bench/results/learners.md.

For each seed: a 70/30 split stratified by arm and conversion; every learner fitted on the 70%
twice, on `conversion` and on `visit`, with the same LightGBM base learners (n_jobs=1); then, on
the 30% holdout, policies built from the predicted uplift are valued by inverse propensity
weighting (every arm was assigned with probability 1/3, so the estimates are unbiased):

- naive: send the e-mail with the highest predicted uplift when it is positive;
- cost-aware: the same on uplift x average spend per conversion (training split) - cost per e-mail.

causalml estimates each arm against control on the rows of that pair, so the propensity it takes
is P(arm | arm or control) = 1/2, not the three-arm assignment probability 1/3 (which is what the
IPW evaluation uses). The DR-learner uses LightGBM regressors throughout: BaseDRClassifier builds
its pseudo-outcomes from the classifiers' hard 0/1 `predict`. The R-learner is left out: its
cross-fitting runs `cross_val_predict(n_jobs=-1)` on every core and took ~19 s per fit, 10x
the T-learner.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hillstrom
import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from causalml.inference.meta import (
    BaseDRLearner,
    BaseSClassifier,
    BaseTClassifier,
    BaseXClassifier,
)
from causalml.inference.tree import UpliftRandomForestClassifier
from common import markdown_table, publish, quiet_logging

from features.build import build_matrix, infer_spec
from features.schema import feature_columns
from training.evaluate import (
    greedy_arm,
    ipw_value,
    mean_estimate,
    one_hot,
    qini_coefficient,
    uplift_at,
)

ARMS = ("control", "mens_email", "womens_email")  # learners see the index: 0 is control
TREATED = (1, 2)
ASSIGNMENT_PROPENSITY = 1.0 / 3.0  # P(logged arm): what IPW divides by
PAIR_PROPENSITY = 0.5  # P(arm | arm or control): what causalml's per-pair estimators take
EMAIL_COST = 0.3  # spend units per e-mail sent
TEST_SIZE = 0.3
TOP = 0.3  # uplift@30%
PUBLISHED_UPLIFT_AT_30 = 0.0661  # womens vs control on visit, 50/50 split
FITTED_OUTCOMES = ("conversion", "visit")
DEFAULT_LEARNER = "T-learner"  # what training/uplift.py fits today


def booster_params(seed: int) -> dict[str, Any]:
    """The same LightGBM settings for every base learner, single-threaded."""
    return {"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 15,
            "min_child_samples": 100, "subsample": 0.8, "subsample_freq": 1,
            "colsample_bytree": 0.8, "n_jobs": 1, "verbose": -1, "random_state": seed}


def classifier(seed: int) -> lgb.LGBMClassifier:
    """A LightGBM outcome classifier."""
    return lgb.LGBMClassifier(**booster_params(seed))


def regressor(seed: int) -> lgb.LGBMRegressor:
    """A LightGBM regressor (effect models, and the DR-learner's outcome models)."""
    return lgb.LGBMRegressor(**booster_params(seed))


@dataclass(frozen=True)
class Learner:
    """An uplift learner: how to build it for a seed and how to call it.

    `propensity`: fit (and predict) take the per-pair propensity; `seeded_fit`: fit takes
    `seed=` for its cross-fitting folds.
    """

    name: str
    build: Callable[[int], Any]
    propensity: bool = False
    seeded_fit: bool = False

    def fit_predict(self, X: np.ndarray, treatment: np.ndarray, y: np.ndarray,
                    X_test: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
        """Uplift per holdout row and e-mail (columns in ARMS[1:] order), and the fit seconds."""
        model = self.build(seed)
        fit_kwargs: dict[str, Any] = {"treatment": treatment, "y": y}
        predict_kwargs: dict[str, Any] = {}
        if self.propensity:
            fit_kwargs["p"] = pair_propensity(len(y))
            predict_kwargs["p"] = pair_propensity(len(X_test))
        if self.seeded_fit:
            fit_kwargs["seed"] = seed
        started = time.perf_counter()
        model.fit(X, **fit_kwargs)
        seconds = time.perf_counter() - started
        groups = model.t_groups if hasattr(model, "t_groups") else model.classes_[1:]  # forest
        if tuple(groups) != TREATED:
            raise RuntimeError(f"{self.name}: unexpected treatment order {list(groups)}")
        return np.asarray(model.predict(X_test, **predict_kwargs), dtype=np.float64), seconds


def pair_propensity(n: int) -> dict[int, np.ndarray]:
    """causalml's `p`: per e-mail, the propensity of that e-mail against control."""
    return {arm: np.full(n, PAIR_PROPENSITY) for arm in TREATED}


LEARNERS = (
    Learner("S-learner", lambda s: BaseSClassifier(classifier(s), control_name=0)),
    Learner("T-learner", lambda s: BaseTClassifier(classifier(s), control_name=0)),
    Learner("X-learner", lambda s: BaseXClassifier(outcome_learner=classifier(s),
                                                   effect_learner=regressor(s),
                                                   control_name=0), propensity=True),
    Learner("DR-learner", lambda s: BaseDRLearner(regressor(s), control_name=0),
            propensity=True, seeded_fit=True),
    Learner("uplift forest", lambda s: UpliftRandomForestClassifier(
        control_name=0, n_estimators=20, max_depth=6, min_samples_leaf=200,
        random_state=s, n_jobs=1)),
)


@dataclass(frozen=True)
class Sample:
    """Customers' logged arm (index into ARMS) and outcomes; IPW values on held-out ones."""

    arm: np.ndarray
    spend: np.ndarray
    conversion: np.ndarray
    visit: np.ndarray

    @classmethod
    def of(cls, rows: pd.DataFrame) -> Sample:
        """The arrays of raw Hillstrom rows."""
        return cls(arm=rows["treatment"].map(ARMS.index).to_numpy(np.int64),
                   spend=rows["spend"].to_numpy(np.float64),
                   conversion=rows["conversion"].to_numpy(np.int64),
                   visit=rows["visit"].to_numpy(np.int64))

    @property
    def propensity(self) -> np.ndarray:
        """The assignment propensity of every logged arm."""
        return np.full(len(self.arm), ASSIGNMENT_PROPENSITY)

    @property
    def net_spend(self) -> np.ndarray:
        """Spend minus the cost of the e-mail the customer was sent."""
        return self.spend - EMAIL_COST * (self.arm > 0)

    def value(self, chosen: np.ndarray, reward: np.ndarray) -> float:
        """IPW value per customer of the deterministic policy `chosen`."""
        return ipw_value(one_hot(chosen, len(ARMS)), self.arm, reward, self.propensity).value

    def terms(self, chosen: np.ndarray, reward: np.ndarray) -> np.ndarray:
        """Per-row IPW terms of `chosen` (their mean is `value`), for paired differences."""
        return (chosen == self.arm) / self.propensity * reward


def policy_metrics(holdout: Sample, chosen: np.ndarray, reference: np.ndarray
                   ) -> dict[str, float]:
    """Value of `chosen` on spend, net spend and conversions, and its paired difference in
    spend and net spend against the `reference` policy (+1 / -1 / 0: beyond noise or not)."""
    metrics = {"spend": holdout.value(chosen, holdout.spend),
               "net": holdout.value(chosen, holdout.net_spend),
               "conversion": holdout.value(chosen, holdout.conversion),
               "mens": float(np.mean(chosen == 1)), "womens": float(np.mean(chosen == 2))}
    for key, reward in (("spend", holdout.spend), ("net", holdout.net_spend)):
        diff = mean_estimate(holdout.terms(chosen, reward) - holdout.terms(reference, reward))
        metrics[f"d_{key}"] = diff.value
        metrics[f"sig_{key}"] = float(diff.low > 0) - float(diff.high < 0)
    return metrics


def ranking_metrics(holdout: Sample, uplift: np.ndarray, outcome: str) -> dict[str, float]:
    """Qini per e-mail (its rows against control) and, on visit, uplift@30% for womens."""
    y = getattr(holdout, outcome)
    metrics: dict[str, float] = {}
    for k, arm in enumerate(ARMS[1:], start=1):
        rows = (holdout.arm == k) | (holdout.arm == 0)
        treated = (holdout.arm[rows] == k).astype(np.int64)
        metrics[f"qini_{arm}_{outcome}"] = qini_coefficient(uplift[rows, k - 1], treated, y[rows])
        if arm == "womens_email" and outcome == "visit":
            metrics["uplift_at"] = uplift_at(uplift[rows, k - 1], treated, y[rows], TOP)
    return metrics


def split(raw: pd.DataFrame, seed: int) -> tuple[np.ndarray, Sample, np.ndarray, Sample]:
    """(X_train, train, X_test, holdout) for one seed; the feature spec from training rows."""
    test = hillstrom.stratified_split(raw, TEST_SIZE, seed)
    frame = hillstrom.exposures(raw, converted="conversion")
    columns = feature_columns(pa.Schema.from_pandas(frame, preserve_index=False), "hillstrom")
    spec = infer_spec(frame[~test], columns)
    return (build_matrix(frame[~test], spec), Sample.of(raw[~test]),
            build_matrix(frame[test], spec), Sample.of(raw[test]))


def run_seed(raw: pd.DataFrame, seed: int) -> dict[str, dict[str, float]]:
    """Every metric of every policy on one seed, keyed by row label."""
    X_train, train, X_test, holdout = split(raw, seed)
    n = len(holdout.arm)
    spend_per_conversion = train.spend.sum() / train.conversion.sum()
    mens_all = np.full(n, 1)
    results: dict[str, dict[str, float]] = {}
    for label, arm in (("treat nobody", 0), ("mens to all", 1), ("womens to all", 2)):
        chosen = np.full(n, arm)
        results[label] = policy_metrics(holdout, chosen, mens_all)
        results[label]["visit"] = holdout.value(chosen, holdout.visit)
    everyone = np.ones((n, len(ARMS) - 1), dtype=bool)
    for learner in LEARNERS:
        fitted = {outcome: learner.fit_predict(X_train, train.arm, getattr(train, outcome),
                                               X_test, seed)
                  for outcome in FITTED_OUTCOMES}
        conversion_uplift, conversion_fit = fitted["conversion"]
        visit_uplift, visit_fit = fitted["visit"]
        naive = greedy_arm(conversion_uplift, everyone)
        costed = greedy_arm(conversion_uplift * spend_per_conversion - EMAIL_COST, everyone)
        ranking = {**ranking_metrics(holdout, conversion_uplift, "conversion"),
                   **ranking_metrics(holdout, visit_uplift, "visit"),
                   "fit_s": (conversion_fit + visit_fit) / 2}
        results[f"{learner.name}, naive"] = {
            **policy_metrics(holdout, naive, mens_all), **ranking,
            "visit": holdout.value(greedy_arm(visit_uplift, everyone), holdout.visit)}
        results[f"{learner.name}, cost-aware"] = policy_metrics(holdout, costed, mens_all)
    return results


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """'mean ± std' over seeds."""
    array = np.asarray(values, dtype=np.float64)
    return f"{array.mean():.{digits}f} ± {array.std(ddof=1) if len(array) > 1 else 0.0:.{digits}f}"


def difference_cell(values: Sequence[float], verdicts: Sequence[float]) -> str:
    """Mean ± std of a paired difference, with seeds better / worse beyond noise."""
    better = sum(v > 0 for v in verdicts)
    worse = sum(v < 0 for v in verdicts)
    return f"{mean_std(values)} ({better}↑ {worse}↓)"


def policy_table(runs: list[dict[str, dict[str, float]]]) -> str:
    """Policy values per customer, mean ± std over seeds."""
    header = ["policy", "spend", "Δ spend vs mens-all", f"net spend (c={EMAIL_COST})",
              "Δ net vs mens-all", "conversions", "visits (visit-trained)", "sent mens/womens"]
    rows = []
    for label in runs[0]:
        col = {key: [run[label][key] for run in runs] for key in runs[0][label]}
        rows.append([
            label, mean_std(col["spend"]), difference_cell(col["d_spend"], col["sig_spend"]),
            mean_std(col["net"]), difference_cell(col["d_net"], col["sig_net"]),
            mean_std(col["conversion"], 4),
            mean_std(col["visit"], 4) if "visit" in col else "—",
            f"{np.mean(col['mens']):.0%} / {np.mean(col['womens']):.0%}"])
    return markdown_table(header, rows)


def ranking_table(runs: list[dict[str, dict[str, float]]]) -> str:
    """Qini per e-mail and outcome, uplift@30% and fit time per learner."""
    header = ["learner", "Qini mens (conv)", "Qini womens (conv)", "Qini mens (visit)",
              "Qini womens (visit)", "uplift@30% womens visit", "fit s"]
    rows = []
    for learner in LEARNERS:
        label = f"{learner.name}, naive"
        col = {key: [run[label][key] for run in runs] for key in runs[0][label]}
        rows.append([learner.name, *(mean_std(col[f"qini_{arm}_{outcome}"], 4)
                                     for outcome in FITTED_OUTCOMES for arm in ARMS[1:]),
                     mean_std(col["uplift_at"], 4), mean_std(col["fit_s"], 1)])
    rows.append(["random ranking", "0", "0", "0", "0", "= ATE on the holdout", "—"])
    return markdown_table(header, rows)


def conclusion(runs: list[dict[str, dict[str, float]]]) -> str:
    """One paragraph read off the numbers: best learner on spend, naive vs mens-to-all, and the
    best ranking against the project's default (the T-learner), seed by seed."""
    def per_seed(label: str, key: str) -> np.ndarray:
        return np.array([run[label][key] for run in runs])

    def mean(label: str, key: str) -> float:
        return float(per_seed(label, key).mean())

    def verdicts(label: str, key: str) -> str:
        signs = per_seed(label, f"sig_{key}")
        return f"better beyond noise on {sum(signs > 0)} seeds, worse on {sum(signs < 0)}"

    def visit_qini(name: str) -> np.ndarray:
        return np.sum([per_seed(f"{name}, naive", f"qini_{arm}_visit") for arm in ARMS[1:]],
                      axis=0)

    names = [learner.name for learner in LEARNERS]
    best_naive = max(names, key=lambda n: mean(f"{n}, naive", "spend"))
    best_costed = max(names, key=lambda n: mean(f"{n}, cost-aware", "net"))
    best_qini = max(names, key=lambda n: float(visit_qini(n).mean()))
    beats = [n for n in names if mean(f"{n}, naive", "spend") > mean("mens to all", "spend")]
    naive_means = [mean(f"{n}, naive", "spend") for n in names]
    noise = np.mean([per_seed(f"{n}, naive", "d_spend").std(ddof=1) for n in names])
    naive, costed = f"{best_naive}, naive", f"{best_costed}, cost-aware"
    versus_default = per_seed(naive, "d_spend") - per_seed(f"{DEFAULT_LEARNER}, naive", "d_spend")
    return (
        f"Over {len(runs)} seeds, mens-to-all earns {mean('mens to all', 'spend'):.3f} spend per "
        f"customer ({mean('mens to all', 'net'):.3f} net of the e-mail cost). Naive argmax "
        f"beats it on mean spend for {len(beats)} of {len(names)} learners"
        f"{' (' + ', '.join(beats) + ')' if beats else ''}; the best, the {best_naive}, earns "
        f"{mean(naive, 'spend'):.3f} (Δ {mean(naive, 'd_spend'):+.3f}; "
        f"{verdicts(naive, 'spend')}). Net of {EMAIL_COST} per e-mail the best cost-aware "
        f"policy, the {best_costed}'s, earns {mean(costed, 'net'):.3f} "
        f"(Δ {mean(costed, 'd_net'):+.3f} vs mens-to-all; {verdicts(costed, 'net')}). "
        f"The learners' naive spend spans "
        f"{max(naive_means) - min(naive_means):.3f}, against a seed-to-seed std of "
        f"{noise:.3f} for each one's Δ; {best_naive} minus {DEFAULT_LEARNER} is "
        f"{mean_std(versus_default)} per seed. The best visit ranking (Qini mens + womens) is "
        f"the {best_qini}'s, ahead of the {DEFAULT_LEARNER} on "
        f"{sum(visit_qini(best_qini) > visit_qini(DEFAULT_LEARNER))} of {len(runs)} seeds; its "
        f"womens uplift@30% on visit is {mean(f'{best_qini}, naive', 'uplift_at'):.4f} against "
        f"the published {PUBLISHED_UPLIFT_AT_30} (50/50 split).")


def main() -> None:
    """Fit every learner on every seed and publish the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hillstrom", type=Path, default=hillstrom.DEFAULT_PATH,
                        help="path to hillstrom.csv")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    args = parser.parse_args()
    quiet_logging()
    raw = hillstrom.load(args.hillstrom)
    started, cpu_started = time.perf_counter(), time.process_time()
    runs = []
    for seed in range(args.seeds):
        runs.append(run_seed(raw, seed))
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    publish("learners.md", "\n".join([
        "# Uplift learners on the Hillstrom e-mail experiment",
        "",
        f"{len(raw):,} customers, 3 randomized arms (propensity 1/3); {args.seeds} seeds of a "
        f"{1 - TEST_SIZE:.0%}/{TEST_SIZE:.0%} split stratified by arm and conversion. LightGBM "
        "base learners (150 trees, 15 leaves, n_jobs=1). Values per held-out customer by IPW, "
        "mean ± std over seeds. Naive: the e-mail with the highest predicted uplift if > 0. "
        "Cost-aware: conversion uplift × spend per conversion (training split) − "
        f"{EMAIL_COST} > 0. "
        "Spend, net spend and conversions come from the conversion-trained models, visits from "
        "the visit-trained ones. Δ: paired difference against mens-to-all on the same rows; "
        "(n↑ m↓): seeds where its 95% interval is entirely above / below 0.",
        "",
        policy_table(runs),
        "",
        ranking_table(runs),
        "",
        conclusion(runs),
        "",
        f"Runtime: {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU for {args.seeds} seeds (the "
        "difference is other processes' load). The R-learner is not included (see "
        "the module docstring); the DR-learner uses LightGBM regressors; causalml gets the "
        f"per-pair propensity {PAIR_PROPENSITY}.",
        "",
    ]))


if __name__ == "__main__":
    main()
