"""Multi-treatment uplift with causalml meta-learners on LightGBM base learners.

causalml's T-learner fits one control model and one model per offer; its S-learner fits one
model per offer on (treatment flag, features). For serving we keep their LightGBM boosters and
compute uplift = P(convert | offer) - P(convert | control) directly on NumPy rows: the same
numbers causalml's `predict` returns (tested) without its wrapper overhead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import lightgbm as lgb
import numpy as np

from training.settings import BoosterParams

Learner = Literal["t", "s"]
LEARNER_NAMES = {"t": "causalml.BaseTClassifier(LGBMClassifier)",
                 "s": "causalml.BaseSClassifier(LGBMClassifier)"}


@dataclass(frozen=True)
class UpliftModel:
    """Per-offer conversion models: T-learner (with a control model) or S-learner (without)."""

    offer_ids: tuple[str, ...]
    control: lgb.Booster | None
    treated: tuple[lgb.Booster, ...]
    kind: Learner = "t"

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uplift, p_treated) per row and offer, each of shape (n_rows, n_offers)."""
        threads = 1 if len(X) < 1024 else 0  # one row: threads only add overhead
        n = X.shape[0]
        p_treated = np.empty((n, len(self.treated)), dtype=np.float64)
        p_control = np.empty_like(p_treated)
        if self.kind == "t":
            assert self.control is not None
            p_control[:] = self.control.predict(X, num_threads=threads)[:, None]
            for k, booster in enumerate(self.treated):
                p_treated[:, k] = booster.predict(X, num_threads=threads)
        else:  # S-learner: the treatment flag is the first column; score both flags at once
            both = np.empty((2 * n, X.shape[1] + 1), dtype=np.float64)
            both[:n, 0], both[n:, 0] = 1.0, 0.0
            both[:n, 1:] = X
            both[n:, 1:] = X
            for k, booster in enumerate(self.treated):
                scored = booster.predict(both, num_threads=threads)
                p_treated[:, k], p_control[:, k] = scored[:n], scored[n:]
        return p_treated - p_control, p_treated


def fit_uplift(
    X: np.ndarray,
    treatment: np.ndarray,
    converted: np.ndarray,
    *,
    control_label: str,
    params: BoosterParams,
    seed: int,
    learner: Learner = "t",
):
    """Fit the meta-learner; returns the serving model and the causalml learner it came from."""
    # heavy import, and serving never fits
    from causalml.inference.meta import BaseSClassifier, BaseTClassifier

    base = lgb.LGBMClassifier(**params.as_lightgbm(seed))
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
