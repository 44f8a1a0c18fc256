"""The menu's meta-learners and LightGBM capacities, each fitted to a servable `UpliftModel`.

S and T are causalml's classifiers (`training.uplift.fit_uplift`); X is causalml's
`BaseXRegressor` on LightGBM, given the logged propensities instead of a fitted propensity
model (the data are randomized: the logging policy's probabilities are known). Its effect
models are mixed by each offer's share P(offer | offer or control), a constant per offer, so
the served model needs no propensity at request time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import lightgbm as lgb
import numpy as np

from training.settings import BoosterParams
from training.uplift import Learner, UpliftModel, fit_uplift

#: simplest first: the order `training.select` prefers when candidates tie within noise
LEARNERS: tuple[Learner, ...] = ("s", "t", "x")


@dataclass(frozen=True)
class Capacity:
    """How much a LightGBM base learner may fit: leaves, minimum leaf size, trees, and
    LightGBM's own regularisers (defaults: the base settings')."""

    name: str
    num_leaves: int | None  # None: keep the base settings'
    min_child_samples: int | None
    tree_factor: float
    #: cap the leaf floor at rows per arm / (leaves + 1) when fitting (`fit_to_rows`)
    scaled: bool = False
    #: times the base learning rate (with tree_factor: smaller steps, more trees)
    rate_factor: float = 1.0
    extra_trees: bool = False
    path_smooth: float = 0.0
    reg_lambda: float | None = None

    def apply(self, params: BoosterParams) -> BoosterParams:
        """The base settings with this capacity's leaves, leaf size, trees and regularisers."""
        return replace(params,
                       num_leaves=self.num_leaves or params.num_leaves,
                       min_child_samples=self.min_child_samples or params.min_child_samples,
                       n_estimators=max(10, round(params.n_estimators * self.tree_factor)),
                       learning_rate=params.learning_rate * self.rate_factor,
                       extra_trees=self.extra_trees or params.extra_trees,
                       path_smooth=self.path_smooth or params.path_smooth,
                       reg_lambda=params.reg_lambda if self.reg_lambda is None
                       else self.reg_lambda,
                       leaves_by_rows=self.scaled)


#: simplest first. "base" is the configured settings (`nba train --trees`), unchanged. "low"
#: grows trees of 3 leaves (one split and one interaction): on every world and seed measured,
#: design and held-out, its out-of-fold policies were truly worth as much as or more than 7
#: leaves' (docs/measurement.md), small effects on noisy conversions being better told apart
#: by shallow trees
CAPACITIES = {c.name: c for c in (
    Capacity("low", 3, 200, 0.5),
    Capacity("base", None, None, 1.0),
    Capacity("high", 31, 40, 1.0),
    # opt-in: 7 leaves (the `low` of before) with the leaf floor scaled down for small arms.
    # In the default menu it helped the 32-offer world (19% -> 22% of the oracle) but the
    # worlds' mean fell (65% -> 62%; docs/measurement.md)
    Capacity("small", 7, 200, 0.5, scaled=True),
    # opt-in, measured against `low` (docs/measurement.md, seventh round). `low_smooth`: leaf
    # values shrunk towards the parent's by 100 / (rows + 100) (LightGBM's path_smooth, in
    # rows); out-of-fold T better on all 8 design worlds, X on 7 (0.1 point below on 1), S
    # worse on 6; served +2 points on the worlds' mean (within the choice's noise), but on
    # Hillstrom at c = 1.00 below treating nobody beyond noise, so not the default. Then
    # randomised thresholds; stronger smoothing (300); half the learning rate and twice the
    # trees; L2 of 20 (or 100)
    Capacity("low_smooth", 3, 200, 0.5, path_smooth=100.0),
    Capacity("low_et", 3, 200, 0.5, extra_trees=True),
    Capacity("low_slow", 3, 200, 1.0, rate_factor=0.5),
    Capacity("low_l2", 3, 200, 0.5, reg_lambda=20.0),
    Capacity("low_ps300", 3, 200, 0.5, path_smooth=300.0),
    Capacity("low_l2_100", 3, 200, 0.5, reg_lambda=100.0),
)}


