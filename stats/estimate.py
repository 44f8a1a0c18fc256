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


def mean_variance(y: np.ndarray, clusters: np.ndarray | None, ddof: int = 0
                  ) -> tuple[float, float, int]:
    """mean(y), the variance of that mean, and the number G of independent units.

    Cluster-robust (sandwich): the sum over clusters of (their summed deviations from the
    mean)^2, over n^2, times G / (G - ddof) when G > ddof. One row per cluster (or no
    `clusters`) gives exactly var(y, ddof) / n with G = n.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    mean = float(y.mean())
    if clusters is None:
        sums, units = y - mean, n
    else:
        _, which = np.unique(np.asarray(clusters), return_inverse=True)
        sums = np.bincount(which, weights=y - mean).astype(np.float64)
        units = len(sums)
    variance = float(np.dot(sums, sums)) / n ** 2
    if units > ddof:
        variance *= units / (units - ddof)
    return mean, variance, units


def clustered_se(terms: np.ndarray, clusters: np.ndarray | None = None) -> float:
    """Standard error of the mean of `terms`, cluster-robust over `clusters` (None: per row).

    Raises ValueError for fewer than 2 rows or 2 clusters (no variance to estimate).
    """
    terms = np.asarray(terms, dtype=np.float64)
    n = len(terms)
    if n < 2:
        raise ValueError(f"need at least 2 rows for an interval, got {n}")
    if clusters is not None and len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster labels for {n} terms")
    _, variance, units = mean_variance(terms, clusters, ddof=1)
    if units < 2:
        raise ValueError("need at least 2 clusters for a clustered interval")
    return float(np.sqrt(variance))


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
