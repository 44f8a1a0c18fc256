"""`nba train`: contract data -> fitted models -> evaluation -> one registered MLflow policy.

Each step is a function of frames and settings; reading files and talking to MLflow happen
only in `train`, at the edges.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from mlflow.models import infer_signature

from decisioning.core import OFFLINE
from decisioning.decision import DecisionContext
from decisioning.eligibility import tier_eligibility
from features import io
from features.build import build_matrix, infer_spec
from features.catalog import Catalog
from features.schema import FeatureSpec, feature_columns
from stats import (
    aipw_scores,
    arm_effects,
    ipw_scores,
    mean_estimate,
    paired_difference,
    profit_terms,
)
from training import crossfit, first_visit, plots, registry, resolution, rules, select
from training import evaluate as ev
from training.learners import CAPACITIES, fit_learner, rows_per_arm
from training.measured import FoldPolicies
from training.package import NBAPolicyModel, Policy, decision_rows
from training.response import fit_response, predict_response
from training.select import Candidate
from training.settings import TrainSettings
from training.split import holdout_mask
from training.uplift import LEARNER_NAMES
from training.value import fit_value

log = logging.getLogger(__name__)
STEPS = 8
PIP_REQUIREMENTS = ("causalml", "flask", "lightgbm", "mlflow", "numpy", "pandas", "pyarrow",
                    "pydantic", "pyyaml", "scikit-learn", "scipy")


class Progress:
    """Numbered steps with elapsed time, so a long training run is never silent."""

    def __init__(self, total: int) -> None:
        self.total, self.step, self.started = total, 0, time.perf_counter()

    def __call__(self, message: str) -> None:
        self.step += 1
        log.info("[%d/%d] %s (%.1fs)", self.step, self.total, message,
                 time.perf_counter() - self.started)


@dataclass(frozen=True)
class Evaluation:
    """Holdout metrics plus the curves behind the plots."""

    metrics: dict[str, float]
    qini_curves: dict[str, tuple[np.ndarray, np.ndarray]]
    deciles: dict[str, tuple[np.ndarray, np.ndarray]]
    policy_table: pd.DataFrame


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_id: str
    version: str
    promoted: bool
    metrics: dict[str, float]
    menu: str = ""
    offers: str = ""  # each offer's DR net value and how finely the data tell them apart


def arm_index(treatment: pd.Series, catalog: Catalog) -> np.ndarray:
    """Arm codes: 0 for control, k + 1 for the k-th catalog offer."""
    codes = {catalog.control_label: 0} | {o: k + 1 for k, o in enumerate(catalog.offer_ids)}
    return treatment.map(codes).to_numpy(dtype=np.int64)


def economics(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """(margins, costs) indexed by arm: index 0 is control (no margin, no cost)."""
    margins = np.concatenate([[0.0], [o.margin for o in catalog.offers]])
    costs = np.concatenate([[0.0], [o.cost for o in catalog.offers]])
    return margins, costs


def population_uplift(frame: pd.DataFrame, catalog: Catalog) -> np.ndarray:
    """Each offer's average uplift from per-arm IPW means of the logged rows: the one-candidate
    seams' (the scale engine's check, bench_scale); selection uses DR arm effects instead."""
    return ev.population_uplift(arm_index(frame["treatment"], catalog),
                                frame["converted"].to_numpy(), frame["propensity"].to_numpy(),
                                len(catalog.offers) + 1)


def incremental_profit(policy: Policy, frame: pd.DataFrame, uplift: np.ndarray) -> ev.Estimate:
    """IPW incremental profit per customer of the greedy choice by `uplift` on logged rows."""
    tiers = loyalty_tiers(frame)
    margins, costs = economics(policy.catalog)
    return ev.ipw_incremental_profit(policy_arms(policy, uplift, tiers),
                                     arm_index(frame["treatment"], policy.catalog),
                                     frame["converted"].to_numpy(),
                                     frame["propensity"].to_numpy(), margins, costs)


def with_categoricals(settings: TrainSettings, spec: FeatureSpec) -> TrainSettings:
    """`settings` whose boosters split `spec`'s level-code columns as native categoricals."""
    return replace(settings, params=replace(settings.params,
                                            categorical=spec.categorical_columns))


def fitted_params(settings: TrainSettings, spec: FeatureSpec) -> dict:
    """The booster params as fitted (level-code columns as categoricals), for the run's log."""
    return asdict(with_categoricals(settings, spec).params)


