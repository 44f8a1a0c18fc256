"""Sample-ratio mismatch: is a randomized group as large as its configured share?"""

from __future__ import annotations

from scipy import stats as sps


def srm_chi_square(n_group: int, n_total: int, expected_share: float) -> tuple[float, float]:
    """(chi-square, p-value) of `n_group` of `n_total` against `expected_share` (1 df)."""
    if n_total <= 0 or not 0.0 < expected_share < 1.0:
        return float("nan"), float("nan")
    expected = [n_total * expected_share, n_total * (1.0 - expected_share)]
    result = sps.chisquare([n_group, n_total - n_group], f_exp=expected)
    return float(result.statistic), float(result.pvalue)
