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

from stats import Estimate, mean_estimate, paired_difference, profit_terms
from stats.power import detectable_gain, rows_to_detect
from training.learners import CAPACITIES, LEARNERS
from training.rules import RULES, Rule, resolve

#: rules that ignore the learner and capacity: on the menu once, on its first pair
SINGLE_RULES = ("nobody", "best_single")


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
    """Every combination; `nobody` and `best_single` once (they ignore the learner), on the
    first pair."""
    for name, values, known in (("learner", learners, LEARNERS),
                                ("capacity", capacities, CAPACITIES)):
        unknown = [v for v in values if v not in known]
        if unknown or not values:
            raise ValueError(f"unknown or empty {name} choice {unknown}; use {', '.join(known)}")
    if not rules:
        raise ValueError("the menu needs at least one rule")
    for rule in rules:
        resolve(rule)  # raises ValueError naming an unknown rule
    candidates = [Candidate(learners[0], capacities[0], rule) for rule in SINGLE_RULES
                  if rule in rules]
    candidates += [Candidate(lrn, cap, rule) for lrn in learners for cap in capacities
                   for rule in rules if rule not in SINGLE_RULES]
    return candidates


def score_menu(candidates: Sequence[Candidate],
               arms_of: Callable[[Candidate], np.ndarray], *, dr: np.ndarray, ipw: np.ndarray,
               margins: np.ndarray, costs: np.ndarray, clusters: np.ndarray
               ) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One row per candidate: DR and IPW value with intervals, paired DR gap to the best;
    with each candidate's arms and per-row DR profit terms, by name.

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
    table["gap_to_best"], table["gap_se"] = gaps_to_best(terms, list(table["candidate"]),
                                                         clusters)
    return table, arms, terms


def gaps_to_best(terms: Mapping[str, np.ndarray], names: Sequence[str], clusters: np.ndarray
                 ) -> tuple[list[float], list[float]]:
    """Per candidate: the paired DR gap of the best (by mean) to it, and that gap's SE."""
    best = names[int(np.argmax([terms[n].mean() for n in names]))]
    gaps = [paired_difference(terms[best], terms[n], clusters) for n in names]
    return [g.value for g in gaps], [g.se for g in gaps]


def choose(table: pd.DataFrame, candidates: Sequence[Candidate], tolerance: float = 0.0
           ) -> Candidate:
    """The simplest candidate within `tolerance` standard errors of the best DR value (paired;
    0.0: the best by DR, ties to the simplest; 1.0: the one-standard-error rule)."""
    by_name = {c.name: c for c in candidates}
    within = table[table["gap_to_best"] <= tolerance * table["gap_se"]]
    return min((by_name[name] for name in within["candidate"]), key=lambda c: c.complexity)


@dataclass(frozen=True)
class Nested:
    """The selection procedure itself evaluated out of fold (nested cross-validation).

    Fold j's rows are served the candidate chosen on the other folds' rows and scored on their
    own, so the winner's curse of an argmax over ~19 noisy values is inside the estimate.
    """

    choices: tuple[str, ...]  # per fold: the candidate chosen without that fold's rows
    value: Estimate  # DR value of "select, then serve" (clustered)
    gain: Estimate  # paired gain of "select, then serve" over the baseline (best_single)


def nested_selection(terms: Mapping[str, np.ndarray], candidates: Sequence[Candidate],
                     baseline: np.ndarray, fold: np.ndarray, clusters: np.ndarray,
                     tolerance: float = 0.0) -> Nested:
    """Choose by `choose` on the rows outside each fold, score that choice on the fold's rows.

    `terms[name]` are a candidate's per-row DR profit terms (as `score_menu` computes them),
    `baseline` the best single offer's; `fold` a fold index per row. Every fold's choice uses
    only the other folds' terms, so its score on the fold is out of sample for the choice (the
    terms themselves come from models fitted without the row's fold, as in `score_menu`).
    """
    names = [c.name for c in candidates]
    served = np.empty(len(fold), dtype=np.float64)
    choices = []
    for j in np.unique(fold):
        inside, outside = fold == j, fold != j
        means = np.array([terms[n][outside].mean() for n in names])
        if tolerance > 0:
            gap, se = gaps_to_best({n: terms[n][outside] for n in names}, names,
                                   clusters[outside])
        else:  # only ties with the best are within: the means suffice
            gap, se = list(means.max() - means), [0.0] * len(names)
        table = pd.DataFrame({"candidate": names, "gap_to_best": gap, "gap_se": se})
        pick = choose(table, candidates, tolerance).name
        choices.append(pick)
        served[inside] = terms[pick][inside]
    return Nested(tuple(choices), mean_estimate(served, clusters),
                  paired_difference(served, baseline, clusters))