def fit_models(train: pd.DataFrame, spec: FeatureSpec, catalog: Catalog,
                settings: TrainSettings, candidate: Candidate, population: np.ndarray,
                progress: Progress | None = None) -> Policy:
    """Fit the candidate's uplift learner, the response and the value models on `train`."""
    settings = with_categoricals(settings, spec)
    X = build_matrix(train, spec)
    converted = train["converted"].to_numpy()
    arms = sorted(set(train["treatment"]) - {catalog.control_label})
    params = CAPACITIES[candidate.capacity].apply(settings.params)
    if progress:
        progress(f"refitting {candidate.name} on all {len(train):,} rows: {len(arms)} offers vs "
                 "control")
    uplift = fit_learner(candidate.learner, X,  # type: ignore[arg-type]
                         train["treatment"].to_numpy(dtype=object), converted,
                         train["propensity"].to_numpy(), control_label=catalog.control_label,
                         params=params, seed=settings.seed)
    if progress:
        progress("fitting response model P(convert | customer, offer) and baseline value model")
    response = fit_response(X, arm_index(train["treatment"], catalog), converted,
                            n_arms=len(catalog.offers) + 1, params=settings.params,
                            seed=settings.seed)
    control = (train["treatment"] == catalog.control_label).to_numpy()
    value = fit_value(X[control], train["revenue"].to_numpy()[control], params=settings.params,
                      seed=settings.seed)
    meta = {"learner": LEARNER_NAMES[candidate.learner], "candidate": candidate.name,
            "params": asdict(params), "seed": settings.seed, "trained_rows": len(train)}
    return Policy(spec, catalog, uplift, response, value, meta, population_uplift=population)


@dataclass(frozen=True)
class Selection:
    """The menu's cross-fitted scores, the chosen candidate and its out-of-fold evaluation."""

    chosen: Candidate
    table: pd.DataFrame
    population: np.ndarray  # per-offer DR average uplift (stats.arm_effects)
    penalty: np.ndarray | None
    evaluation: Evaluation
    shrinkage: float | np.ndarray  # served: the rule's, or one per offer (gated, screened, ...)
    rows: int
    nested: select.Nested | None = None  # the selection procedure scored out of fold
    full_choice: Candidate | None = None  # the best by DR on all rows, before the nested check
    note: str = ""  # the nested check's figures and why the choice was served or replaced
    #: each candidate's arm per selection row, from out-of-fold uplift (what its DR value
    #: scores; bench/selection_truth.py compares it with the truth)
    arms: dict[str, np.ndarray] = field(default_factory=dict)
    #: each candidate's per-row DR profit terms (what its DR value is the mean of): kept only
    #: for the benches (bench/choice_truth.py's choice rules resample them); nothing in
    #: training reads it
    terms: dict[str, np.ndarray] = field(default_factory=dict)
    #: each offer's DR net value with its interval, best first (`resolution`): report only
    offers: pd.DataFrame | None = None
    offers_note: str = ""  # how many offers overlap the best; rows to resolve the top two
    #: the chosen candidate as measured: its K fold models and each fold's rule
    #: (`training.measured`); None when the menu had no targeting pair
    measured: FoldPolicies | None = None


def selection_mask(customer_ids: pd.Series, max_rows: int, seed: int) -> np.ndarray:
    """Rows selection scores on: all, or a sample of whole customers of about `max_rows`."""
    if len(customer_ids) <= max_rows:
        return np.ones(len(customer_ids), dtype=bool)
    return holdout_mask(customer_ids, max_rows / len(customer_ids), seed + 2)


