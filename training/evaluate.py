"""Uplift and policy evaluation on randomized logged data: Qini/AUUC, IPW policy value.

Means and intervals come from the one statistics module, `stats` (re-exported here).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from stats import Estimate, mean_estimate

__all__ = ["Estimate", "mean_estimate"]


def qini_curve(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve: incremental outcomes per treated customer when targeting the top x by score.

    Returns (x, q): x the targeted fraction from 0 to 1, q(x) = [Y_t(x) - Y_c(x) N_t(x)/N_c(x)]
    / N_t, i.e. incremental conversions per treated customer in the whole sample.
    """
    order = np.argsort(-score, kind="stable")
    t = treated[order].astype(np.float64)
    y = outcome[order].astype(np.float64)
    n_t, n_c = np.cumsum(t), np.cumsum(1.0 - t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * (1.0 - t))
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    q = (y_t - y_c * ratio) / max(n_t[-1], 1.0)
    x = np.arange(1, len(score) + 1) / len(score)
    return np.concatenate([[0.0], x]), np.concatenate([[0.0], q])


def qini_coefficient(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> float:
    """Area between the Qini curve and the random-targeting diagonal (0 = no better than random)."""
    x, q = qini_curve(score, treated, outcome)
    return float(np.trapezoid(q - q[-1] * x, x))


def uplift_curve(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gain: (mean_t - mean_c) among the top x, times x."""
    order = np.argsort(-score, kind="stable")
    t = treated[order].astype(np.float64)
    y = outcome[order].astype(np.float64)
    n_t, n_c = np.cumsum(t), np.cumsum(1.0 - t)
    mean_t = np.divide(np.cumsum(y * t), n_t, out=np.zeros_like(n_t), where=n_t > 0)
    mean_c = np.divide(np.cumsum(y * (1.0 - t)), n_c, out=np.zeros_like(n_c), where=n_c > 0)
    x = np.arange(1, len(score) + 1) / len(score)
    return np.concatenate([[0.0], x]), np.concatenate([[0.0], (mean_t - mean_c) * x])


def auuc(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> float:
    """Area under the uplift (cumulative gain) curve; random targeting scores ATE / 2."""
    x, gain = uplift_curve(score, treated, outcome)
    return float(np.trapezoid(gain, x))


def uplift_at(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, top: float) -> float:
    """Observed uplift (mean_t - mean_c) among the top `top` share by score."""
    cut = np.quantile(score, 1.0 - top)
    chosen = score >= cut
    t, c = chosen & (treated == 1), chosen & (treated == 0)
    if not t.any() or not c.any():
        return float("nan")
    return float(outcome[t].mean() - outcome[c].mean())


def uplift_by_decile(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, observed) mean uplift per predicted-uplift decile, highest decile first."""
    order = np.argsort(-score, kind="stable")
    predicted, observed = [], []
    for part in np.array_split(order, 10):
        t, c = part[treated[part] == 1], part[treated[part] == 0]
        predicted.append(score[part].mean())
        observed.append(outcome[t].mean() - outcome[c].mean() if len(t) and len(c) else np.nan)
    return np.asarray(predicted), np.asarray(observed)


def ipw_value(policy_probs: np.ndarray, logged_arm: np.ndarray, reward: np.ndarray,
              propensity: np.ndarray) -> Estimate:
    """Value of a policy by inverse propensity weighting on logged randomized data.

    `policy_probs[i, a]` is the probability the policy picks arm `a` for row `i`; the logged arm
    was chosen with `propensity[i]`. Unbiased when propensities are the true assignment ones.
    """
    weight = policy_probs[np.arange(len(logged_arm)), logged_arm] / propensity
    return mean_estimate(weight * reward)


def ipw_contributions(chosen: np.ndarray, logged: np.ndarray, reward: np.ndarray,
                      propensity: np.ndarray) -> np.ndarray:
    """Per-row IPW terms of a deterministic policy: reward / propensity where it matches the log."""
    match = np.asarray(chosen) == np.asarray(logged)
    return np.where(match, np.asarray(reward, dtype=np.float64)
                    / np.asarray(propensity, dtype=np.float64), 0.0)


def one_hot(arm: np.ndarray, n_arms: int) -> np.ndarray:
    """A deterministic policy's choices as probabilities."""
    probs = np.zeros((len(arm), n_arms))
    probs[np.arange(len(arm)), arm] = 1.0
    return probs


def at_arms(values: np.ndarray, arms: np.ndarray) -> np.ndarray:
    """Per row: `values` (rows, offers) at the row's arm (1 + offer), 0 where nothing is sent."""
    return np.where(arms > 0, values[np.arange(len(arms)), np.maximum(arms - 1, 0)], 0.0)


def greedy_arm(net_value: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Arm per row: 1 + the best eligible offer by net value, or 0 (control) when none pays."""
    masked = np.where(eligible, net_value, -np.inf)
    best = masked.argmax(axis=1)
    return np.where(masked[np.arange(len(best)), best] > 0, best + 1, 0)


def response_auc(converted: np.ndarray, predicted: np.ndarray) -> float:
    """ROC AUC of the response model (NaN when only one class is present)."""
    if len(np.unique(converted)) < 2:
        return float("nan")
    return float(roc_auc_score(converted, predicted))


def ipw_incremental_profit(chosen: np.ndarray, logged: np.ndarray, converted: np.ndarray,
                           propensity: np.ndarray, margins: np.ndarray, costs: np.ndarray
                           ) -> Estimate:
    """Incremental profit per customer of a deterministic policy, by IPW against control.

    For a row where the policy picks offer k (arm k >= 1), the contribution is
    1{T=k}/e (y m_k - c_k) - 1{T=control}/e (y m_k): conversions the customer would have made
    anyway earn the offer nothing. `margins`/`costs` are indexed by arm (index 0 = control).
    Rows where the policy sends nothing contribute 0. This is the quantity the policy ranks by.
    """
    return mean_estimate(profit_contributions(chosen, logged, converted, propensity, margins,
                                               costs))


def profit_contributions(chosen: np.ndarray, logged: np.ndarray, converted: np.ndarray,
                         propensity: np.ndarray, margins: np.ndarray, costs: np.ndarray
                         ) -> np.ndarray:
    """Per-row terms of `ipw_incremental_profit` (their mean is the estimate)."""
    m, c = margins[chosen], costs[chosen]
    treated_term = (logged == chosen) / propensity * (converted * m - c)
    control_term = (logged == 0) / propensity * (converted * m)
    return np.where(chosen > 0, treated_term - control_term, 0.0)


def population_uplift(logged: np.ndarray, converted: np.ndarray, propensity: np.ndarray,
                      n_arms: int) -> np.ndarray:
    """Average conversion uplift of each offer over control (IPW means); shape (n_arms - 1,)."""
    weights = 1.0 / propensity
    means = np.zeros(n_arms)
    for arm in range(n_arms):
        rows = logged == arm
        means[arm] = (np.average(converted[rows], weights=weights[rows]) if rows.any()
                      else np.nan)
    return means[1:] - means[0]
