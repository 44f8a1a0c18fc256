"""Out-of-fold predictions, K folds grouped by customer, computed once per learner.

Every row's prediction comes from a model that never saw that row's customer, so the policy
values computed from them are honest estimates of how the policy does on new customers. The
expensive part (fitting K uplift models) happens once per (learner, capacity); every rule on
top of it (shrinkage, confidence) reuses the same predictions.

The K x (learner, capacity) fits are independent: with `workers` > 1 they run concurrently in
threads (LightGBM releases the GIL while it trains), each with one LightGBM thread, and their
predictions are put together in a fixed order. On ~25,000 rows and small trees, LightGBM's own
threads spend much of a fit synchronising, so one fit per core does more work per second.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import GroupKFold

from stats import arm_effects
from training.learners import fit_learner
from training.response import all_arms, fit_response, predict_response, with_arm
from training.settings import BoosterParams
from training.uplift import Learner, UpliftModel

#: rows whose K fold-model predictions give the confidence rule's fold spread
SPREAD_ROWS = 5_000

T = TypeVar("T")


#: the most concurrent fits `available_workers` picks by itself: every running fit holds its
#: own copy of its training rows, so memory grows with the workers, not only the speed
MAX_AUTO_WORKERS = 8

#: cgroup v2's CPU quota of this container ("max 100000" when unlimited)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_workers(requested: int | None = None, cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Concurrent fits: `requested` (at least 1), or the cores this process may run on (its
    CPU affinity, lowered to a container's CPU quota in `cpu_max`), at most MAX_AUTO_WORKERS."""
    if requested is not None:
        return max(1, requested)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        cores = os.cpu_count() or 1
    quota = cgroup_cpus(cpu_max)
    return max(1, min(cores, quota or cores, MAX_AUTO_WORKERS))


def cgroup_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """The CPUs a cgroup v2 quota allows (quota / period, rounded up), or None when there is
    no quota or no readable cpu.max (cgroup v1, not Linux)."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def run_in_order(jobs: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Every job's result in the jobs' order, `workers` jobs at a time in threads (1: one after
    another in this thread). The first job to raise re-raises here, after the running ones end."""
    if workers <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)),
                            thread_name_prefix="crossfit") as pool:
        return list(pool.map(lambda job: job(), jobs))


def per_fit(params: BoosterParams, workers: int) -> BoosterParams:
    """Each concurrent fit's settings: one LightGBM thread when fits run side by side."""
    return params if workers <= 1 else replace(params, n_jobs=1)