def select_policy(frame: pd.DataFrame, spec: FeatureSpec, catalog: Catalog,
                  settings: TrainSettings, progress: Progress) -> Selection:
    """Score every menu candidate by cross-fitted DR value; choose; evaluate it out of fold.

    Outcome models for DR and every (learner, capacity)'s K uplift models are fitted once;
    every rule on top reuses their out-of-fold predictions.
    """
    settings = with_categoricals(settings, spec)
    candidates = select.menu(settings.learners, settings.capacities, settings.menu_rules)
    X = build_matrix(frame, spec)
    n_arms = len(catalog.offers) + 1
    logged = arm_index(frame["treatment"], catalog)
    converted = frame["converted"].to_numpy()
    propensity = frame["propensity"].to_numpy()
    treatment = frame["treatment"].to_numpy(dtype=object)
    customers = frame["customer_id"].astype(str).to_numpy()
    fold = crossfit.folds(customers, settings.folds, settings.seed)
    progress(f"cross-fitting outcome models for DR: {settings.folds} folds by customer, "
             f"{len(frame):,} rows")
    workers = crossfit.available_workers(settings.crossfit_workers)
    mu = crossfit.outcome_predictions(X, logged, converted, fold, n_arms=n_arms,
                                      params=settings.params, seed=settings.seed,
                                      workers=workers)
    dr = aipw_scores(logged, propensity, converted, mu)
    ipw = ipw_scores(logged, propensity, converted, n_arms)
    margins, costs = economics(catalog)
    population = arm_effects(dr, logged)
    eligible = tier_eligibility(catalog, loyalty_tiers(frame))
    default = rules.default_offer(population, margins, costs)
    # every row's best single offer and shrinkage target come from the other folds, like its
    # uplift: scored in sample, the best single offer wins by the winner's curse alone
    fold_population = crossfit.arm_effects_out_of_fold(dr, logged, fold)
    fold_defaults = [rules.default_offer(p, margins, costs) for p in fold_population]
    pairs = list(dict.fromkeys((c.learner, c.capacity) for c in candidates
                               if c.rule not in select.SINGLE_RULES))
    progress(f"cross-fitting {len(pairs)} learner x capacity pair(s) for "
             f"{len(candidates)} candidates")
    started = time.perf_counter()
    oof = dict(zip(pairs, crossfit.uplift_predictions_many(
        [(learner, CAPACITIES[capacity].apply(settings.params))  # type: ignore[misc]
         for learner, capacity in pairs], X, treatment, converted, propensity, fold,
        offer_ids=catalog.offer_ids, control_label=catalog.control_label, seed=settings.seed,
        workers=workers), strict=True))
    log.info("  %d pair(s) x %d folds cross-fitted in %.1fs, %d at a time", len(pairs),
             settings.folds, time.perf_counter() - started, workers)

    pseudo = dr[:, 1:] - dr[:, :1]  # per offer: each row's DR effect estimate

    def rule_terms(c: Candidate, rows: np.ndarray, offer: int | None
                   ) -> tuple[float | np.ndarray, np.ndarray | None]:
        """`c`'s rule's (shrinkage, penalty) from `rows` (a mask) against default `offer`: each
        fold's from the other folds' rows, the served policy's from every row."""
        rule = select.rule_of(c)
        if not rule.contacts or rule.shrinkage == 0.0:  # offer averages only: no model
            return 0.0, None
        fitted = oof[c.learner, c.capacity]
        estimate = rules.per_offer_estimator(rule)
        shrinkage = rule.shrinkage if estimate is None else estimate(
            fitted.uplift[rows], pseudo[rows], fold[rows], customers[rows])
        penalty = rules.deviation_penalty(fitted.per_fold, offer, margins) \
            if rule.confident else None
        return shrinkage, penalty

    def measured_of(c: Candidate) -> FoldPolicies | None:
        """`c`'s fold models with each fold's rule: the policy its fold's rows were scored by."""
        rule = select.rule_of(c)
        modelled = rule.contacts and rule.shrinkage != 0.0
        if modelled and (c.learner, c.capacity) not in oof:
            return None
        terms = [rule_terms(c, fold != j, fold_defaults[j]) for j in range(settings.folds)]
        models = tuple(oof[c.learner, c.capacity].models) if modelled \
            else (None,) * settings.folds
        return FoldPolicies(catalog.offer_ids, models,
                            fold_population if rule.contacts else np.zeros_like(fold_population),
                            tuple(s for s, _ in terms), tuple(p for _, p in terms))

    def uplift_of(c: Candidate) -> np.ndarray:
        """The out-of-fold uplift `c` ranks rows by: each row's fold policy on its out-of-fold
        prediction (already made: no model predicts again)."""
        measured = measured_of(c)
        if measured is None:  # a targeting rule off the menu's pairs
            raise KeyError(f"{c.name}: no cross-fitted {c.learner} x {c.capacity} pair")
        raw = np.zeros_like(fold_population[fold]) if measured.models[0] is None \
            else oof[c.learner, c.capacity].uplift
        return measured.out_of_fold(raw, fold)

    def arms_of(c: Candidate) -> np.ndarray:
        net = np.nan_to_num(uplift_of(c) * margins[1:] - costs[1:], nan=-np.inf)
        return ev.greedy_arm(net, eligible)

    table, arms, terms = select.score_menu(candidates, arms_of, dr=dr, ipw=ipw, margins=margins,
                                    costs=costs, clusters=customers)
    chosen = select.choose(table, candidates, settings.tolerance)
    best_single = next((c for c in candidates if c.rule == "best_single"),
                       select.Candidate(chosen.learner, chosen.capacity, "best_single"))
    full_choice = chosen
    nested, note = None, ""
    if best_single.name in arms:  # the check needs the best single offer on the menu
        nested_fold = crossfit.folds(customers, min(settings.nested_folds,
                                                    len(np.unique(customers))), settings.seed + 1)
        nested = select.nested_selection(terms, candidates, terms[best_single.name],
                                          nested_fold, customers, settings.tolerance)
        chosen, note = _nested_check(nested, chosen, best_single, settings.nested_z)
    before_guard = chosen
    if settings.contact_z is not None:
        chosen, guard = select.guard_contacts(
            table, chosen, best_single if best_single.name in arms else None,
            settings.contact_z)
        note = "\n".join(filter(None, [note, guard]))
    raw = oof[pairs[0]].uplift if pairs and (chosen.learner, chosen.capacity) not in oof \
        else oof[chosen.learner, chosen.capacity].uplift if pairs else None
    evaluation = evaluate_out_of_fold(
        frame, catalog, raw, arms[chosen.name] if chosen.name in arms else arms_of(chosen),
        arms.get(best_single.name, arms_of(best_single)), mu, dr, ipw, customers)
    evaluation.metrics["shrinkage"] = select.rule_of(chosen).shrinkage
    evaluation.metrics["select_contact_guard_fired"] = float(chosen != before_guard)
    evaluation.metrics["select_rows"] = float(len(frame))
    evaluation.metrics.update(select.as_metrics(table))
    if nested is not None:
        evaluation.metrics.update(nested.value.as_dict("select_nested_dr"))
        evaluation.metrics.update(nested.gain.as_dict("select_nested_gain_vs_best_single"))
        evaluation.metrics["select_nested_kept_best_single"] = float(chosen != full_choice)
        targeting = table[~table["rule"].isin(select.SINGLE_RULES)]
        if len(targeting):  # how well the data tell targeting from the single offer at all
            top = str(targeting.loc[targeting["dr"].idxmax(), "candidate"])
            gain = paired_difference(terms[top], terms[best_single.name], customers)
            evaluation.metrics.update(gain.as_dict("select_top_targeting_gain_vs_best_single"))
            line, needed = select.targeting_evidence(gain, rows_per_arm(treatment))
            if needed is not None:
                evaluation.metrics["select_rows_per_arm_needed"] = float(needed)
            note = "\n".join(filter(None, [note, line]))
    # report only: how finely these rows tell the offers apart (no choice reads it)
    offers = resolution.offer_resolution(dr, logged, margins, costs, catalog.offer_ids,
                                         customers)
    offers_note, offer_metrics = resolution.resolution_summary(
        offers, resolution.top_two(dr, margins, costs, catalog.offer_ids, offers, customers),
        rows_per_arm(treatment))
    evaluation.metrics.update(offer_metrics)
    shrinkage, penalty = rule_terms(chosen, np.ones(len(fold), dtype=bool), default)
    if not select.rule_of(chosen).contacts:  # served: population off (0 uplift, net -cost)
        penalty = population
    if isinstance(shrinkage, np.ndarray):  # gated, screened, calibrated: one per offer
        evaluation.metrics["shrinkage"] = float(np.mean(shrinkage))
        per_offer = dict(zip(catalog.offer_ids, shrinkage.tolist(), strict=True))
        evaluation.metrics.update({f"shrinkage_{o}": s for o, s in per_offer.items()})
        log.info("%s: shrinkage per offer %s", chosen.name,
                 ", ".join(f"{o} {s:.2f}" for o, s in per_offer.items()))
    return Selection(chosen, table, population, penalty, evaluation, shrinkage=shrinkage,
                     rows=len(frame), nested=nested, full_choice=full_choice, note=note,
                     arms=arms, terms=terms, offers=offers, offers_note=offers_note,
                     measured=measured_of(chosen))


