"""Means of per-row terms with 95% normal intervals, clustered by customer.

A customer with several logged rows is one draw, not several: the variance of a mean is the
cluster-robust one (sum each customer's centred terms, then take the variance of those sums),
with the small-sample factor G / (G - 1) that statsmodels' `cov_type="cluster"` applies to an
intercept-only OLS. With one row per customer it is exactly the textbook s / sqrt(n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

Z95 = float(sps.norm.ppf(0.975))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% normal-approximation interval."""

    value: float
    low: float
    high: float

    @property
    def width(self) -> float:
        """high - low."""
        return self.high - self.low

    @property
    def se(self) -> float:
        """The standard error behind the interval."""
        return self.width / (2 * Z95)

    def covers(self, truth: float) -> bool:
        """True when `truth` lies inside the interval."""
        return self.low <= truth <= self.high

    def as_dict(self, prefix: str) -> dict[str, float]:
        """Flat metrics for MLflow."""
        return {prefix: self.value, f"{prefix}_ci_low": self.low, f"{prefix}_ci_high": self.high}


def clustered_se(terms: np.ndarray, clusters: np.ndarray | None = None) -> float:
    """Standard error of the mean of `terms`, cluster-robust over `clusters` (None: per row).

    Raises ValueError for fewer than 2 rows or 2 clusters (no variance to estimate).
    """
    terms = np.asarray(terms, dtype=np.float64)
    n = len(terms)
    if n < 2:
        raise ValueError(f"need at least 2 rows for an interval, got {n}")
    if clusters is None:
        return float(terms.std(ddof=1) / np.sqrt(n))
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster labels for {n} terms")
    _, codes = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(codes, weights=terms - terms.mean())
    g = len(sums)
    if g < 2:
        raise ValueError("need at least 2 clusters for a clustered interval")
    return float(np.sqrt(g / (g - 1) * np.sum(sums ** 2)) / n)


def mean_estimate(terms: np.ndarray, clusters: np.ndarray | None = None) -> Estimate:
    """Mean of per-row terms with a 95% interval, clustered by `clusters` when given.

    For two policies on the same rows, pass the difference of their terms (`paired_difference`).
    """
    terms = np.asarray(terms, dtype=np.float64)
    value = float(terms.mean())
    se = clustered_se(terms, clusters)
    return Estimate(value, value - Z95 * se, value + Z95 * se)


def paired_difference(a: np.ndarray, b: np.ndarray, clusters: np.ndarray | None = None
                      ) -> Estimate:
    """Mean of a - b over the same rows: far tighter than two separate intervals."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired terms differ in shape: {a.shape} vs {b.shape}")
    return mean_estimate(a - b, clusters)