def guard_contacts(table: pd.DataFrame, chosen: Candidate, best_single: Candidate | None,
                   z: float) -> tuple[Candidate, str]:
    """(the candidate to serve, a line saying why): `chosen` when its DR value is above z SEs,
    else `best_single` when its is, else nobody (rule `nobody` on the chosen pair).

    Sending nothing is worth exactly 0 with no noise, while the best of many noisy DR values is
    optimistic: a policy that spends contacts should show that it pays. Where the data cannot
    show it, the guard keeps the simpler policy that does, or sends nothing.
    """
    def clears(candidate: Candidate) -> bool:
        row = table.loc[table["candidate"] == candidate.name].iloc[0]
        value = Estimate(float(row["dr"]), float(row["dr_low"]), float(row["dr_high"]))
        return value.value - z * value.se > 0.0

    if not rule_of(chosen).contacts or clears(chosen):
        return chosen, ""
    fallback = best_single if best_single is not None and clears(best_single) \
        else Candidate(chosen.learner, chosen.capacity, "nobody")
    return fallback, (f"contact guard: {chosen.name}'s DR value is not above {z:g} SE, so "
                      f"serving {fallback.name}"
                      + ("" if fallback.rule != "nobody" else
                         " (no candidate shows that contacting customers pays)"))


def beats_baseline(nested: Nested, z: float) -> bool:
    """Does "select, then serve" beat the best single offer out of sample: its nested gain
    minus z standard errors above 0 (z = 0: the point estimate)?"""
    return nested.gain.value - z * nested.gain.se > 0.0


def rule_of(candidate: Candidate) -> Rule:
    """The candidate's rule object."""
    return resolve(candidate.rule)


def format_menu(table: pd.DataFrame, chosen: Candidate, note: str = "") -> str:
    """The table as printed and logged: one line per candidate, the chosen one marked; `note`
    (the nested check and why the choice was kept or replaced) on the lines below."""
    shown = table.assign(chosen=np.where(table["candidate"] == chosen.name, "<-", ""))
    columns = ["candidate", "dr", "dr_low", "dr_high", "ipw", "gap_to_best", "gap_se",
               "treated_share", "chosen"]
    text = str(shown[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return f"{text}\n{note}" if note else text


def targeting_evidence(gain: Estimate, rows_per_arm: int) -> tuple[str, int | None]:
    """A line saying whether these data can tell targeting from the best single offer, and
    about how many rows per arm they would need to (5% two-sided, 80% power); with that number.

    `gain` is the top targeting candidate's cross-fitted DR gain over the best single offer on
    `rows_per_arm` rows per arm. At 1,000-2,000 rows per arm that gain is often within its own
    noise on worlds where targeting truly pays (docs/measurement.md): the menu's choice is then
    luck, and a user should hear so rather than read one number.
    """
    figures = (f"top targeting candidate vs the best single offer: {gain.value:+.4f} "
               f"[{gain.low:+.4f}, {gain.high:+.4f}] per row at about {rows_per_arm:,} rows per "
               f"arm")
    if gain.low > 0.0:
        return f"{figures}: targeting pays beyond noise on these data", None
    needed = rows_to_detect(gain, rows_per_arm)
    if needed is None:
        return (f"{figures}: no gain from targeting seen; the smallest gain these data can "
                f"detect is {detectable_gain(gain.se):.4f} per row"), None
    return (f"{figures}: within noise; a gain of this size needs at least {needed:,} rows per "
            f"arm to be told from noise (5% test, 80% power; the top of many noisy estimates is "
            f"optimistic), so the menu's choice between targeting and the best single offer is "
            f"not yet evidence"), needed


def as_metrics(table: pd.DataFrame) -> Mapping[str, float]:
    """`select.<candidate>.dr` etc. for MLflow (names with '/' replaced by '.')."""
    metrics = {}
    for row in table.itertuples():
        key = str(row.candidate).replace("/", ".")
        metrics[f"select.{key}.dr"] = float(row.dr)
        metrics[f"select.{key}.dr_low"] = float(row.dr_low)
        metrics[f"select.{key}.ipw"] = float(row.ipw)
    return metrics