def _nested_check(nested: select.Nested, chosen: Candidate, best_single: Candidate,
                  z: float | None) -> tuple[Candidate, str]:
    """(the candidate to serve, a line saying why): the full-data choice when it is the best
    single offer, when unchecked (z None) or when the nested procedure beats the best single
    offer by more than z SEs; else the best single offer."""
    gain = nested.gain
    figures = (f"nested (each fold served the choice of the other folds: "
               f"{', '.join(nested.choices)}): DR {nested.value.value:.4f} "
               f"[{nested.value.low:.4f}, {nested.value.high:.4f}], gain over {best_single.name} "
               f"{gain.value:+.4f} [{gain.low:+.4f}, {gain.high:+.4f}]")
    if chosen == best_single or select.beats_baseline(nested, 0.0 if z is None else z):
        return chosen, f"{figures}; serving {chosen.name}"
    if z is None:
        return chosen, (f"{figures}; serving {chosen.name} unchecked (nested_z off: with "
                        "--nested-z 0 the best single offer would be kept)")
    bound = "its point estimate is not above 0" if z == 0 else \
        f"its gain minus {z:g} SE is not above 0"
    return best_single, (f"{figures}; kept {best_single.name} instead of {chosen.name}: "
                         f"choosing from the menu does not beat the best single offer out of "
                         f"sample ({bound})")


def selection_sample(exposures: pd.DataFrame, catalog: Catalog, settings: TrainSettings
                     ) -> pd.DataFrame:
    """The rows selection cross-fits: a sample of whole customers (`selection_mask`)."""
    cap = settings.selection_cap(len(catalog.offers) + 1)
    return exposures[selection_mask(exposures["customer_id"], cap, settings.seed)]


def thin_arms(sample: pd.DataFrame, settings: TrainSettings) -> dict[str, int]:
    """{arm: the fewest rows it has to fit on over the folds} for the arms of `sample` below
    MIN_ARM_ROWS_PER_FOLD in some fold's training rows (the other folds', by customer, as
    `select_policy` folds them); empty when every arm can be cross-fitted."""
    if sample["customer_id"].nunique() < settings.folds:
        return {str(arm): 0 for arm in sample["treatment"].unique()}
    fold = crossfit.folds(sample["customer_id"].astype(str).to_numpy(), settings.folds,
                          settings.seed)
    treatment = sample["treatment"].astype(str).to_numpy()
    few: dict[str, int] = {}
    for arm in np.unique(treatment):
        held = np.bincount(fold[treatment == arm], minlength=settings.folds)
        fewest = int(held.sum() - held.max())  # training rows of the fold holding the most
        if fewest < MIN_ARM_ROWS_PER_FOLD:
            few[str(arm)] = fewest
    return few


