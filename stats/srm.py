"""Sample-ratio mismatch: is a randomized group as large as its configured share?"""

from __future__ import annotations

import math

from scipy import stats as sps


def srm_chi_square(n_group: int, n_total: int, expected_share: float) -> tuple[float, float]:
    """(chi-square, p-value) of `n_group` of `n_total` against `expected_share` (1 df).

    No rows: (0, 1). A share of 0 or 1 that the counts contradict (a holdout logged while
    switched off): (inf, 0); one they match: (0, 1).
    """
    if n_total <= 0:
        return 0.0, 1.0
    observed = [n_group, n_total - n_group]
    if not 0.0 < expected_share < 1.0:
        empty = 0 if expected_share <= 0.0 else 1
        return (math.inf, 0.0) if observed[empty] > 0 else (0.0, 1.0)
    expected = [n_total * expected_share, n_total * (1.0 - expected_share)]
    result = sps.chisquare(observed, f_exp=expected)
    return float(result.statistic), float(result.pvalue)
