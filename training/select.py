"""Choose the policy by evidence: every menu candidate's cross-fitted DR value, clustered.

A candidate is (meta-learner, LightGBM capacity, rule). Its value is the doubly robust
incremental profit per row of the policy it induces on out-of-fold uplift, with an interval
clustered by customer; IPW is reported beside it. The choice is the best DR value, ties to the
simplest candidate (`tolerance` > 0: the simplest within that many standard errors of the best,
1.0 being the one-standard-error rule). Every candidate, the best single offer included, is
scored out of fold by the same estimator, so none is favoured by its estimate; and the simplest
is not the safest here: the best single offer's own choice is as noisy as targeting (on the
synthetic worlds the one-SE rule kept it where targeting truly earned twice as much).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stats import mean_estimate, paired_difference, profit_terms
from training.learners import CAPACITIES, LEARNERS
from training.rules import RULES, Rule, resolve


@dataclass(frozen=True)
class Candidate:
    """One entry of the menu."""

    learner: str
    capacity: str
    rule: str

    @property
    def name(self) -> str:
        """learner/capacity/rule, e.g. 's/base/confident'."""
        return f"{self.learner}/{self.capacity}/{self.rule}"

    @property
    def complexity(self) -> tuple[int, int, int]:
        """Sort key, simplest first: rule, then learner, then capacity."""
        rule = list(RULES).index(self.rule) if self.rule in RULES else len(RULES)
        return (rule, list(LEARNERS).index(self.learner),  # type: ignore[arg-type]
                list(CAPACITIES).index(self.capacity))


def menu(learners: Sequence[str], capacities: Sequence[str], rules: Sequence[str]
         ) -> list[Candidate]:
    """Every combination; `best_single` once (it ignores the learner), on the first pair."""
    for name, values, known in (("learner", learners, LEARNERS),
                                ("capacity", capacities, CAPACITIES)):
        unknown = [v for v in values if v not in known]
        if unknown or not values:
            raise ValueError(f"unknown or empty {name} choice {unknown}; use {', '.join(known)}")
    if not rules:
        raise ValueError("the menu needs at least one rule")
    for rule in rules:
        resolve(rule)  # raises ValueError naming an unknown rule
    candidates = [Candidate(learners[0], capacities[0], "best_single")] \
        if "best_single" in rules else []
    candidates += [Candidate(lrn, cap, rule) for lrn in learners for cap in capacities
                   for rule in rules if rule != "best_single"]
    return candidates


def score_menu(candidates: Sequence[Candidate],
               arms_of: Callable[[Candidate], np.ndarray], *, dr: np.ndarray, ipw: np.ndarray,
               margins: np.ndarray, costs: np.ndarray, clusters: np.ndarray
               ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One row per candidate: DR and IPW value with intervals, paired DR gap to the best.

    `arms_of(candidate)` is the arm per row the candidate's policy picks on out-of-fold
    uplift; `dr` / `ipw` are per-row, per-arm conversion scores (`stats.aipw_scores`).
    """
    terms, rows, arms = {}, [], {}
    for c in candidates:
        arms[c.name] = arms_of(c)
        terms[c.name] = profit_terms(arms[c.name], dr, margins, costs)
        value = mean_estimate(terms[c.name], clusters)
        ipw_value = mean_estimate(profit_terms(arms[c.name], ipw, margins, costs), clusters)
        rows.append({"candidate": c.name, "learner": c.learner, "capacity": c.capacity,
                     "rule": c.rule, "dr": value.value, "dr_low": value.low,
                     "dr_high": value.high, "ipw": ipw_value.value, "ipw_low": ipw_value.low,
                     "ipw_high": ipw_value.high,
                     "treated_share": float(np.mean(arms[c.name] > 0))})
    table = pd.DataFrame(rows)
    best = str(table.loc[table["dr"].idxmax(), "candidate"])
    gaps = [paired_difference(terms[best], terms[name], clusters) for name in table["candidate"]]
    table["gap_to_best"] = [g.value for g in gaps]
    table["gap_se"] = [g.se for g in gaps]
    return table, arms


def choose(table: pd.DataFrame, candidates: Sequence[Candidate], tolerance: float = 0.0
           ) -> Candidate:
    """The simplest candidate within `tolerance` standard errors of the best DR value (paired;
    0.0: the best by DR, ties to the simplest; 1.0: the one-standard-error rule)."""
    by_name = {c.name: c for c in candidates}
    within = table[table["gap_to_best"] <= tolerance * table["gap_se"]]
    return min((by_name[name] for name in within["candidate"]), key=lambda c: c.complexity)


def rule_of(candidate: Candidate) -> Rule:
    """The candidate's rule object."""
    return resolve(candidate.rule)


def format_menu(table: pd.DataFrame, chosen: Candidate) -> str:
    """The table as printed and logged: one line per candidate, the chosen one marked."""
    shown = table.assign(chosen=np.where(table["candidate"] == chosen.name, "<-", ""))
    columns = ["candidate", "dr", "dr_low", "dr_high", "ipw", "gap_to_best", "gap_se",
               "treated_share", "chosen"]
    return str(shown[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def as_metrics(table: pd.DataFrame) -> Mapping[str, float]:
    """`select.<candidate>.dr` etc. for MLflow (names with '/' replaced by '.')."""
    metrics = {}
    for row in table.itertuples():
        key = str(row.candidate).replace("/", ".")
        metrics[f"select.{key}.dr"] = float(row.dr)
        metrics[f"select.{key}.dr_low"] = float(row.dr_low)
        metrics[f"select.{key}.ipw"] = float(row.ipw)
    return metrics
