"""The chosen candidate as selection measured it: its K cross-fitted fold models and rules.

Selection scores a candidate by the out-of-fold policy: fold j's rows ranked by the model
fitted without them, shrunk towards (and penalised from) offer averages of the other folds'
rows. The served policy is a refit on every row, a different model; keeping the measured
pieces lets that policy be scored again on new customers (bench/refit_gap.py), or served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training import rules
from training.uplift import UpliftModel


@dataclass(frozen=True)
class FoldPolicies:
    """Per fold j: the uplift model fitted without fold j (None for a rule that ranks by offer
    averages only), and the rule's shrinkage target, shrinkage and penalty from the other
    folds' rows: the policy fold j's rows were scored by."""

    offer_ids: tuple[str, ...]  # catalog order
    models: tuple[UpliftModel | None, ...]
    population: np.ndarray  # (k, n_offers)
    shrinkage: tuple[float | np.ndarray, ...]
    penalty: tuple[np.ndarray | None, ...]

    @property
    def folds(self) -> int:
        """K."""
        return len(self.models)

    def raw(self, j: int, X: np.ndarray) -> np.ndarray:
        """Fold j's model's uplift on X in catalog order (NaN where unmodelled; 0 without a
        model)."""
        return catalog_uplift(self.models[j], X, self.offer_ids)

    def ranked(self, j: int, X: np.ndarray) -> np.ndarray:
        """The uplift fold j's policy ranks X's rows by (its rule applied)."""
        return rules.apply(self.raw(j, X), self.population[j], self.shrinkage[j],
                           self.penalty[j])

    def out_of_fold(self, raw: np.ndarray, fold: np.ndarray) -> np.ndarray:
        """`ranked` for every row at once, given each row's uplift from its fold's model (`raw`,
        NaN where unmodelled, zeros without a model) and its fold: what selection scored."""
        width = len(self.offer_ids)
        shrinkage = np.stack([np.broadcast_to(s, (width,)) for s in self.shrinkage])
        penalty = None if all(p is None for p in self.penalty) else np.stack(
            [np.zeros(width) if p is None else p for p in self.penalty])[fold]
        return rules.apply(raw, self.population[fold], shrinkage[fold], penalty)

    def mean_raw(self, X: np.ndarray) -> np.ndarray:
        """The K fold models' uplift averaged (a bagged model of what was measured)."""
        return np.mean([self.raw(j, X) for j in range(self.folds)], axis=0)


def catalog_uplift(model: UpliftModel | None, X: np.ndarray,
                   offer_ids: tuple[str, ...]) -> np.ndarray:
    """`model`'s uplift on X, columns in `offer_ids` order: NaN for an offer it does not model,
    zeros everywhere when there is no model."""
    if model is None:
        return np.zeros((len(X), len(offer_ids)))
    predicted = model.predict(X)[0]
    out = np.full((len(X), len(offer_ids)), np.nan)
    for column, offer in enumerate(model.offer_ids):
        if offer in offer_ids:
            out[:, offer_ids.index(offer)] = predicted[:, column]
    return out
