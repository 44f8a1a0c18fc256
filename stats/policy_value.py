"""Per-row terms whose mean is a policy's value on logged randomized data.

`aipw_scores` gives, for every row i and arm a, an unbiased score of the outcome Y_i(a):

    Gamma[i, a] = mu[i, a] + 1{A_i = a} / e_i * (Y_i - mu[i, a])

(the doubly robust / AIPW score: right when either the logged propensities e or the outcome
predictions mu are). With mu = 0 it is the inverse-propensity score (`ipw_scores`). The outcome
predictions must be cross-fitted (made by a model that never saw row i), or the score is biased
towards the model. A policy's value is the mean of Gamma at its chosen arm; the better mu is,
the smaller the variance, which is why DR ranks candidates IPW cannot tell apart.
"""

from __future__ import annotations

import numpy as np


def _check(logged: np.ndarray, propensity: np.ndarray, outcome: np.ndarray) -> None:
    if not len(logged) == len(propensity) == len(outcome):
        raise ValueError("logged arms, propensities and outcomes must have the same length")
    if len(propensity) and not (np.all(propensity > 0) and np.all(propensity <= 1)):
        raise ValueError("logged propensities must lie in (0, 1]")


def aipw_scores(logged: np.ndarray, propensity: np.ndarray, outcome: np.ndarray,
                mu: np.ndarray) -> np.ndarray:
    """DR scores of every arm's outcome per row: shape (n_rows, n_arms) like `mu`.

    `logged[i]` is the arm index shown to row i with probability `propensity[i]`;
    `mu[i, a]` a cross-fitted prediction of row i's outcome under arm a.
    """
    logged = np.asarray(logged, dtype=np.int64)
    propensity = np.asarray(propensity, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    _check(logged, propensity, outcome)
    rows = np.arange(len(logged))
    scores = mu.copy()
    scores[rows, logged] += (outcome - mu[rows, logged]) / propensity
    return scores


def ipw_scores(logged: np.ndarray, propensity: np.ndarray, outcome: np.ndarray,
               n_arms: int) -> np.ndarray:
    """IPW scores of every arm's outcome per row: `aipw_scores` with no outcome model."""
    return aipw_scores(logged, propensity, outcome, np.zeros((len(logged), n_arms)))


def arm_effects(scores: np.ndarray, logged: np.ndarray) -> np.ndarray:
    """Each offer's average effect over control: mean DR score per arm minus control's.

    The population uplift the best single offer and shrinkage rest on. Unlike per-arm means of
    the logged outcomes it is unconfounded when propensities depend on the customer (every row
    scores every arm), and the outcome model takes out the variance the covariates explain.
    Shape (n_arms - 1,); NaN for an arm never logged (its score would be the model's guess).
    """
    scores = np.asarray(scores, dtype=np.float64)
    logged = np.asarray(logged, dtype=np.int64)
    seen = np.bincount(logged, minlength=scores.shape[1]) > 0
    means = np.where(seen, scores.mean(axis=0), np.nan)
    return means[1:] - means[0]


def policy_terms(chosen: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-row terms of a deterministic policy's value: the score at its chosen arm."""
    chosen = np.asarray(chosen, dtype=np.int64)
    return scores[np.arange(len(chosen)), chosen]


def profit_terms(chosen: np.ndarray, scores: np.ndarray, margins: np.ndarray,
                 costs: np.ndarray) -> np.ndarray:
    """Per-row incremental profit of a deterministic policy against sending nothing.

    Choosing offer k >= 1 for row i earns margin_k * (Gamma[i, k] - Gamma[i, 0]) - cost_k:
    conversions the customer would have made anyway earn the offer nothing. Arm 0 (control,
    nothing sent) earns 0. `scores` from `aipw_scores` / `ipw_scores` on conversion outcomes;
    `margins` and `costs` indexed by arm (index 0 = control).
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    lift = policy_terms(chosen, scores) - scores[:, 0]
    return np.where(chosen > 0, margins[chosen] * lift - costs[chosen], 0.0)
