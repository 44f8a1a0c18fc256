"""Did the campaign add revenue, and how much? Treated decisions against the randomized holdout.

The unit is the logged decision. A decision converts when any `purchased` event was reported
for it (whatever its offer_id: a holdout customer's purchases carry none), and its revenue is
the sum of those purchases. Groups compare like with like, intent-to-treat:

- by offer: treated decisions whose `chosen_offer` is X against holdout decisions whose
  would-be `chosen_offer` is X (the policy picked X for both; only the treated got it);
- by channel / segment: every decision of that channel / segment;
- "all": every treated decision against every holdout decision (the plain randomized contrast).

Statistics (all 95%, two-sided). A customer decided for again and again is one person, not
independent draws: every variance is cluster-robust by customer (the holdout is assigned per
customer, so a customer's decisions all sit in one arm). With one decision per customer each
formula reduces exactly to its textbook form:

- conversion lift: difference of proportions, Newcombe's hybrid score interval (each arm's
  Wilson interval over its effective number of customers). The Wald interval collapses to a
  point when an arm has 0 (or all) conversions: a holdout of 7 with none made any lift look
  certain;
- an arm with 0 or all conversions has no variance for the other normal intervals to read:
  that group's revenue and relative lifts (and a margin mixing several offers) are withheld
  (None), and the row's `too_small` names the arm;
- revenue-per-decision lift: difference of means, Welch's t interval (Welch-Satterthwaite df,
  counted in customers);
- relative lifts: delta method on the log of the ratio of means, exponentiated (so the
  interval is asymmetric and never below -100%);
- incremental revenue: revenue lift x n treated; incremental margin: the lift of
  margin-weighted conversion (converted x margin of the decision's chosen offer) x n
  treated: for one margin (a group by offer) exactly conversion lift x margin x n treated,
  otherwise a normal approximation; contact cost: the chosen offer's cost per treated
  decision; ROI = (incremental margin - cost) / cost, its interval from the margin interval
  (cost is known);
- sample-ratio mismatch: chi-square goodness of fit (1 df) of the holdout count over all
  decisions against the configured share; p < 0.001 flags a mismatch. The same test over
  distinct customers is reported alongside, because assignment is per customer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import Catalog
from reports import ReportError
from stats import (
    Interval,
    newcombe_difference,
    normal_difference,
    relative_lift,
    srm_chi_square,
    welch_difference,
)

BY_OPTIONS = ("offer", "channel", "segment")
ALL = "all"
NONE_GROUP = "(none)"  # decisions with no chosen offer (or no segment)
SRM_ALPHA = 0.001
METHODS = {
    "clustering": "variances cluster-robust by customer (repeat decisions are not independent)",
    "conversion_lift": "difference of proportions, Newcombe hybrid score interval, 95%",
    "too_small": ("an arm with 0 or all conversions: revenue, relative and mixed-margin "
                  "intervals withheld (None), the reason in the row's too_small"),
    "revenue_lift": "difference of means per decision, Welch t interval (df in customers), 95%",
    "relative_lift": "delta method on the log ratio of means, exponentiated, 95%",
    "incremental_margin": ("lift of converted x chosen-offer margin x n treated (one margin: "
                           "conversion lift x margin; several: normal approx.)"),
    "roi": "(incremental margin - contact cost) / contact cost; None when cost is 0",
    "srm": f"chi-square goodness of fit of the holdout count, 1 df; p < {SRM_ALPHA} flags",
}


@dataclass(frozen=True)
class SrmCheck:
    """Sample-ratio check: is the holdout as large as configured?"""

    n_decisions: int
    n_holdout: int
    expected_share: float
    observed_share: float
    chi2: float
    p_value: float
    mismatch: bool  # p < SRM_ALPHA over decisions
    n_customers: int
    n_holdout_customers: int
    customer_p_value: float

    @property
    def customer_mismatch(self) -> bool:
        """p < SRM_ALPHA over distinct customers (the unit the holdout hash assigns)."""
        return self.customer_p_value < SRM_ALPHA

    def message(self) -> str:
        """One line for a human: prominent when the ratio is off."""
        counts = (f"{self.n_holdout:,} of {self.n_decisions:,} decisions "
                  f"({self.observed_share:.2%}) are holdout, expected {self.expected_share:.2%} "
                  f"(chi-square p = {self.p_value:.2g}; over customers: "
                  f"{self.n_holdout_customers:,} of {self.n_customers:,}, "
                  f"p = {self.customer_p_value:.2g})")
        if self.mismatch:
            return ("SAMPLE RATIO MISMATCH: " + counts + ". Holdout assignment or logging is "
                    "broken; do not trust the lifts below until it is explained.")
        if self.customer_mismatch:
            return ("sample ratio OK over decisions but MISMATCHED OVER CUSTOMERS: " + counts
                    + ". Check how customers are assigned before trusting the lifts.")
        return "sample ratio OK: " + counts


@dataclass(frozen=True)
class GroupLift:
    """Treated against holdout decisions of one group; None where it cannot be estimated."""

    group: str
    n_treated: int
    n_holdout: int
    conversion_treated: float | None
    conversion_holdout: float | None
    conversion_lift: Interval | None
    conversion_relative_lift: Interval | None
    revenue_treated: float | None  # revenue per decision
    revenue_holdout: float | None
    revenue_lift: Interval | None
    revenue_relative_lift: Interval | None
    incremental_revenue: Interval | None
    incremental_margin: Interval | None
    contact_cost: float | None
    roi: Interval | None
    too_small: str | None = None  # why the intervals besides conversion lift are withheld


@dataclass(frozen=True)
class IncrementalityReport:
    """Lift per group plus the "all" row, and the sample-ratio check."""

    by: str
    holdout_share: float
    rows: tuple[GroupLift, ...]
    srm: SrmCheck
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> GroupLift:
        """The "all" row."""
        return self.row(ALL)

    def row(self, group: str) -> GroupLift:
        """The row of `group`; KeyError when there is none."""
        for row in self.rows:
            if row.group == group:
                return row
        raise KeyError(group)

    def to_frame(self) -> pd.DataFrame:
        """One flat row per group (intervals as value/_low/_high columns) for CSV or parquet."""
        records = []
        for row in self.rows:
            record: dict[str, Any] = {"by": self.by}
            for key, value in asdict(row).items():
                if isinstance(getattr(row, key), Interval):
                    record[key] = value["value"]
                    record[f"{key}_low"] = value["low"]
                    record[f"{key}_high"] = value["high"]
                elif key in _INTERVAL_FIELDS:
                    record.update({key: None, f"{key}_low": None, f"{key}_high": None})
                else:
                    record[key] = value
            records.append(record)
        return pd.DataFrame.from_records(records)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: SRM first, then methods, notes and the groups (non-finite as None)."""
        srm = asdict(self.srm)
        srm["customer_mismatch"] = self.srm.customer_mismatch
        srm["message"] = self.srm.message()
        return _json_safe({
            "by": self.by,
            "holdout_share": self.holdout_share,
            "srm": srm,
            "methods": METHODS,
            "notes": list(self.notes),
            "groups": [asdict(row) for row in self.rows],
        })