def fit_chosen(exposures: pd.DataFrame, spec: FeatureSpec, catalog: Catalog,
               settings: TrainSettings, progress: Progress) -> tuple[Policy, Selection]:
    """Select on (a customer sample of) the exposures, then refit the choice on every row.

    Raises ContractError before any fit when an arm of the sample leaves a cross-fitting fold
    too few rows to fit on (`thin_arms`).
    """
    sample = selection_sample(exposures, catalog, settings)
    few = thin_arms(sample, settings)
    if few:
        from features.errors import ContractError

        raise ContractError(io.EXPOSURES, f"arm(s) with too few rows to cross-fit "
                            f"{settings.folds} folds by customer (each fold's models fit on the "
                            f"other folds' rows, at least {MIN_ARM_ROWS_PER_FOLD} per arm); the "
                            f"fewest rows each had to fit on: {few}", "treatment")
    log.info("%d features (%d matrix columns); %s rows, %s of them for selection",
             len(spec.features), spec.width, f"{len(exposures):,}", f"{len(sample):,}")
    selection = select_policy(sample, spec, catalog, settings, progress)
    log.info("menu (cross-fitted DR incremental profit per row, 95%% CI clustered by "
             "customer):\n%s\nchosen: %s", select.format_menu(selection.table,
                                                               selection.chosen, selection.note),
             selection.chosen.name)
    policy = fit_models(exposures, spec, catalog, settings, selection.chosen,
                         selection.population, progress)
    policy.shrinkage = selection.shrinkage
    policy.penalty = selection.penalty
    return policy, selection


def evaluate_out_of_fold(frame: pd.DataFrame, catalog: Catalog, raw: np.ndarray | None,
                         learned: np.ndarray, best_single: np.ndarray, mu: np.ndarray,
                         dr: np.ndarray, ipw: np.ndarray, customers: np.ndarray) -> Evaluation:
    """The chosen policy's out-of-fold metrics: DR and IPW profit (clustered), revenue values,
    Qini per offer, response AUC, against sending nothing and the best single offer."""
    n_arms = len(catalog.offers) + 1
    n = len(frame)
    logged = arm_index(frame["treatment"], catalog)
    converted = frame["converted"].to_numpy()
    revenue = frame["revenue"].to_numpy()
    propensity = frame["propensity"].to_numpy()
    margins, costs = economics(catalog)
    net_revenue = revenue - costs[logged]
    metrics: dict[str, float] = {"response_auc": ev.response_auc(converted, mu[np.arange(n),
                                                                              logged])}
    curves, deciles = ({}, {}) if raw is None else qini_by_offer(
        raw, logged, converted, catalog.offer_ids, metrics)
    eligible = tier_eligibility(catalog, loyalty_tiers(frame))
    random_probs = np.zeros((n, n_arms))
    random_probs[:, 1:] = 1.0 / len(catalog.offers)
    propensity_arm = 1 + np.argmax(np.where(eligible, mu[:, 1:], -np.inf), axis=1)
    default = int(np.bincount(best_single, minlength=n_arms)[1:].argmax()) + 1
    policies = {
        "learned_uplift_policy": learned,
        "treat_nobody": np.zeros(n, dtype=np.int64),
        f"best_single_offer ({catalog.offer_ids[default - 1]})": best_single,
        "random_offer": None,
        "propensity_ranking": propensity_arm,
    }
    rows_out = []
    for name, arm in policies.items():
        key = name.split(" ")[0]
        probs = random_probs if arm is None else ev.one_hot(arm, n_arms)
        value = mean_estimate(policy_terms_of(probs, logged, revenue, propensity), customers)
        net = mean_estimate(policy_terms_of(probs, logged, net_revenue, propensity), customers)
        row: dict[str, Any] = {"policy": name, "revenue_per_customer": value.value,
                               "ci_low": value.low,
               "ci_high": value.high, "net_revenue_per_customer": net.value,
               "treated_share": float(1.0 - probs[:, 0].mean())}
        metrics[f"policy_value_{key}"] = value.value
        metrics[f"policy_net_value_{key}"] = net.value
        if arm is not None:
            profit_dr = mean_estimate(profit_terms(arm, dr, margins, costs), customers)
            profit_ipw = mean_estimate(profit_terms(arm, ipw, margins, costs), customers)
            metrics.update(profit_dr.as_dict(f"dr_incremental_profit_{key}"))
            metrics[f"incremental_profit_{key}"] = profit_ipw.value
            row["incremental_profit_per_customer_dr"] = profit_dr.value
            row["incremental_profit_per_customer_ipw"] = profit_ipw.value
        rows_out.append(row)
    gain = paired_difference(profit_terms(learned, dr, margins, costs),
                             profit_terms(best_single, dr, margins, costs), customers)
    metrics.update(gain.as_dict("profit_gain_vs_best_single"))
    metrics["deviation_justified"] = float(gain.low > 0)
    metrics["policy_value_learned_ci_low"] = rows_out[0]["ci_low"]
    metrics["policy_value_learned_ci_high"] = rows_out[0]["ci_high"]
    metrics["learned_treated_share"] = float(np.mean(learned > 0))
    return Evaluation(metrics, curves, deciles, pd.DataFrame(rows_out))