def folds(customer_ids: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index per row: K folds by customer (a customer's rows all in one fold)."""
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {k}")
    groups = np.asarray(customer_ids).astype(str)
    if len(np.unique(groups)) < k:
        raise ValueError(f"{k} folds need at least {k} customers")
    fold = np.empty(len(groups), dtype=np.int64)
    splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32)
    for j, (_, test) in enumerate(splitter.split(groups, groups=groups)):
        fold[test] = j
    return fold


def _out_of_fold(fold: np.ndarray, n_rows: int, n_arms: int,
                 fit_predict: Callable[[np.ndarray], np.ndarray], workers: int = 1
                 ) -> np.ndarray:
    """Each fold's rows predicted by `fit_predict(test_mask)`, a model fitted without them."""
    tests = [fold == j for j in np.unique(fold)]
    mu = np.empty((n_rows, n_arms))
    for test, predicted in zip(tests, run_in_order(
            [partial(fit_predict, test) for test in tests], workers), strict=True):
        mu[test] = predicted
    return mu


def outcome_predictions(X: np.ndarray, logged: np.ndarray, converted: np.ndarray,
                        fold: np.ndarray, *, n_arms: int, params: BoosterParams,
                        seed: int, workers: int = 1) -> np.ndarray:
    """Cross-fitted P(convert | x, arm) for every row and arm: the DR score's outcome model
    (`workers` folds fitted at a time, `run_in_order`)."""
    fit_params = per_fit(params, workers)

    def fit_predict(test: np.ndarray) -> np.ndarray:
        booster = fit_response(X[~test], logged[~test], converted[~test], n_arms=n_arms,
                               params=fit_params, seed=seed)
        return predict_response(booster, X[test], n_arms, 1 if workers > 1 else None)
    return _out_of_fold(fold, len(X), n_arms, fit_predict, workers)


def reward_predictions(X: np.ndarray, logged: np.ndarray, reward: np.ndarray,
                       fold: np.ndarray, *, n_arms: int, params: BoosterParams,
                       seed: int) -> np.ndarray:
    """Cross-fitted E[reward | x, arm] (a regression, e.g. revenue) for every row and arm."""
    def fit_predict(test: np.ndarray) -> np.ndarray:
        model = lgb.LGBMRegressor(**params.as_lightgbm(seed))
        model.fit(with_arm(X[~test], logged[~test], n_arms), reward[~test])
        return np.asarray(model.predict(all_arms(X[test], n_arms))).reshape(-1, n_arms)
    return _out_of_fold(fold, len(X), n_arms, fit_predict)


def arm_effects_out_of_fold(scores: np.ndarray, logged: np.ndarray, fold: np.ndarray
                            ) -> np.ndarray:
    """Each fold's per-offer average effect estimated without its rows: shape (k, n_offers).

    The best single offer is an argmax over noisy averages; chosen on the rows that then score
    it, its value carries the winner's curse (with 4 equal offers the in-sample best looks far
    better than any is), while every targeting candidate is scored out of fold. Choosing it,
    and the shrinkage target, from the other folds keeps the comparison fair.
    """
    return np.stack([arm_effects(scores[fold != j], logged[fold != j])
                     for j in range(int(fold.max()) + 1)])


@dataclass(frozen=True)
class OutOfFold:
    """One (learner, capacity)'s cross-fitted per-customer uplift, offers in catalog order."""

    uplift: np.ndarray  # (n_rows, n_offers), each row predicted by the model without its fold
    spread_rows: np.ndarray  # indices of the rows every fold model scored
    per_fold: np.ndarray  # (k, len(spread_rows), n_offers): each fold model on those rows
    #: the K fold models themselves (fold j's fitted without fold j's rows): what the
    #: out-of-fold values measured, kept so the measured policy can be served or scored again
    models: tuple[UpliftModel, ...] = ()


def uplift_predictions(kind: Learner, X: np.ndarray, treatment: np.ndarray,
                       converted: np.ndarray, propensity: np.ndarray, fold: np.ndarray, *,
                       offer_ids: tuple[str, ...], control_label: str, params: BoosterParams,
                       seed: int, workers: int = 1) -> OutOfFold:
    """Fit the learner K times, each without one fold; predict that fold (and spread rows)."""
    return uplift_predictions_many([(kind, params)], X, treatment, converted, propensity, fold,
                                   offer_ids=offer_ids, control_label=control_label, seed=seed,
                                   workers=workers)[0]


def uplift_predictions_many(learners: Sequence[tuple[Learner, BoosterParams]], X: np.ndarray,
                            treatment: np.ndarray, converted: np.ndarray,
                            propensity: np.ndarray, fold: np.ndarray, *,
                            offer_ids: tuple[str, ...], control_label: str, seed: int,
                            workers: int = 1) -> list[OutOfFold]:
    """`uplift_predictions` for each (learner, settings), in their order: all K x len(learners)
    fits `workers` at a time (`run_in_order`; each with one LightGBM thread when workers > 1).

    Every fit has its fold, settings and seed fixed before any runs and writes nothing shared,
    and the results are assembled in the jobs' order, so scheduling cannot change them.
    """
    k = int(fold.max()) + 1
    spread = np.random.default_rng(seed).permutation(len(X))[:SPREAD_ROWS]
    spread.sort()
    threads = 1 if workers > 1 else None  # predictions: LightGBM's default unless side by side

    def fit_fold(kind: Learner, params: BoosterParams, j: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, UpliftModel]:
        """(offer columns, the fold's rows' uplift, the spread rows' uplift, the model) of fold
        j's model."""
        test = fold == j
        model = fit_learner(kind, X[~test], treatment[~test], converted[~test],
                            propensity[~test], control_label=control_label,
                            params=per_fit(params, workers), seed=seed)
        columns = np.array([offer_ids.index(o) for o in model.offer_ids if o in offer_ids],
                           dtype=np.int64)
        modelled = [i for i, o in enumerate(model.offer_ids) if o in offer_ids]
        return (columns, model.predict(X[test], threads)[0][:, modelled],
                model.predict(X[spread], threads)[0][:, modelled], model)

    jobs = [(kind, params, j) for kind, params in learners for j in range(k)]
    fitted = iter(run_in_order([partial(fit_fold, *job) for job in jobs], workers))
    results = []
    for _ in learners:
        uplift = np.full((len(X), len(offer_ids)), np.nan)
        per_fold = np.full((k, len(spread), len(offer_ids)), np.nan)
        models = []
        for j in range(k):
            columns, on_fold, on_spread, model = next(fitted)
            uplift[np.ix_(np.flatnonzero(fold == j), columns)] = on_fold
            per_fold[j][:, columns] = on_spread
            models.append(model)
        results.append(OutOfFold(uplift, spread, per_fold, tuple(models)))
    return results
