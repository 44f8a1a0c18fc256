"""Response model: P(convert | customer, offer) from one LightGBM over all arms.

This is what incumbent decisioning ranks on (propensity). We keep it for the conversion
probability shown beside each offer and as the propensity-only baseline, never for ranking.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from training.settings import BoosterParams


def with_arm(X: np.ndarray, arm: np.ndarray, n_arms: int) -> np.ndarray:
    """Append a one-hot of the arm index (0 = control, k = k-th offer) to each row."""
    onehot = np.zeros((X.shape[0], n_arms), dtype=X.dtype)
    onehot[np.arange(X.shape[0]), arm] = 1.0
    return np.hstack([X, onehot])


def all_arms(X: np.ndarray, n_arms: int) -> np.ndarray:
    """Each row repeated once per arm, arm-major within a row: shape (n_rows * n_arms, width)."""
    rows = np.repeat(X, n_arms, axis=0)
    arm = np.tile(np.arange(n_arms), X.shape[0])
    return with_arm(rows, arm, n_arms)


def fit_response(
    X: np.ndarray, arm: np.ndarray, converted: np.ndarray, *, n_arms: int, params: BoosterParams,
    seed: int,
) -> lgb.Booster:
    """Fit P(convert | x, arm) on every exposure."""
    model = lgb.LGBMClassifier(**params.as_lightgbm(seed))
    model.fit(with_arm(X, arm, n_arms), converted)
    return model.booster_


def predict_response(booster: lgb.Booster, X: np.ndarray, n_arms: int,
                     num_threads: int | None = None) -> np.ndarray:
    """P(convert) for every row and arm: shape (n_rows, n_arms); column 0 is control
    (`num_threads`: LightGBM's, default every core from 1,024 rows)."""
    threads = num_threads if num_threads is not None else 1 if len(X) < 1024 else 0
    scores = np.asarray(booster.predict(all_arms(X, n_arms), num_threads=threads))
    return scores.reshape(X.shape[0], n_arms)