_INTERVAL_FIELDS = {name for name, kind in GroupLift.__annotations__.items()
                    if "Interval" in str(kind)}


def incrementality(decisions: pd.DataFrame, outcomes: pd.DataFrame, catalog: Catalog, *,
                   by: str = "offer", holdout_share: float = 0.05) -> IncrementalityReport:
    """Lift of treated over holdout decisions per offer, channel or segment, plus "all".

    `decisions` and `outcomes` are `DecisionLog.decisions_frame()` / `.outcomes_frame()`;
    margins and costs come from `catalog`; `holdout_share` is the configured share (0: the
    holdout is switched off). Raises ValueError for an unknown `by` or a share outside [0, 1),
    and ReportError when there are no decisions.
    """
    if by not in BY_OPTIONS:
        raise ValueError(f"unknown grouping '{by}'; use one of {list(BY_OPTIONS)}")
    if not 0 <= holdout_share < 1:
        raise ValueError(f"holdout share must lie in [0, 1), got {holdout_share}")
    if decisions.empty:
        raise ReportError("no decisions in the log")
    frame = per_decision(decisions, outcomes, catalog)
    notes: list[str] = []
    unknown = sorted(set(frame.loc[frame["margin"].isna(), "chosen_offer"].dropna()))
    if unknown:
        notes.append(f"offers not in the catalog (margin and cost unknown): {unknown}")
    if not frame["holdout"].any():
        notes.append("no holdout decisions: lift cannot be estimated")
    if by == "offer":
        keys = frame["chosen_offer"].fillna(NONE_GROUP)
        order = _offer_order(keys, catalog)
    else:
        keys = frame[by].fillna(NONE_GROUP).astype(str)
        order = sorted(set(keys), key=lambda k: (k == NONE_GROUP, k))
    rows = [group_lift(str(key), frame[keys == key]) for key in order]
    rows.append(group_lift(ALL, frame))
    notes += [f"{row.group}: {row.too_small}" for row in rows if row.too_small]
    srm = srm_check(frame["holdout"], frame["customer_id"], holdout_share)
    return IncrementalityReport(by, holdout_share, tuple(rows), srm, tuple(notes))


def per_decision(decisions: pd.DataFrame, outcomes: pd.DataFrame,
                 catalog: Catalog) -> pd.DataFrame:
    """One row per decision: arm, group keys, converted, revenue, chosen offer margin and cost.

    Margin and cost are 0 when nothing was chosen and NaN when the offer is not in the catalog.
    """
    purchases = outcomes.loc[outcomes["event"] == "purchased"]
    revenue = purchases.groupby("decision_id")["revenue"].sum()
    frame = decisions.loc[:, ["decision_id", "customer_id", "channel", "segment",
                              "chosen_offer"]].copy()
    frame["holdout"] = decisions["holdout"].astype(bool).to_numpy()
    frame["converted"] = frame["decision_id"].isin(revenue.index).astype(np.float64)
    frame["revenue"] = frame["decision_id"].map(revenue).fillna(0.0).astype(np.float64)
    every = (*catalog.offers, *catalog.new_customer_offers)  # first visits choose the latter
    margins = {o.offer_id: o.margin for o in every}
    costs = {o.offer_id: o.cost for o in every}
    chosen = frame["chosen_offer"]
    frame["margin"] = [0.0 if _missing(o) else margins.get(o, np.nan) for o in chosen]
    frame["cost"] = [0.0 if _missing(o) else costs.get(o, np.nan) for o in chosen]
    return frame.reset_index(drop=True)


