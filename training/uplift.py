"""Multi-treatment uplift with causalml meta-learners on LightGBM base learners.

causalml's T-learner fits one control model and one model per offer; its S-learner fits one
model per offer on (treatment flag, features); its X-learner (training.learners) one control
outcome model and two effect models per offer, mixed by the offer's logged propensity. For
serving we keep their LightGBM boosters and compute uplift directly on NumPy rows: the same
numbers causalml's `predict` returns (tested) without its wrapper overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np

from training.fastpredict import SingleRowPredictor
from training.settings import BoosterParams

Learner = Literal["t", "s", "x"]
LEARNER_NAMES = {"t": "causalml.BaseTClassifier(LGBMClassifier)",
                 "s": "causalml.BaseSClassifier(LGBMClassifier)",
                 "x": "causalml.BaseXRegressor(LGBMRegressor)"}
#: Up to this many rows per booster (the S-learner scores 2 per customer), score through
#: LightGBM's single-row C API (training.fastpredict) instead of Booster.predict and its ~25 µs
#: setup per call. Measured with 12 boosters of 150 trees: ~3x faster at 2 rows, ~1.4x at 8,
#: level at ~24; past that Booster.predict's tighter per-row loop wins.
FAST_MAX_ROWS = 8


def with_treatment_flag(X: np.ndarray) -> np.ndarray:
    """S-learner input: X with a treatment flag column in front, flag 1 rows then flag 0 rows."""
    n = X.shape[0]
    both = np.empty((2 * n, X.shape[1] + 1), dtype=np.float64)
    both[:n, 0], both[n:, 0] = 1.0, 0.0
    both[:n, 1:] = X
    both[n:, 1:] = X
    return both


@dataclass(frozen=True)
class UpliftModel:
    """Per-offer conversion models: T-learner (with a control model), S-learner (without), or
    X-learner (a control model; `treated` holds each offer's (tau_control, tau_treated) pair,
    mixed as weight * tau_control + (1 - weight) * tau_treated by the offer's `weights`)."""

    offer_ids: tuple[str, ...]
    control: lgb.Booster | None
    treated: tuple[lgb.Booster, ...]
    kind: Learner = "t"
    weights: tuple[float, ...] = ()
    # built on the first few-row call (its FastConfigs later still, per thread)
    _fast: SingleRowPredictor | None = field(default=None, init=False, repr=False,
                                             compare=False)

    def predict(self, X: np.ndarray, num_threads: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """(uplift, p_treated) per row and offer, each of shape (n_rows, n_offers).

        `num_threads`: LightGBM threads for a large X (default: every core from 1,024 rows).
        """
        n = X.shape[0]
        if self.treated and (2 * n if self.kind == "s" else n) <= FAST_MAX_ROWS:
            return self._predict_few(X)
        threads = num_threads if num_threads is not None else (1 if n < 1024 else 0)
        if self.kind == "x":
            assert self.control is not None
            scores = np.column_stack([b.predict(X, num_threads=threads)
                                      for b in (self.control, *self.treated)])
            return self._mix(scores)
        p_treated = np.empty((n, len(self.treated)), dtype=np.float64)
        p_control = np.empty_like(p_treated)
        if self.kind == "t":
            assert self.control is not None
            p_control[:] = np.asarray(self.control.predict(X, num_threads=threads))[:, None]
            for k, booster in enumerate(self.treated):
                p_treated[:, k] = booster.predict(X, num_threads=threads)
        else:  # S-learner: the treatment flag is the first column; score both flags at once
            both = with_treatment_flag(X)
            for k, booster in enumerate(self.treated):
                scored = booster.predict(both, num_threads=threads)
                p_treated[:, k], p_control[:, k] = scored[:n], scored[n:]
        return p_treated - p_control, p_treated

    def _mix(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X-learner (uplift, p_treated) from columns control, tau_c, tau_t, tau_c, tau_t, ..."""
        weight = np.asarray(self.weights, dtype=np.float64)
        uplift = weight * scores[:, 1::2] + (1.0 - weight) * scores[:, 2::2]
        p_control = np.clip(scores[:, :1], 0.0, 1.0)  # a regression of a 0/1 outcome
        return uplift, p_control + uplift

    def _predict_few(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`predict` for a few rows (a request's one customer): same numbers, no per-call setup."""
        fast = self._fast
        if fast is None:  # two threads racing here each build a valid one; either may stay
            if self.kind in ("t", "x"):
                assert self.control is not None
                fast = SingleRowPredictor((self.control, *self.treated))
            else:
                fast = SingleRowPredictor(self.treated)
            object.__setattr__(self, "_fast", fast)
        if self.kind == "x":
            return self._mix(fast.predict(X))
        if self.kind == "t":
            scores = fast.predict(X)  # columns: control, then each offer
            p_treated = np.ascontiguousarray(scores[:, 1:])
            return p_treated - scores[:, :1], p_treated
        n = X.shape[0]
        scores = fast.predict(with_treatment_flag(X))
        p_treated = scores[:n]
        return p_treated - scores[n:], p_treated


def fit_uplift(
    X: np.ndarray,
    treatment: np.ndarray,
    converted: np.ndarray,
    *,
    control_label: str,
    params: BoosterParams,
    seed: int,
    learner: Learner = "t",
) -> tuple[UpliftModel, Any]:
    """Fit the S- or T-learner; returns the serving model and the causalml learner it came
    from (the X-learner, which needs propensities, is `training.learners.fit_x`)."""
    # heavy import, and serving never fits
    from causalml.inference.meta import BaseSClassifier, BaseTClassifier

    # the S-learner puts the treatment flag in front of X (`with_treatment_flag`)
    base = lgb.LGBMClassifier(**(params.shifted(1) if learner == "s" else params)
                              .as_lightgbm(seed))
    if learner == "t":
        fitted = BaseTClassifier(learner=base, control_name=control_label)
        fitted.fit(X, treatment=treatment, y=converted)
        control = fitted.model_c.booster_
        treated = tuple(fitted.models_t[g].booster_ for g in fitted.t_groups)
    elif learner == "s":
        fitted = BaseSClassifier(learner=base, control_name=control_label)
        fitted.fit(X, treatment=treatment, y=converted)
        control = None
        treated = tuple(fitted.models[g].booster_ for g in fitted.t_groups)
    else:
        raise ValueError(f"unknown learner {learner!r}; use 't' or 's'")
    groups = tuple(str(g) for g in fitted.t_groups)
    return UpliftModel(groups, control, treated, learner), fitted