def qini_by_offer(raw: np.ndarray, logged: np.ndarray, converted: np.ndarray,
                  offer_ids: tuple[str, ...], metrics: dict[str, float]
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]],
                             dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per offer, on its rows and control's: Qini and AUUC into `metrics`, and the Qini curve and
    uplift by decile returned. Offers never logged or without uplift scores are skipped."""
    curves, deciles = {}, {}
    for k, offer_id in enumerate(offer_ids):
        rows = (logged == 0) | (logged == k + 1)
        if not (logged == k + 1).any() or np.isnan(raw[rows, k]).any():
            continue
        score, treated, y = raw[rows, k], (logged[rows] == k + 1).astype(int), converted[rows]
        metrics[f"qini_{offer_id}"] = ev.qini_coefficient(score, treated, y)
        metrics[f"auuc_{offer_id}"] = ev.auuc(score, treated, y)
        curves[offer_id] = ev.qini_curve(score, treated, y)
        deciles[offer_id] = ev.uplift_by_decile(score, treated, y)
    return curves, deciles


def policy_terms_of(probs: np.ndarray, logged: np.ndarray, reward: np.ndarray,
                    propensity: np.ndarray) -> np.ndarray:
    """Per-row IPW terms of a (possibly random) policy's value of `reward`."""
    return probs[np.arange(len(logged)), logged] * reward / propensity


def loyalty_tiers(frame: pd.DataFrame) -> np.ndarray | None:
    """The rows' loyalty tiers for eligibility, or None when the data has no tier column."""
    return frame["loyalty_tier"].astype(object).to_numpy() if "loyalty_tier" in frame else None


def policy_arms(policy: Policy, uplift: np.ndarray, tiers: np.ndarray | None) -> np.ndarray:
    """The arm the policy's ranking picks per row (eligibility by tier; no stock offline)."""
    margins, costs = economics(policy.catalog)
    net = np.nan_to_num(uplift * margins[1:] - costs[1:], nan=-np.inf)
    return ev.greedy_arm(net, tier_eligibility(policy.catalog, tiers))


def evaluate_policy(policy: Policy, train: pd.DataFrame, test: pd.DataFrame) -> Evaluation:
    """Qini/AUUC per offer, response AUC, and IPW policy values against baselines."""
    catalog = policy.catalog
    n_arms = len(catalog.offers) + 1
    X = build_matrix(test, policy.spec)
    raw = policy.raw_uplift(X)  # Qini measures the per-customer ranking, before shrinkage
    uplift = policy.shrink(raw)
    logged = arm_index(test["treatment"], catalog)
    converted = test["converted"].to_numpy()
    revenue = test["revenue"].to_numpy()
    propensity = test["propensity"].to_numpy()
    margins, costs = economics(catalog)
    net_revenue = revenue - costs[logged]

    metrics: dict[str, float] = {}
    p_all = predict_response(policy.response, X, n_arms)
    metrics["response_auc"] = ev.response_auc(converted, p_all[np.arange(len(X)), logged])

    curves, deciles = qini_by_offer(raw, logged, converted, catalog.offer_ids, metrics)

    tiers = loyalty_tiers(test)
    n = len(test)
    best_single = _best_single_arm(train, catalog)
    random_probs = np.zeros((n, n_arms))
    random_probs[:, 1:] = 1.0 / len(catalog.offers)
    propensity_arm = 1 + np.argmax(np.where(tier_eligibility(catalog, tiers),
                                            p_all[:, 1:], -np.inf), axis=1)
    policies = {
        "learned_uplift_policy": ev.one_hot(policy_arms(policy, uplift, tiers), n_arms),
        "treat_nobody": ev.one_hot(np.zeros(n, dtype=int), n_arms),
        f"best_single_offer ({catalog.offer_ids[best_single - 1]})":
            ev.one_hot(np.full(n, best_single), n_arms),
        "random_offer": random_probs,
        "propensity_ranking": ev.one_hot(propensity_arm, n_arms),
    }
    rows = []
    for name, probs in policies.items():
        key = name.split(" ")[0]
        value = ev.ipw_value(probs, logged, revenue, propensity)
        net = ev.ipw_value(probs, logged, net_revenue, propensity)
        row = {"policy": name, "revenue_per_customer": value.value,
               "ci_low": value.low, "ci_high": value.high,
               "net_revenue_per_customer": net.value,
               "treated_share": float(1.0 - probs[:, 0].mean())}
        metrics[f"policy_value_{key}"] = value.value
        metrics[f"policy_net_value_{key}"] = net.value
        if name != "random_offer":  # incremental profit is defined for deterministic policies
            profit = ev.ipw_incremental_profit(probs.argmax(axis=1), logged, converted,
                                               propensity, margins, costs)
            metrics[f"incremental_profit_{key}"] = profit.value
            row["incremental_profit_per_customer"] = profit.value
        rows.append(row)
    table = pd.DataFrame(rows)
    # Is deviating from the best single offer justified? Paired IPW difference on the same rows.
    learned_arm = policies["learned_uplift_policy"].argmax(axis=1)
    paired = ev.mean_estimate(
        ev.profit_contributions(learned_arm, logged, converted, propensity, margins, costs)
        - ev.profit_contributions(np.full(n, best_single), logged, converted, propensity,
                                  margins, costs))
    metrics["profit_gain_vs_best_single"] = paired.value
    metrics["profit_gain_vs_best_single_ci_low"] = paired.low
    metrics["profit_gain_vs_best_single_ci_high"] = paired.high
    metrics["deviation_justified"] = float(paired.low > 0)
    metrics["shrinkage"] = float(np.mean(policy.shrinkage))
    learned = policies["learned_uplift_policy"]
    metrics["policy_value_learned_ci_low"] = float(table["ci_low"].iloc[0])
    metrics["policy_value_learned_ci_high"] = float(table["ci_high"].iloc[0])
    metrics["learned_treated_share"] = float(1.0 - learned[:, 0].mean())
    return Evaluation(metrics, curves, deciles, table)


