"""Multi-treatment uplift: a causalml T-learner with LightGBM base learners.

causalml fits one control model and one model per offer. For serving we keep their LightGBM
boosters and compute uplift = P(convert | offer) - P(convert | control) directly on NumPy rows,
which is the same number causalml's `predict` returns (tested) without its wrapper overhead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np

from training.settings import BoosterParams

if TYPE_CHECKING:
    from causalml.inference.meta import BaseTClassifier


@dataclass(frozen=True)
class UpliftModel:
    """Per-offer conversion models against one control model."""

    offer_ids: tuple[str, ...]
    control: lgb.Booster
    treated: tuple[lgb.Booster, ...]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uplift, p_treated) per row and offer, each of shape (n_rows, n_offers)."""
        threads = 1 if len(X) < 1024 else 0  # one row: threads only add overhead
        p_control = self.control.predict(X, num_threads=threads)
        p_treated = np.empty((X.shape[0], len(self.treated)), dtype=np.float64)
        for k, booster in enumerate(self.treated):
            p_treated[:, k] = booster.predict(X, num_threads=threads)
        return p_treated - p_control[:, None], p_treated


def fit_uplift(
    X: np.ndarray,
    treatment: np.ndarray,
    converted: np.ndarray,
    *,
    control_label: str,
    params: BoosterParams,
    seed: int,
) -> tuple[UpliftModel, BaseTClassifier]:
    """Fit the T-learner; returns the serving model and the causalml learner it came from."""
    from causalml.inference.meta import BaseTClassifier  # heavy; serving never fits

    learner = BaseTClassifier(
        learner=lgb.LGBMClassifier(**params.as_lightgbm(seed)), control_name=control_label
    )
    learner.fit(X, treatment=treatment, y=converted)
    groups = tuple(str(g) for g in learner.t_groups)
    model = UpliftModel(
        offer_ids=groups,
        control=learner.model_c.booster_,
        treated=tuple(learner.models_t[g].booster_ for g in learner.t_groups),
    )
    return model, learner
