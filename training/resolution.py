"""How finely the data tell the offers apart: each offer's DR net value with its interval.

Report only: nothing here changes a choice or the served policy. With many offers at a few
thousand rows per arm every offer's interval can hold the best one's (docs/measurement.md, "Why
the sealed department_catalogue loses"): then neither the best single offer nor targeting can
be learnt from these data, and the user should read that next to the menu, not infer it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stats.estimate import Estimate, mean_estimate, paired_difference
from stats.power import rows_to_detect

COLUMNS = ["offer", "net", "net_low", "net_high", "overlaps_best"]


def offer_terms(dr: np.ndarray, margins: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Per row and offer, margin_k x (Gamma[i, k] - Gamma[i, 0]) - cost_k: shape (n, n_offers).

    Their column means are margin x `stats.arm_effects` - cost (the value of sending offer k to
    everyone against sending nothing), so the interval of a mean is that offer's.
    """
    return margins[1:] * (dr[:, 1:] - dr[:, :1]) - costs[1:]


def offer_resolution(dr: np.ndarray, logged: np.ndarray, margins: np.ndarray,
                     costs: np.ndarray, offer_ids: Sequence[str], clusters: np.ndarray
                     ) -> pd.DataFrame:
    """One row per offer, best DR net value first: net, its 95% interval clustered by
    `clusters`, and whether that interval overlaps the best offer's (the best's own is True).

    `dr` the AIPW scores (n_rows, n_arms) with arm 0 control, `logged` the arm of each row,
    `margins` / `costs` indexed by arm. An offer never logged has NaN figures and sorts last.
    Raises ValueError when `offer_ids` does not match the arms.
    """
    dr = np.asarray(dr, dtype=np.float64)
    if dr.shape[1] != len(offer_ids) + 1:
        raise ValueError(f"{dr.shape[1]} arms for {len(offer_ids)} offers and control")
    seen = np.bincount(np.asarray(logged, dtype=np.int64), minlength=dr.shape[1]) > 0
    terms = offer_terms(dr, np.asarray(margins, dtype=np.float64),
                        np.asarray(costs, dtype=np.float64))
    nan = Estimate(np.nan, np.nan, np.nan)
    estimates = [mean_estimate(terms[:, k], clusters) if seen[0] and seen[k + 1] else nan
                 for k in range(len(offer_ids))]
    table = pd.DataFrame({"offer": list(offer_ids),
                          "net": [e.value for e in estimates],
                          "net_low": [e.low for e in estimates],
                          "net_high": [e.high for e in estimates]})
    table = table.sort_values("net", ascending=False, na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    best_low = table["net_low"].iloc[0] if len(table) else np.nan
    table["overlaps_best"] = table["net_high"] >= best_low
    return table[COLUMNS]


def top_two(dr: np.ndarray, margins: np.ndarray, costs: np.ndarray, offer_ids: Sequence[str],
            table: pd.DataFrame, clusters: np.ndarray) -> Estimate | None:
    """The best offer's net minus the runner-up's, paired over the same rows (far tighter than
    the two intervals side by side); None with fewer than two offers with figures."""
    ranked = table.dropna(subset=["net"])
    if len(ranked) < 2:
        return None
    best, second = (list(offer_ids).index(o) for o in ranked["offer"].iloc[:2])
    terms = offer_terms(np.asarray(dr, dtype=np.float64), np.asarray(margins, dtype=np.float64),
                        np.asarray(costs, dtype=np.float64))
    return paired_difference(terms[:, best], terms[:, second], clusters)


def resolution_summary(table: pd.DataFrame, difference: Estimate | None, rows_per_arm: int
                       ) -> tuple[str, dict[str, float]]:
    """(one plain sentence, MLflow metrics) on how finely `table` tells the offers apart.

    How many other offers' intervals overlap the best one's; whether the best is told from the
    runner-up (their paired difference excludes 0); if not, about how many rows per arm would
    tell them apart (5% two-sided, 80% power; an SE shrinks as 1 / sqrt(rows)).
    """
    ranked = table.dropna(subset=["net"])
    if ranked.empty:
        return "no offer has a DR net value on these data (none was logged)", {}
    best = str(ranked["offer"].iloc[0])
    overlapping = int(ranked["overlaps_best"].sum()) - 1
    metrics = {"offers_indistinguishable_from_best": float(overlapping),
               "offers_with_estimate": float(len(ranked)),
               "offer_best_net": float(ranked["net"].iloc[0]),
               "offer_best_net_ci_low": float(ranked["net_low"].iloc[0]),
               "offer_best_net_ci_high": float(ranked["net_high"].iloc[0])}
    line = (f"offers: {overlapping} of the other {len(ranked) - 1} offers' 95% intervals "
            f"overlap the best one's ({best})")
    if difference is None:
        return line, metrics
    second = str(ranked["offer"].iloc[1])
    metrics.update(difference.as_dict("offer_best_vs_runner_up"))
    figures = (f"{best} - {second} {difference.value:+.4f} [{difference.low:+.4f}, "
               f"{difference.high:+.4f}] per row at about {rows_per_arm:,} rows per arm")
    if difference.low > 0.0:
        metrics["offer_best_resolved"] = 1.0
        return f"{line}; {figures}: the best single offer is told from the runner-up", metrics
    metrics["offer_best_resolved"] = 0.0
    needed = rows_to_detect(difference, rows_per_arm)
    if needed is None:
        return f"{line}; {figures}: the best single offer is not told from the runner-up", \
            metrics
    metrics["offer_rows_per_arm_to_resolve_top_two"] = float(needed)
    return (f"{line}; {figures}: the best single offer is not told from the runner-up; about "
            f"{needed:,} rows per arm would tell a gap of this size apart (5% test, 80% power; "
            f"the gap is itself a noisy estimate)"), metrics


def format_resolution(table: pd.DataFrame, line: str, top: int = 10) -> str:
    """The table as printed and logged: the `top` offers, a count of the rest, the sentence."""
    shown = table.head(top).assign(overlaps_best=lambda t: np.where(t["overlaps_best"], "yes",
                                                                    "no"))
    text = str(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    rest = len(table) - len(shown)
    if rest > 0:
        overlapping = int(table["overlaps_best"].iloc[top:].sum())
        text += f"\n... and {rest} more offer(s), {overlapping} of them overlapping the best"
    return f"{text}\n{line}"