def _best_single_arm(train: pd.DataFrame, catalog: Catalog) -> int:
    """The single offer with the highest IPW revenue on the TRAINING split (no peeking)."""
    logged = arm_index(train["treatment"], catalog)
    revenue = train["revenue"].to_numpy()
    propensity = train["propensity"].to_numpy()
    n_arms = len(catalog.offers) + 1
    values = [ev.ipw_value(ev.one_hot(np.full(len(train), a), n_arms), logged, revenue,
                           propensity).value for a in range(1, n_arms)]
    return 1 + int(np.argmax(values))


def _input_example(settings: TrainSettings, exposures: pd.DataFrame, spec: FeatureSpec
                   ) -> pd.DataFrame:
    path = settings.data_dir / io.CUSTOMERS
    if path.exists():
        return io.read_customers(path, spec).head(5)
    return exposures[["customer_id", *spec.names]].drop_duplicates("customer_id").head(5)


#: rows each arm needs per cross-fitting fold: a T-learner fits one model per arm on the
#: other folds' rows, and LightGBM refuses fewer than 2 (a traceback after minutes of fitting)
MIN_ARM_ROWS_PER_FOLD = 2


def check_arm_rows(exposures: pd.DataFrame, folds: int) -> None:
    """A ContractError naming the arms of exposures.parquet too small to cross-fit."""
    from features.errors import ContractError

    needed = MIN_ARM_ROWS_PER_FOLD * folds
    counts = exposures["treatment"].value_counts()
    few = {str(arm): int(n) for arm, n in counts.items() if n < needed}
    if few:
        raise ContractError(io.EXPOSURES, f"arm(s) with too few rows to cross-fit {folds} folds "
                            f"(at least {needed} each): {few}", "treatment")


def train(settings: TrainSettings) -> TrainResult:
    """Run the whole pipeline and register the policy; promotes the very first model."""
    progress = Progress(STEPS)
    data = settings.data_dir
    progress(f"reading {data / io.OFFERS} and {data / io.EXPOSURES}")
    catalog = io.read_catalog(data / io.OFFERS)
    exposures, newcomers = first_visit.split(io.read_exposures(data / io.EXPOSURES, catalog))
    check_arm_rows(exposures, settings.folds)
    kinds = feature_columns(pq.read_schema(data / io.EXPOSURES), io.EXPOSURES)
    spec = infer_spec(exposures, kinds)
    # customers.parquet is checked now, not after an hour of fitting
    example = _input_example(settings, exposures, spec)
    policy, selection = fit_chosen(exposures, spec, catalog, settings, progress)
    chosen = selection.chosen
    evaluation = selection.evaluation
    menu_text = select.format_menu(selection.table, chosen, selection.note)
    offers = selection.offers if selection.offers is not None else \
        pd.DataFrame(columns=resolution.COLUMNS)
    offers_text = resolution.format_resolution(offers, selection.offers_note)
    policy.first_visit = first_visit.fit(newcomers, kinds, catalog, settings)
    if policy.first_visit is not None:
        evaluation.metrics.update(policy.first_visit.meta["metrics"])
        evaluation.metrics["first_visit_rows"] = float(len(newcomers))
    return publish(settings, policy, evaluation, example, progress,
                   {"candidate": chosen.name, "folds": settings.folds,
                    "menu_learners": ",".join(settings.learners),
                    "menu_capacities": ",".join(settings.capacities),
                    "menu_rules": ",".join(settings.menu_rules),
                    "train_rows": len(exposures), "select_rows": selection.rows},
                   texts={"selection.csv": selection.table.to_csv(index=False),
                          "selection.txt": menu_text + "\n",
                          "offers.csv": offers.to_csv(index=False),
                          "offers.txt": offers_text + "\n"},
                   menu=menu_text, offers=offers_text)