#: a leaf floor never goes below this many rows, however small an arm
MIN_LEAF_FLOOR = 20


def rows_per_arm(treatment: np.ndarray) -> int:
    """The median number of rows an arm (control included) has in `treatment`."""
    _, counts = np.unique(np.asarray(treatment, dtype=object).astype(str), return_counts=True)
    return int(np.median(counts))


def fit_to_rows(params: BoosterParams, per_arm: int) -> BoosterParams:
    """`params` with the minimum leaf size capped at per_arm / (leaves + 1).

    Each base learner fits on about one arm's rows (T, X) or two (S). A floor fixed for large
    data (200 rows a leaf) turns a 7-leaf tree into a stump when an arm has 500 rows, so a
    narrow effect is never split out; capped this way every tree can still grow its leaves,
    and with many rows per arm the configured floor stands.
    """
    cap = max(MIN_LEAF_FLOOR, per_arm // (params.num_leaves + 1))
    return replace(params, min_child_samples=min(params.min_child_samples, cap))


def arm_shares(logged: np.ndarray, propensity: np.ndarray, n_arms: int) -> np.ndarray:
    """Each arm's average logged propensity (the logging policy's probability of the arm)."""
    shares = np.zeros(n_arms)
    for arm in range(n_arms):
        rows = logged == arm
        shares[arm] = propensity[rows].mean() if rows.any() else 0.0
    return shares


def fit_x(X: np.ndarray, treatment: np.ndarray, converted: np.ndarray, propensity: np.ndarray,
          *, control_label: str, params: BoosterParams, seed: int) -> tuple[UpliftModel, Any]:
    """causalml's X-learner with the logged propensities; returns the serving model too."""
    from causalml.inference.meta import BaseXRegressor

    labels = np.asarray(treatment, dtype=object)
    groups = sorted(set(labels) - {control_label})
    e_control = float(propensity[labels == control_label].mean())
    # P(offer | offer or control) per offer: constant under randomization, so servable
    share = {g: float(propensity[labels == g].mean()) for g in groups}
    p = {g: np.full(len(labels), share[g] / (share[g] + e_control)) for g in groups}
    fitted = BaseXRegressor(learner=lgb.LGBMRegressor(**params.as_lightgbm(seed)),
                            control_name=control_label)
    fitted.fit(X, treatment=labels, y=np.asarray(converted, dtype=np.float64), p=p)
    boosters: list[lgb.Booster] = []
    for g in fitted.t_groups:
        boosters += [fitted.models_tau_c[g].booster_, fitted.models_tau_t[g].booster_]
    # causalml fits one control outcome model per offer, on the same control rows
    control = fitted.models_mu_c[fitted.t_groups[0]].booster_
    weights = tuple(float(p[g][0]) for g in fitted.t_groups)
    model = UpliftModel(tuple(str(g) for g in fitted.t_groups), control, tuple(boosters), "x",
                        weights)
    return model, fitted


def fit_learner(kind: Learner, X: np.ndarray, treatment: np.ndarray, converted: np.ndarray,
                propensity: np.ndarray, *, control_label: str, params: BoosterParams,
                seed: int) -> UpliftModel:
    """Fit one meta-learner of the menu into a servable uplift model (with
    `params.leaves_by_rows`, the leaf floor capped by the rows per arm: `fit_to_rows`)."""
    if params.leaves_by_rows:
        params = fit_to_rows(params, rows_per_arm(treatment))
    if kind == "x":
        return fit_x(X, treatment, converted, propensity, control_label=control_label,
                     params=params, seed=seed)[0]
    if kind in ("s", "t"):
        return fit_uplift(X, treatment, converted, control_label=control_label, params=params,
                          seed=seed, learner=kind)[0]
    raise ValueError(f"unknown learner {kind!r}; use one of {', '.join(LEARNERS)}")
