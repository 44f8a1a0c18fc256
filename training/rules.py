"""How far the policy trusts per-customer uplift: shrinkage, or a confidence rule.

Pure functions of uplift arrays. `Rule.shrinkage` pulls each customer's uplift towards the
offer's average effect (0: everyone gets the best single offer; 1: full targeting). The
confidence rule keeps full targeting but deviates from the best single offer only where the
gain is likely: the offer's uplift is lowered by a one-sided 95% bound on how much the
per-customer difference to the best single offer varies between fold models (the delete-a-fold
jackknife), so a customer moves only where the lower bound of the difference is positive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: one-sided 95%: "the lower bound of the gain is positive"
Z_ONE_SIDED = 1.645


@dataclass(frozen=True)
class Rule:
    """Shrinkage towards the average effect, optionally with the confidence penalty."""

    name: str
    shrinkage: float
    confident: bool = False
    #: per offer: full targeting where its heterogeneity is told from noise, else its average
    gated: bool = False
    #: per offer: shrinkage = the calibration slope of its uplift against the DR pseudo-outcome
    calibrated: bool = False
    #: per offer: full targeting where the rows its uplift ranks high respond more (by DR) than
    #: the rows it ranks low, else its average (`offer_screen`)
    screened: bool = False
    #: False: the policy sends nothing to anyone (worth exactly 0, with no noise)
    contacts: bool = True


#: simplest first (the order `training.select` prefers when candidates tie within noise)
RULES = {r.name: r for r in (
    Rule("nobody", 0.0, contacts=False),
    Rule("best_single", 0.0),
    Rule("confident", 1.0, confident=True),
    Rule("shrink_0.5", 0.5),
    Rule("screened", 1.0, screened=True),
    Rule("gated", 1.0, gated=True),
    Rule("calibrated", 1.0, calibrated=True),
    Rule("full", 1.0),
)}


def resolve(name: str) -> Rule:
    """A rule by name: one of RULES, or `shrink_<s>` for any shrinkage s in [0, 1]."""
    if name in RULES:
        return RULES[name]
    if name.startswith("shrink_"):
        try:
            shrinkage = float(name.removeprefix("shrink_"))
        except ValueError:
            shrinkage = -1.0
        if 0.0 <= shrinkage <= 1.0:
            return Rule(name, shrinkage)
    raise ValueError(f"unknown rule {name!r}; use one of {', '.join(RULES)} or shrink_<0..1>")


def default_offer(population: np.ndarray, margins: np.ndarray, costs: np.ndarray) -> int | None:
    """Catalog index of the offer with the best average net value, None when none pays."""
    net = np.nan_to_num(population * margins[1:] - costs[1:], nan=-np.inf)
    best = int(np.argmax(net))
    return best if net[best] > 0 else None


def jackknife_se(per_fold: np.ndarray) -> np.ndarray:
    """Delete-a-fold jackknife standard error over axis 0 (K fold models' predictions)."""
    k = per_fold.shape[0]
    return np.sqrt((k - 1) / k * np.sum((per_fold - per_fold.mean(axis=0)) ** 2, axis=0))


def deviation_penalty(per_fold: np.ndarray, default: int | None, margins: np.ndarray,
                      z: float = Z_ONE_SIDED) -> np.ndarray:
    """Per offer, in uplift units: z x the median jackknife SE of its net gain over the default.

    `per_fold` (k, rows, n_offers) are fold models' uplift on the same rows; `margins` indexed
    by arm. The default offer itself (or, with none, nothing) is never penalised.
    """
    offer_margins = margins[1:]
    net = per_fold * offer_margins  # costs are known constants: they do not vary by fold
    gain = net - (net[:, :, [default]] if default is not None else 0.0)
    se = np.nanmedian(jackknife_se(gain), axis=0)
    penalty = np.divide(z * np.nan_to_num(se), offer_margins,
                        out=np.zeros_like(offer_margins), where=offer_margins > 0)
    if default is not None:
        penalty[default] = 0.0
    return penalty


def fold_slopes(uplift: np.ndarray, pseudo: np.ndarray, fold: np.ndarray,
                clusters: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per offer: the unclipped OLS slope of the DR pseudo-outcome on the out-of-fold uplift,
    within folds, and its standard error clustered by `clusters` (NaN without them).

    Within folds (each row centred on its fold's means, the sums pooled: fold fixed effects),
    because pooled over folds the slope is biased low: a fold's lucky outcomes raise the other
    folds' models but not its own, so across folds the uplift is negatively correlated with the
    rows' own noise (on worlds with no heterogeneity the pooled slope came out near -0.5). The
    SE is the sandwich of the within-fold residuals. `uplift`, `pseudo`: (rows, n_offers), the
    pseudo-outcome being each row's DR score of the offer minus control's; `fold`: each row's
    cross-fitting fold; unmodelled (NaN) rows are left out; an offer without variation gets 0.
    """
    n_offers = uplift.shape[1]
    du, dy = np.zeros_like(uplift, dtype=np.float64), np.zeros_like(uplift, dtype=np.float64)
    used = np.isfinite(uplift) & np.isfinite(pseudo)
    for j in np.unique(fold):
        for k in range(n_offers):
            rows = (fold == j) & used[:, k]
            u = uplift[rows, k]
            if len(u) < 2 or np.ptp(u) == 0.0:  # a constant: its mean's rounding is no spread
                used[rows, k] = False
                continue
            du[rows, k] = u - u.mean()
            dy[rows, k] = pseudo[rows, k] - pseudo[rows, k].mean()
    spread = np.einsum("ik,ik->k", du, du)
    slopes = np.divide(np.einsum("ik,ik->k", du, dy), spread, out=np.zeros(n_offers),
                       where=spread > 0.0)
    se = np.full(n_offers, np.nan)
    if clusters is not None:
        _, which = np.unique(clusters, return_inverse=True)
        for o in np.flatnonzero(spread > 0.0):
            rows = used[:, o]
            influence = np.bincount(which[rows], weights=du[rows, o]
                                    * (dy[rows, o] - slopes[o] * du[rows, o]) / spread[o])
            se[o] = float(np.sqrt(influence @ influence))
    return slopes, se


def heterogeneity_gate(uplift: np.ndarray, pseudo: np.ndarray, fold: np.ndarray,
                       clusters: np.ndarray, z: float = Z_ONE_SIDED) -> np.ndarray:
    """Per offer: is its out-of-fold uplift's calibration slope against the DR pseudo-outcome,
    within folds (`fold_slopes`), positive beyond z standard errors clustered by customer?
    Where it is not, the offer's per-customer differences cannot be told from noise and its
    average effect is the safer estimate. Arrays as in `fold_slopes`; `clusters`: a customer
    id per row.
    """
    slopes, se = fold_slopes(uplift, pseudo, fold, clusters)
    return slopes - z * np.nan_to_num(se, nan=np.inf) > 0.0


def fold_halves(uplift: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Per row and offer: 1.0 in the upper half of its fold's rows ranked by the offer's
    uplift, 0.0 in the lower half, NaN where unmodelled; `fold` each row's cross-fitting fold.

    Split by rank, not by "above the median": a model with few distinct values (shallow trees)
    can tie half its rows at the top value, leaving nothing above the median and so no
    contrast; ties are split in row order, a contrast worth 0 in expectation. A fold whose
    uplift does not vary at all stays in one half (no split, no contrast).
    """
    halves = np.full(uplift.shape, np.nan)
    for j in np.unique(fold):
        for k in range(uplift.shape[1]):
            rows = np.flatnonzero((fold == j) & np.isfinite(uplift[:, k]))
            if len(rows) == 0:
                continue
            values = uplift[rows, k]
            halves[rows, k] = 0.0
            if np.ptp(values) > 0.0:
                upper = rows[np.argsort(values, kind="stable")[len(rows) // 2:]]
                halves[upper, k] = 1.0
    return halves


def offer_screen(uplift: np.ndarray, pseudo: np.ndarray, fold: np.ndarray, clusters: np.ndarray,
                 z: float = 0.0) -> np.ndarray:
    """Per offer: does its DR effect on the rows its uplift ranks above their fold's median
    exceed the effect on the rows below by more than z standard errors clustered by customer?

    An offer whose per-customer uplift is noise (its true effect the same for everyone) gains
    nothing from being ranked per customer, yet in an argmax over many offers its luckiest
    customers pick it: a winner's curse per customer (on the 16-offer blind world three
    quarters of the customers were sent an offer whose true effect does not vary). Such an
    offer competes by its average effect instead. Two groups at z = 0, not the slope gate
    (`heterogeneity_gate`, 1.645 SE). Within folds, for the reason `fold_slopes` gives: each
    fold's rows split at their own median and the high-minus-low contrasts pooled, which is
    the within-fold slope of the pseudo-outcome on the split (`fold_halves`); pooled over folds
    a fold whose models run high against its own noise lands in the high half and shuts real
    offers. Opt-in (docs/measurement.md, eighth round). `uplift`, `pseudo`: (rows, n_offers),
    the pseudo-outcome each row's DR score of the offer minus control's; `fold`: each row's
    cross-fitting fold; `clusters`: a customer id per row; unmodelled (NaN) uplift fails.
    """
    slopes, se = fold_slopes(fold_halves(uplift, fold), pseudo, fold, clusters)
    return slopes - z * np.nan_to_num(se) > 0.0  # no split in any fold: slope 0, shut


def calibration_slopes(uplift: np.ndarray, pseudo: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Per offer: the calibration slope within folds (`fold_slopes`), clipped to [0, 1]: the
    empirical-Bayes shrinkage of the uplift towards the offer's average effect.

    With randomized logs the pseudo-outcome is unbiased for the true effect, so the slope
    estimates cov(tau, u) / var(u), the coefficient of the best linear predictor of the true
    uplift from the noisy one. Noise-only uplift gets ~0 (the average effect), calibrated
    uplift ~1; an offer without variation keeps 0.
    """
    return np.clip(fold_slopes(uplift, pseudo, fold)[0], 0.0, 1.0)


#: (out-of-fold uplift, DR pseudo-outcome, fold, customer) -> a shrinkage per offer
PerOffer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def per_offer_estimator(rule: Rule) -> PerOffer | None:
    """The rule's shrinkage per offer estimated from the data (the heterogeneity gate, the
    offer screen: 1 or 0; the calibration slope), or None for a rule with a fixed shrinkage.
    One signature, so the pipeline fits each fold's from the other folds' rows in one place."""
    if rule.gated:
        return lambda u, p, f, c: heterogeneity_gate(u, p, f, c).astype(np.float64)
    if rule.screened:
        return lambda u, p, f, c: offer_screen(u, p, f, c).astype(np.float64)
    if rule.calibrated:
        return lambda u, p, f, c: calibration_slopes(u, p, f)
    return None


def apply(raw: np.ndarray, population: np.ndarray, shrinkage: float | np.ndarray,
          penalty: np.ndarray | None = None) -> np.ndarray:
    """The uplift the policy ranks by: shrunk towards `population` (a shrinkage per offer, or
    per row and offer, broadcasts), minus any penalty."""
    uplift = raw if np.all(np.asarray(shrinkage) == 1.0) \
        else shrinkage * raw + (1.0 - shrinkage) * population
    return uplift if penalty is None else uplift - penalty
