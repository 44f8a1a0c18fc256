"""Out-of-fold predictions, K folds grouped by customer, computed once per learner.

Every row's prediction comes from a model that never saw that row's customer, so the policy
values computed from them are honest estimates of how the policy does on new customers. The
expensive part (fitting K uplift models) happens once per (learner, capacity); every rule on
top of it (shrinkage, confidence) reuses the same predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import GroupKFold

from stats import arm_effects
from training.learners import fit_learner
from training.response import all_arms, fit_response, predict_response, with_arm
from training.settings import BoosterParams
from training.uplift import Learner

#: rows whose K fold-model predictions give the confidence rule's fold spread
SPREAD_ROWS = 5_000


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
                 fit_predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Each fold's rows predicted by `fit_predict(test_mask)`, a model fitted without them."""
    mu = np.empty((n_rows, n_arms))
    for j in np.unique(fold):
        test = fold == j
        mu[test] = fit_predict(test)
    return mu


def outcome_predictions(X: np.ndarray, logged: np.ndarray, converted: np.ndarray,
                        fold: np.ndarray, *, n_arms: int, params: BoosterParams,
                        seed: int) -> np.ndarray:
    """Cross-fitted P(convert | x, arm) for every row and arm: the DR score's outcome model."""
    def fit_predict(test: np.ndarray) -> np.ndarray:
        booster = fit_response(X[~test], logged[~test], converted[~test], n_arms=n_arms,
                               params=params, seed=seed)
        return predict_response(booster, X[test], n_arms)
    return _out_of_fold(fold, len(X), n_arms, fit_predict)


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


def uplift_predictions(kind: Learner, X: np.ndarray, treatment: np.ndarray,
                       converted: np.ndarray, propensity: np.ndarray, fold: np.ndarray, *,
                       offer_ids: tuple[str, ...], control_label: str, params: BoosterParams,
                       seed: int) -> OutOfFold:
    """Fit the learner K times, each without one fold; predict that fold (and spread rows)."""
    k = int(fold.max()) + 1
    spread = np.random.default_rng(seed).permutation(len(X))[:SPREAD_ROWS]
    spread.sort()
    uplift = np.full((len(X), len(offer_ids)), np.nan)
    per_fold = np.full((k, len(spread), len(offer_ids)), np.nan)
    for j in range(k):
        test = fold == j
        model = fit_learner(kind, X[~test], treatment[~test], converted[~test],
                            propensity[~test], control_label=control_label, params=params,
                            seed=seed)
        columns = np.array([offer_ids.index(o) for o in model.offer_ids if o in offer_ids],
                           dtype=np.int64)
        modelled = [i for i, o in enumerate(model.offer_ids) if o in offer_ids]
        uplift[np.ix_(np.flatnonzero(test), columns)] = model.predict(X[test])[0][:, modelled]
        per_fold[j][:, columns] = model.predict(X[spread])[0][:, modelled]
    return OutOfFold(uplift, spread, per_fold)