def group_lift(group: str, frame: pd.DataFrame) -> GroupLift:
    """Treated against holdout rows of a `per_decision` frame."""
    treated = frame.loc[~frame["holdout"]]
    held = frame.loc[frame["holdout"]]
    n_t, n_h = len(treated), len(held)
    conv_t, conv_h = treated["converted"].to_numpy(), held["converted"].to_numpy()
    rev_t, rev_h = treated["revenue"].to_numpy(), held["revenue"].to_numpy()
    by = (_customers(treated), _customers(held))
    conversion_lift = newcombe_difference(conv_t, conv_h, by)
    too_small = _too_small(conv_t, conv_h)
    judged = too_small is None
    revenue_lift = welch_difference(rev_t, rev_h, by) if judged else None
    margin_known = not (treated["margin"].isna().any() or held["margin"].isna().any())
    incremental_margin = cost = roi = None
    if margin_known:
        cost = float(treated["cost"].sum())
        margins = np.unique(np.r_[treated["margin"].to_numpy(), held["margin"].to_numpy()])
        if len(margins) == 1 and margins[0] >= 0 and conversion_lift is not None:  # one offer
            weighted: Interval | None = conversion_lift.scaled(float(margins[0]))
        elif judged:
            weighted = normal_difference(conv_t * treated["margin"].to_numpy(),
                                         conv_h * held["margin"].to_numpy(), by)
        else:
            weighted = None
        if weighted is not None:
            incremental_margin = weighted.scaled(n_t)
            if cost > 0:
                roi = Interval(*((v - cost) / cost for v in (incremental_margin.value,
                                                            incremental_margin.low,
                                                            incremental_margin.high)))
    return GroupLift(
        group=group, n_treated=n_t, n_holdout=n_h,
        conversion_treated=_mean(conv_t), conversion_holdout=_mean(conv_h),
        conversion_lift=conversion_lift,
        conversion_relative_lift=(relative_lift(conv_t, conv_h, ddof=0, clusters=by)
                                  if judged else None),
        revenue_treated=_mean(rev_t), revenue_holdout=_mean(rev_h),
        revenue_lift=revenue_lift,
        revenue_relative_lift=(relative_lift(rev_t, rev_h, ddof=1, clusters=by)
                               if judged else None),
        incremental_revenue=None if revenue_lift is None else revenue_lift.scaled(n_t),
        incremental_margin=incremental_margin, contact_cost=cost, roi=roi, too_small=too_small)


def _too_small(conv_t: np.ndarray, conv_h: np.ndarray) -> str | None:
    """Why normal intervals cannot be read here: an arm with 0 or all conversions, or None."""
    if len(conv_t) == 0 or len(conv_h) == 0:
        return None  # no contrast at all: every lift is None already
    for arm, conv in (("treated", conv_t), ("holdout", conv_h)):
        converted = int(conv.sum())
        if converted in (0, len(conv)):
            return (f"{arm} arm has {converted} conversions in {len(conv):,} decisions: "
                    "revenue and relative lift intervals withheld (no variance to read); "
                    "conversion lift, and for one offer margin and ROI, use score intervals")
    return None


def _customers(rows: pd.DataFrame) -> np.ndarray | None:
    """The customer of each row (the clusters), or None when the frame has no such column."""
    return rows["customer_id"].to_numpy() if "customer_id" in rows.columns else None


def srm_check(holdout: pd.Series, customer_ids: pd.Series, share: float) -> SrmCheck:
    """Chi-square test of the holdout count against `share`, over decisions and customers."""
    holdout = holdout.astype(bool)
    n, h = len(holdout), int(holdout.sum())
    chi2, p = srm_chi_square(h, n, share)
    by_customer = holdout.groupby(customer_ids.to_numpy()).any()
    _, p_customers = srm_chi_square(int(by_customer.sum()), len(by_customer), share)
    return SrmCheck(n_decisions=n, n_holdout=h, expected_share=share,
                    observed_share=h / n if n else 0.0, chi2=chi2, p_value=p,
                    mismatch=bool(p < SRM_ALPHA), n_customers=len(by_customer),
                    n_holdout_customers=int(by_customer.sum()), customer_p_value=p_customers)


# ---------------------------------------------------------------- helpers


def _offer_order(keys: pd.Series, catalog: Catalog) -> list[str]:
    """Catalog order, then offers no longer in the catalog, then decisions with no offer."""
    present = set(keys)
    known = [o for o in catalog.offer_ids if o in present]
    others = sorted(present - set(known) - {NONE_GROUP})
    return known + others + ([NONE_GROUP] if NONE_GROUP in present else [])


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities (not JSON) with None, recursively; NumPy scalars to Python."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
