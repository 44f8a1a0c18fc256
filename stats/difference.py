"""Two-sample differences with 95% intervals, variances clustered by customer.

The incrementality report's lifts (treated vs holdout): Newcombe's hybrid score interval
(difference of proportions; unlike the Wald interval it does not collapse to a point when an
arm has 0 or all conversions), a normal interval (other bounded means), a Welch t interval
with degrees of freedom counted in customers, and the relative lift by the delta method on the
log ratio of means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from stats.estimate import Z95, mean_variance


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% interval."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0."""
        return self.low > 0 or self.high < 0

    def scaled(self, factor: float) -> Interval:
        """The interval multiplied by a known positive constant."""
        return Interval(self.value * factor, self.low * factor, self.high * factor)


Clusters = tuple[np.ndarray | None, np.ndarray | None]  # customer ids per row of each arm


def normal_difference(a: np.ndarray, b: np.ndarray, clusters: Clusters = (None, None)
                      ) -> Interval | None:
    """mean(a) - mean(b) with a 95% normal interval (population variances, ddof 0).

    For 0/1 outcomes this is the Wald interval of the difference of proportions (unpooled);
    scaled by a constant, it is that interval scaled.
    """
    if len(a) == 0 or len(b) == 0:
        return None
    m_a, v_a, _ = mean_variance(a, clusters[0])
    m_b, v_b, _ = mean_variance(b, clusters[1])
    diff, se = m_a - m_b, math.sqrt(v_a + v_b)
    return Interval(diff, diff - Z95 * se, diff + Z95 * se)


def wilson(p: float, n: float) -> tuple[float, float]:
    """Wilson's 95% score interval of a proportion `p` observed over `n` (effective) draws."""
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n ** 2)) / (1 + Z95 ** 2 / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def effective_n(y: np.ndarray, clusters: np.ndarray | None) -> float:
    """How many independent draws 0/1 outcomes `y` are worth, given their clusters.

    p(1 - p) over the cluster-robust variance of the mean (n itself with one row per cluster).
    At p = 0 or 1 there is no variance to read the clustering from: Kish's effective size
    (sum m)^2 / sum m^2 of the cluster sizes m, as if each customer's rows were all alike (at
    0 or all conversions they are).
    """
    mean, variance, _ = mean_variance(y, clusters)
    if clusters is None:
        return float(len(y))
    if 0 < mean < 1 and variance > 0:
        return mean * (1 - mean) / variance
    _, sizes = np.unique(np.asarray(clusters), return_counts=True)
    return float(sizes.sum()) ** 2 / float(np.dot(sizes, sizes))


def newcombe_difference(a: np.ndarray, b: np.ndarray, clusters: Clusters = (None, None)
                        ) -> Interval | None:
    """mean(a) - mean(b) of 0/1 outcomes with Newcombe's 95% hybrid score interval.

    Newcombe (1998) method 10: each arm's Wilson interval, over its effective number of draws
    (`effective_n`: clustered by customer), combined by the square root of summed squared
    distances. With one row per customer it is statsmodels' `confint_proportions_2indep(...,
    method="newcomb")`. 0 of 7 conversions leaves a wide interval, not a zero-width one.
    """
    if len(a) == 0 or len(b) == 0:
        return None
    p_a, p_b = float(np.mean(a)), float(np.mean(b))
    low_a, high_a = wilson(p_a, effective_n(a, clusters[0]))
    low_b, high_b = wilson(p_b, effective_n(b, clusters[1]))
    diff = p_a - p_b
    return Interval(diff, diff - math.hypot(p_a - low_a, high_b - p_b),
                    diff + math.hypot(high_a - p_a, p_b - low_b))


def welch_difference(a: np.ndarray, b: np.ndarray, clusters: Clusters = (None, None)
                     ) -> Interval | None:
    """mean(a) - mean(b) with a 95% Welch t interval; None with fewer than 2 units in an arm."""
    if len(a) == 0 or len(b) == 0:
        return None
    m_a, v_a, g_a = mean_variance(a, clusters[0], ddof=1)
    m_b, v_b, g_b = mean_variance(b, clusters[1], ddof=1)
    if g_a < 2 or g_b < 2:
        return None
    diff, se = m_a - m_b, math.sqrt(v_a + v_b)
    if se == 0:
        return Interval(diff, diff, diff)
    df = (v_a + v_b) ** 2 / (v_a ** 2 / (g_a - 1) + v_b ** 2 / (g_b - 1))
    half = float(sps.t.ppf(0.975, df)) * se
    return Interval(diff, diff - half, diff + half)


def relative_lift(a: np.ndarray, b: np.ndarray, *, ddof: int,
                  clusters: Clusters = (None, None)) -> Interval | None:
    """mean(a) / mean(b) - 1 with a 95% delta-method interval on the log ratio.

    Var(log(mean)) ~= Var(mean) / mean^2. None when an arm has no more units than `ddof`, or a
    mean is not positive.
    """
    if len(a) == 0 or len(b) == 0:
        return None
    m_a, v_a, g_a = mean_variance(a, clusters[0], ddof)
    m_b, v_b, g_b = mean_variance(b, clusters[1], ddof)
    if g_a <= ddof or g_b <= ddof or m_a <= 0 or m_b <= 0:
        return None
    se = math.sqrt(v_a / m_a ** 2 + v_b / m_b ** 2)
    log_ratio = math.log(m_a / m_b)
    return Interval(math.exp(log_ratio) - 1, math.exp(log_ratio - Z95 * se) - 1,
                    math.exp(log_ratio + Z95 * se) - 1)
