"""How many rows an estimate would need to tell a gain from noise (normal approximation).

A standard error shrinks as 1 / sqrt(rows), so the rows needed to detect a gain of size g with
a two-sided test at level alpha and the given power follow from today's SE alone:
rows' = rows x ((z_alpha + z_power) x se / g)^2. Used to say, at training time, whether the data
are large enough for targeting to be told from the best single offer, and how large they would
have to be (the worlds benchmark shows that rows per arm, not the method, decide most of it).
"""

from __future__ import annotations

import math

from scipy import stats as sps

from stats.estimate import Estimate


def detectable_gain(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true gain a test at `alpha` (two-sided) detects with `power`, given `se`."""
    return (float(sps.norm.ppf(1 - alpha / 2)) + float(sps.norm.ppf(power))) * se


def rows_to_detect(gain: Estimate, rows: int, alpha: float = 0.05, power: float = 0.8
                   ) -> int | None:
    """Rows (in the unit of `rows`) at which a true gain of `gain.value` would be detected;
    None when the estimated gain is not positive (there is no size to plan for)."""
    if gain.value <= 0.0 or rows <= 0:
        return None
    if gain.se <= 0.0:
        return rows
    return math.ceil(rows * (detectable_gain(gain.se, alpha, power) / gain.value) ** 2)
