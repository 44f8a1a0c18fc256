"""The decision funnel: eligible -> recommended -> shown -> accepted -> purchased.

Counts are decisions. A decision is *eligible* when it had at least one candidate or served
offer, or is a holdout (the holdout customer was eligible; the experiment withheld the offer);
*recommended* when it served at least one offer. The event stages count recommended decisions
that reached the stage: an event of that stage or of a later one was reported (a purchase
without a reported `shown` still passed through being shown), so the funnel never widens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from reports import ReportError

STAGES = ("eligible", "recommended", "shown", "accepted", "purchased")
_EVENT_STAGES = ("shown", "accepted", "purchased")


@dataclass(frozen=True)
class Stage:
    """One funnel stage: decisions reaching it, and the share kept from before and the top."""

    name: str
    count: int
    from_previous: float | None  # None for the top stage or when the previous stage is empty
    from_top: float | None


@dataclass(frozen=True)
class FunnelReport:
    """The stages in order and the one losing the largest share of the stage before it."""

    stages: tuple[Stage, ...]
    constraint: str | None  # the stage with the largest relative drop; None when nothing drops

    def stage(self, name: str) -> Stage:
        """The stage called `name`; KeyError when there is none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def constraint_message(self) -> str:
        """One line naming the constraint to work on next."""
        if self.constraint is None:
            return "no stage loses decisions"
        stage = self.stage(self.constraint)
        index = self.stages.index(stage)
        previous = self.stages[index - 1]
        return (f"largest relative drop: {previous.name} -> {stage.name} keeps "
                f"{stage.from_previous:.1%} ({previous.count:,} -> {stage.count:,}); "
                f"the constraint to work on next is '{stage.name}'")

    def to_frame(self) -> pd.DataFrame:
        """One row per stage."""
        return pd.DataFrame([{"stage": s.name, "count": s.count,
                              "from_previous": s.from_previous, "from_top": s.from_top,
                              "constraint": s.name == self.constraint} for s in self.stages])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"stages": [vars(s) for s in self.stages], "constraint": self.constraint,
                "message": self.constraint_message()}


def funnel(decisions: pd.DataFrame, outcomes: pd.DataFrame) -> FunnelReport:
    """Count decisions per stage from the log frames; ReportError when there are none."""
    if decisions.empty:
        raise ReportError("no decisions in the log")
    served = decisions["offer_ids"].map(len) > 0
    candidates = decisions["candidates"].map(len) > 0
    holdout = decisions["holdout"].astype(bool)
    eligible = candidates | served | holdout
    recommended = served & ~holdout  # a holdout serves nothing; guard against a bad row
    reached = set()
    counts = {"eligible": int(eligible.sum()), "recommended": int(recommended.sum())}
    recommended_ids = set(decisions.loc[recommended, "decision_id"])
    for name in reversed(_EVENT_STAGES):  # later stages first: reaching one implies the earlier
        reached |= set(outcomes.loc[outcomes["event"] == name, "decision_id"])
        counts[name] = len(reached & recommended_ids)
    stages: list[Stage] = []
    top = counts[STAGES[0]]
    for i, name in enumerate(STAGES):
        previous = counts[STAGES[i - 1]] if i else None
        stages.append(Stage(name=name, count=counts[name],
                            from_previous=_share(counts[name], previous),
                            from_top=_share(counts[name], top)))
    drops = [(1 - s.from_previous, s.name) for s in stages[1:]
             if s.from_previous is not None and s.from_previous < 1]
    constraint = max(drops, key=lambda d: d[0])[1] if drops else None
    return FunnelReport(tuple(stages), constraint)


def _share(count: int, base: int | None) -> float | None:
    return None if not base else count / base