def publish(settings: TrainSettings, policy: Policy, evaluation: Evaluation,
            example: pd.DataFrame, progress: Progress, params: dict,
            texts: dict[str, str] | None = None, menu: str = "", offers: str = ""
            ) -> TrainResult:
    """Log the run (params, metrics, plots, `texts` as evaluation files) and register the
    policy as an MLflow pyfunc; promotes it when asked or when it is the first. Shared by every
    training engine (this machine's menu, `training.dask_train`)."""
    progress("logging the run and the policy to MLflow")
    data, spec, catalog = settings.data_dir, policy.spec, policy.catalog
    client = registry.configure(settings.tracking_uri)
    experiment_id = registry.ensure_experiment(client, settings.experiment, settings.artifact_root)
    with mlflow.start_run(experiment_id=experiment_id) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        mlflow.log_params({**fitted_params(settings, spec), "seed": settings.seed,
                           "test_size": settings.test_size, "learner": policy.meta["learner"],
                           **params,
                           "n_features": len(spec.features), "n_offers": len(catalog.offers)})
        mlflow.set_tags({f"data.{name}.sha256": io.file_sha256(data / name)
                         for name in (io.EXPOSURES, io.OFFERS, io.CUSTOMERS)
                         if (data / name).exists()})
        mlflow.log_metrics({registry.metric_name(k): v for k, v in evaluation.metrics.items()
                            if np.isfinite(v)})
        plots.qini_plot(evaluation.qini_curves, tmp_path / "qini_curves.png")
        plots.decile_plot(evaluation.deciles, tmp_path / "uplift_by_decile.png")
        (tmp_path / "features.json").write_text(json.dumps(
            {"features": [asdict(f) for f in spec.features],
             "matrix_columns": spec.matrix_names}, indent=2))
        evaluation.policy_table.to_csv(tmp_path / "policy_values.csv", index=False)
        (tmp_path / "policy_values.txt").write_text(
            evaluation.policy_table.to_string(index=False, float_format="%.4f"))
        for name, text in (texts or {}).items():
            (tmp_path / name).write_text(text)
        for name in ("qini_curves.png", "uplift_by_decile.png", "features.json",
                     "policy_values.csv", "policy_values.txt", *(texts or {})):
            mlflow.log_artifact(str(tmp_path / name), artifact_path="evaluation")

        policy.meta["metrics"] = evaluation.metrics
        policy.meta["run_id"] = run.info.run_id
        policy_dir = tmp_path / "policy"
        policy.save(policy_dir)
        table = policy.customers(example)
        output = decision_rows(policy, table, DecisionContext("web", datetime.now(UTC)),
                               settings=OFFLINE)
        with warnings.catch_warnings():  # integer features never carry nulls in the contract
            warnings.filterwarnings("ignore", message=".*integer column.*")
            signature = infer_signature(example, output,
                                        params={"channel": "web", "limit": 3, "store_id": "",
                                                "device": "", "page": "", "cart_value": "",
                                                "now": "", "inventory": "",
                                                "launches": "", "contacts": "",
                                                "holdout_share": 0.05,
                                                "salt": ""})
        root = Path(__file__).resolve().parent.parent
        with warnings.catch_warnings():  # our predict takes frames; no type-hint inference
            warnings.filterwarnings("ignore", message=".*type hints.*")
            warnings.filterwarnings("ignore", message=".*integer column.*")
            info = mlflow.pyfunc.log_model(
                name="policy",
                python_model=NBAPolicyModel(),
                artifacts={"policy": str(policy_dir)},
                code_paths=[str(root / pkg) for pkg in
                            ("features", "decisioning", "state", "training")],
                signature=signature,
                input_example=example,
                registered_model_name=settings.model_name,
                pip_requirements=[f"{d}=={metadata.version(d)}" for d in PIP_REQUIREMENTS],
            )
    version = str(info.registered_model_version)
    champion = registry.get_alias(client, settings.model_name)
    promoted = settings.promote or champion is None
    if promoted:
        registry.set_alias(client, settings.model_name, version)
    progress(f"registered {settings.model_name} version {version}"
             + (" and promoted it to champion" if promoted else
                f" (champion stays version {champion.version if champion else '?'}; "
                f"promote with: nba promote --version {version})"))
    return TrainResult(run.info.run_id, version, promoted, evaluation.metrics, menu, offers)

