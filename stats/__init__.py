"""Statistics shared by training, compare and reports: pure NumPy/SciPy, no I/O.

- `estimate`: means with 95% normal intervals, clustered by customer.
- `policy_value`: per-row IPW and doubly robust (AIPW) terms of a policy on logged data.
- `difference`: two-sample differences and relative lifts with 95% intervals (reports).
- `srm`: the sample-ratio-mismatch chi-square test.
"""

from stats.difference import (
    Interval,
    newcombe_difference,
    normal_difference,
    relative_lift,
    welch_difference,
)
from stats.estimate import (
    Z95,
    Estimate,
    clustered_se,
    mean_estimate,
    mean_variance,
    paired_difference,
)
from stats.policy_value import aipw_scores, arm_effects, ipw_scores, policy_terms, profit_terms
from stats.srm import srm_chi_square

__all__ = ["Z95", "Estimate", "Interval", "aipw_scores", "arm_effects", "clustered_se",
           "ipw_scores", "mean_estimate", "mean_variance", "newcombe_difference",
           "normal_difference", "paired_difference", "policy_terms", "profit_terms",
           "relative_lift", "srm_chi_square",
           "welch_difference"]
