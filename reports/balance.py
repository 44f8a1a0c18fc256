"""Covariate balance between holdout and treated customers: is the holdout a fair control?

One row per customer (their first logged decision), the features that decision saw. Numeric
and boolean features are compared as they are; text features are one-hot encoded per level
(`feature=level`). The standardized mean difference is (mean treated - mean holdout) /
sqrt((var treated + var holdout) / 2), sample variances; |SMD| > 0.1 is the usual flag.
Missing values are left out of a feature's means (its `n_*` columns say how many remain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reports import ReportError

SMD_THRESHOLD = 0.1


@dataclass(frozen=True)
class FeatureBalance:
    """One feature (or one level of a text feature) compared between the arms."""

    feature: str
    mean_treated: float
    mean_holdout: float
    smd: float  # +-inf when the arms differ and neither varies
    n_treated: int
    n_holdout: int
    flagged: bool


@dataclass(frozen=True)
class BalanceReport:
    """SMD per feature, largest |SMD| first."""

    n_treated: int  # customers
    n_holdout: int
    rows: tuple[FeatureBalance, ...]
    threshold: float = SMD_THRESHOLD

    @property
    def flagged(self) -> tuple[FeatureBalance, ...]:
        """The features with |SMD| above the threshold."""
        return tuple(r for r in self.rows if r.flagged)

    @property
    def chance_smd(self) -> float:
        """|SMD| a perfectly random split reaches by chance 1 time in 20 at these arm sizes.

        The SMD's standard error is about sqrt(1/n_treated + 1/n_holdout): with a small
        holdout, |SMD| > 0.1 flags noise until the log holds enough customers.
        """
        return 1.96 * math.sqrt(1 / self.n_treated + 1 / self.n_holdout)

    def row(self, feature: str) -> FeatureBalance:
        """The row of `feature` (or `feature=level`); KeyError when there is none."""
        for row in self.rows:
            if row.feature == feature:
                return row
        raise KeyError(feature)

    def summary(self) -> str:
        """One line: how many features are out of balance."""
        flagged = self.flagged
        head = (f"{self.n_treated:,} treated and {self.n_holdout:,} holdout customers "
                f"(chance alone reaches |SMD| {self.chance_smd:.3f} at 95%), "
                f"{len(self.rows)} features: ")
        if not self.rows:
            return head + "no features were logged with the decisions, nothing to compare"
        if not flagged:
            return head + f"all |SMD| <= {self.threshold}; the holdout looks balanced"
        return head + (f"{len(flagged)} with |SMD| > {self.threshold} "
                       f"({', '.join(r.feature for r in flagged[:5])}"
                       f"{', ...' if len(flagged) > 5 else ''})")

    def to_frame(self) -> pd.DataFrame:
        """One row per feature."""
        columns = list(FeatureBalance.__dataclass_fields__)
        return pd.DataFrame([vars(r) for r in self.rows], columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (infinite SMDs as None)."""
        return {"n_treated": self.n_treated, "n_holdout": self.n_holdout,
                "threshold": self.threshold, "chance_smd": self.chance_smd,
                "summary": self.summary(),
                "features": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                              for k, v in vars(r).items()} for r in self.rows]}


def balance(decisions: pd.DataFrame, *, threshold: float = SMD_THRESHOLD) -> BalanceReport:
    """SMD of every feature between holdout and treated customers.

    Raises ReportError when there are no decisions, or no customers in one of the arms.
    """
    if decisions.empty:
        raise ReportError("no decisions in the log")
    first = (decisions.sort_values(["decided_at", "decision_id"], kind="stable")
             .drop_duplicates("customer_id", keep="first"))
    holdout = first["holdout"].astype(bool).to_numpy()
    n_h, n_t = int(holdout.sum()), int((~holdout).sum())
    if n_h == 0 or n_t == 0:
        arm = "holdout" if n_h == 0 else "treated"
        raise ReportError(f"no {arm} customers in the log: balance needs both arms")
    matrix = feature_matrix(first["features"])
    rows = [_compare(name, matrix[name].to_numpy(dtype=np.float64), holdout, threshold)
            for name in matrix.columns]
    rows.sort(key=lambda r: (math.inf if math.isnan(r.smd) else -abs(r.smd), r.feature))
    return BalanceReport(n_treated=n_t, n_holdout=n_h, rows=tuple(rows), threshold=threshold)


def feature_matrix(features: pd.Series) -> pd.DataFrame:
    """Numeric columns from feature dicts: numbers and booleans as is, text one-hot by level.

    A feature holding any text value is treated as text; its missing values stay missing in
    every level column.
    """
    raw = pd.DataFrame.from_records([f if isinstance(f, dict) else {} for f in features])
    columns: dict[str, pd.Series] = {}
    for name in sorted(raw.columns, key=str):
        values = raw[name]
        present = values.notna()
        if any(isinstance(v, str) for v in values[present]):
            text = values.where(present, None)
            for level in sorted({str(v) for v in text[present]}):
                columns[f"{name}={level}"] = (text.astype(str) == level).astype(np.float64) \
                    .where(present)
        else:
            numbers = pd.to_numeric(values.where(present, np.nan).map(_number),
                                    errors="coerce")
            columns[str(name)] = numbers.astype(np.float64)
    return pd.DataFrame(columns, index=raw.index)


def standardized_mean_difference(treated: np.ndarray, holdout: np.ndarray) -> float:
    """(mean treated - mean holdout) / pooled sd; 0 when equal constants, +-inf when unequal."""
    diff = float(treated.mean() - holdout.mean())
    var_t = treated.var(ddof=1) if len(treated) > 1 else 0.0
    var_h = holdout.var(ddof=1) if len(holdout) > 1 else 0.0
    pooled = math.sqrt((var_t + var_h) / 2)
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def _compare(name: str, values: np.ndarray, holdout: np.ndarray,
             threshold: float) -> FeatureBalance:
    known = ~np.isnan(values)
    treated, held = values[known & ~holdout], values[known & holdout]
    if len(treated) == 0 or len(held) == 0:
        return FeatureBalance(name, math.nan, math.nan, math.nan, len(treated), len(held), False)
    smd = standardized_mean_difference(treated, held)
    return FeatureBalance(name, float(treated.mean()), float(held.mean()), smd, len(treated),
                          len(held), abs(smd) > threshold)


def _number(value: Any) -> float:
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    return math.nan
