"""Baseline customer value: what a customer spends in an attribution window without an offer.

Used when customers.parquet has no `customer_value` (or a null one): learned from the control
arm's revenue, the only revenue no offer influenced.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from training.settings import BoosterParams


def fit_value(X_control: np.ndarray, revenue: np.ndarray, *, params: BoosterParams,
              seed: int) -> lgb.Booster:
    """Fit E[revenue | x, no offer] on control rows."""
    model = lgb.LGBMRegressor(**params.as_lightgbm(seed))
    model.fit(X_control, revenue)
    return model.booster_
