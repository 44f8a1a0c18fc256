"""How far the menu's DR values are from the truth, on a synthetic world (issue 12 diagnosis).

For each seed: the real selection and refit (`training.pipeline.fit_chosen`), then per menu
candidate its cross-fitted DR value beside the TRUE value of the same out-of-fold arms on the
same selection rows (`nba.worlds` knows every row's uplift), the chosen candidate's refit policy
on those rows and on fresh customers; and, without any selection, DR against the truth for
fixed policies (the oracle, one offer, random offers), which tells estimator bias from the
winner's curse. Prints markdown; writes nothing.
Run: `nice .venv/bin/python bench/selection_truth.py --world many_offers --seeds 2`; `--world`
takes any world of any set (`WORLD_SETS`; sealed ones included, each with its own columns). Per
seed it also prints the chosen candidate's gain over the best single offer four ways (DR claimed,
out-of-fold truth, refit on the rows, refit on fresh customers) and the winner's curse that gain
should carry (`expected_optimism`). `--fixed-only` prints only the fixed policies per seed and
their mean (DR - truth) / SE over the seeds.
`--summary` instead compares rules without choice noise: selection only (no refit), then per
world the mean over seeds of every candidate's out-of-fold arms' TRUE value / the oracle on the
same rows, e.g. `--summary --worlds all --seeds 3 --capacities low
--rules best_single,confident,shrink_0.5,calibrated,full`.
`--slopes x` prints, per world, the calibration slope of that learner's out-of-fold uplift at
`low` capacity (`rules.fold_slopes`) against its truth, within folds and
pooled over folds (the latter biased low), and how often `rules.heterogeneity_gate` opens.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, quiet_logging  # noqa: E402

from features.build import build_matrix, infer_spec  # noqa: E402
from nba.blind_worlds import BLIND  # noqa: E402
from nba.fresh_worlds import FRESH  # noqa: E402
from nba.sealed_worlds import SEALED  # noqa: E402
from nba.unseen_worlds import UNSEEN  # noqa: E402
from nba.worlds import DESIGNS, HELD_OUT, Design, World, generate  # noqa: E402
from stats import aipw_scores, arm_effects, mean_estimate, paired_difference, profit_terms  # noqa: E402
from training import crossfit, rules  # noqa: E402
from training import evaluate as ev  # noqa: E402
from training.learners import CAPACITIES  # noqa: E402
from training.pipeline import (  # noqa: E402
    STEPS,
    Progress,
    Selection,
    arm_index,
    economics,
    fit_chosen,
    policy_arms,
    select_policy,
    selection_mask,
)
from training.settings import BoosterParams, TrainSettings  # noqa: E402

#: every world set by its bench/worlds.py flag name ("design": the default DESIGNS); a world is
#: named by itself, since no name is in two sets
WORLD_SETS: dict[str, dict[str, Design]] = {"design": DESIGNS, "held-out": HELD_OUT,
                                            "fresh": FRESH, "blind": BLIND, "unseen": UNSEEN,
                                            "sealed": SEALED}
ALL_WORLDS: dict[str, Design] = {n: d for designs in WORLD_SETS.values()
                                  for n, d in designs.items()}


def true_value(net: np.ndarray, arms: np.ndarray) -> float:
    """Mean true incremental profit of `arms` (0 = nothing) given per-row, per-offer net."""
    return float(np.mean(ev.at_arms(net, arms)))


def selection_truth(world: World, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """The selection rows (a mask over the exposures, as `select_policy` samples them) and their
    true net profit per offer (rows x offers), from the world's logged truth: the one truth
    every world has, hidden-truth ones (fresh library_logistic, unseen) included.

    Raises ValueError for a world built without it (`nba.worlds.generate` always keeps it).
    """
    truth = world.logged_truth
    if truth is None:
        raise ValueError(f"world {world.name!r} has no logged truth: build it with "
                         "nba.worlds.generate")
    cap = settings.selection_cap(len(world.catalog.offers) + 1)
    mask = selection_mask(world.exposures["customer_id"], cap, settings.seed)
    margins, costs = economics(world.catalog)
    return mask, (truth[mask, 1:] - truth[mask, :1]) * margins[1:] - costs[1:]


def menu_against_truth(world: World, settings: TrainSettings
                       ) -> tuple[list[list[str]], str, list[str]]:
    """Every candidate's DR value and the truth of its out-of-fold arms; the refit's truth; and
    the chosen candidate's gain over the best single offer four ways (DR claimed, its
    out-of-fold arms' truth, the refit on the selection rows, the refit on fresh customers).

    The choice is the full-data one, unchecked (`nested_z` None), as `nba.worlds.train_and_score`
    scores it; every gain is against the TRUE best single offer on the same customers."""
    spec = infer_spec(world.exposures, list(world.columns))
    policy, selection = fit_chosen(world.exposures, spec, world.catalog,
                                   replace(settings, nested_z=None), Progress(STEPS))
    mask, net = selection_truth(world, settings)
    sample = world.exposures[mask]
    customers = sample["customer_id"].astype(str).to_numpy()
    rows = []
    for r in selection.table.itertuples():
        truth = true_value(net, selection.arms[str(r.candidate)])
        rows.append([str(r.candidate) + (" <-" if r.candidate == selection.chosen.name else ""),
                     f"{r.dr:+.3f} [{r.dr_low:+.3f}, {r.dr_high:+.3f}]", f"{truth:+.3f}",
                     f"{r.dr - truth:+.3f}"])
    X_rows, X_test = build_matrix(sample, spec), build_matrix(world.test, spec)
    refit_rows = true_value(net, policy_arms(policy, policy.score(X_rows)[0], None))
    refit_test = world.value(policy_arms(policy, policy.score(X_test)[0], None))
    policy.shrinkage, policy.penalty = 0.0, None  # its best-single twin, as train_and_score
    twin_test = world.value(policy_arms(policy, policy.score(X_test)[0], None))
    chosen = selection.chosen.name
    single = str(selection.table.loc[selection.table["rule"] == "best_single",
                                     "candidate"].iloc[0])
    best_rows = max(float(net.mean(axis=0).max()), 0.0)
    claimed = (paired_difference(selection.terms[chosen], selection.terms[single], customers)
               if chosen != single else None)
    oof_chosen = true_value(net, selection.arms[chosen]) if chosen in selection.arms else 0.0
    oof_single = true_value(net, selection.arms[single])
    decomposition = [
        chosen, "+0 (best single served)" if claimed is None else
        f"{claimed.value:+.3f} [{claimed.low:+.3f}, {claimed.high:+.3f}]",
        f"{oof_chosen - oof_single:+.3f}", f"{oof_chosen - best_rows:+.3f}",
        f"{refit_rows - best_rows:+.3f}", f"{refit_test - world.best_single():+.3f}",
        f"{oof_single - best_rows:+.3f}", f"{twin_test - world.best_single():+.3f}",
        "-" if selection.nested is None else
        f"{selection.nested.gain.value:+.3f} [{selection.nested.gain.low:+.3f}, "
        f"{selection.nested.gain.high:+.3f}]"]
    names = [str(c) for c in selection.table["candidate"]]
    truths = np.array([true_value(net, selection.arms[c]) for c in names])
    observed = (0.0 if claimed is None else claimed.value) - (oof_chosen - oof_single)
    curse = expected_optimism(np.stack([selection.terms[c] for c in names]), customers, truths,
                              names.index(single), observed, settings.seed)
    summary = (f"{len(sample):,} of {len(world.exposures):,} rows scored; oracle on them "
               f"{np.mean(np.maximum(net.max(axis=1), 0)):.3f}, best single "
               f"{best_rows:.3f}; chosen {chosen}: out-of-fold arms truly {oof_chosen:.3f}, "
               f"refit policy truly {refit_rows:.3f} on the selection rows, {refit_test:.3f} on "
               f"fresh customers (oracle {world.oracle():.3f}, best single "
               f"{world.best_single():.3f}); {single}'s out-of-fold arms truly {oof_single:.3f}. "
               f"Claimed gain minus its truth {observed:+.3f}; the winner's curse alone, DR "
               f"values drawn around these candidates' truths with their clustered covariance "
               f"and the argmax taken, gives {curse[0]:+.3f} on average (95th percentile "
               f"{curse[1]:+.3f}; {curse[2]:.0%} of draws at or above the observed)")
    return rows, summary, decomposition


def clustered_covariance(terms: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """The covariance (k x k) of the means of k rows of per-row terms, clustered by customer
    (G / (G - 1) small-sample factor, as `stats.mean_estimate` computes each variance)."""
    _, which = np.unique(np.asarray(clusters), return_inverse=True)
    centred = np.zeros((which.max() + 1, terms.shape[0]))
    np.add.at(centred, which, (terms - terms.mean(axis=1, keepdims=True)).T)
    units, n = len(centred), terms.shape[1]
    return centred.T @ centred / n**2 * units / max(units - 1, 1)


def normal_draws(cov: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """`draws` x k draws of N(0, cov) (cov positive semi-definite)."""
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    return np.random.default_rng(seed).standard_normal((draws, len(cov))) @ root.T


def expected_optimism(terms: np.ndarray, clusters: np.ndarray, truths: np.ndarray,
                      baseline: int, observed: float, seed: int, draws: int = 4_000
                      ) -> tuple[float, float, float]:
    """The winner's curse of the menu's gain over its baseline, simulated: DR values drawn as
    N(truths, Sigma), Sigma the clustered covariance of the candidates' per-row DR terms (k x
    rows), the argmax taken as the menu does. Returns the mean and 95th percentile of the
    pick's gain over `baseline` minus its true gain, and the share of draws at or above
    `observed` (the real run's gain minus its truth)."""
    noise = normal_draws(clustered_covariance(terms, clusters), draws, seed)
    picks = np.argmax(truths + noise, axis=1)
    excess = noise[np.arange(draws), picks] - noise[:, baseline]
    return (float(excess.mean()), float(np.quantile(excess, 0.95)),
            float(np.mean(excess >= observed)))


def fixed_policies(world: World, settings: TrainSettings) -> list[list[str]]:
    """DR against the truth for policies fixed before seeing the outcomes (no selection), and
    for the best single offer chosen in sample by DR (the one selection that cannot hide)."""
    mask, net = selection_truth(world, settings)
    frame = world.exposures[mask]
    X = build_matrix(frame, infer_spec(frame, list(world.columns)))
    logged = arm_index(frame["treatment"], world.catalog)
    customers = frame["customer_id"].astype(str).to_numpy()
    fold = crossfit.folds(customers, settings.folds, settings.seed)
    n_arms = len(world.catalog.offers) + 1
    converted = frame["converted"].to_numpy()
    mu = crossfit.outcome_predictions(X, logged, converted, fold, n_arms=n_arms,
                                      params=settings.params, seed=settings.seed)
    dr = aipw_scores(logged, frame["propensity"].to_numpy(), converted, mu)
    margins, costs = economics(world.catalog)
    rng = np.random.default_rng(settings.seed)
    best = int(np.argmax(net.mean(axis=0))) + 1
    in_sample = int(np.argmax(arm_effects(dr, logged) * margins[1:] - costs[1:])) + 1
    n = len(frame)
    # the menu's best_single: each fold's offer from the other folds' DR arm effects
    defaults = [rules.default_offer(p, margins, costs)
                for p in crossfit.arm_effects_out_of_fold(dr, logged, fold)]
    out_of_fold = np.array([0 if d is None else d + 1 for d in defaults])[fold]
    policies = {"oracle": np.where(net.max(axis=1) > 0, net.argmax(axis=1) + 1, 0),
                "offer 1 to all": np.ones(n, dtype=np.int64),
                f"true best single (offer {best}) to all": np.full(n, best),
                "random offer": rng.integers(1, n_arms, n),
                f"DR's in-sample best single (offer {in_sample})": np.full(n, in_sample),
                "best single chosen out of fold (the menu's best_single)": out_of_fold}
    out = []
    for name, arms in policies.items():
        estimate = mean_estimate(profit_terms(arms, dr, margins, costs), customers)
        truth = true_value(net, arms)
        out.append([name, f"{estimate.value:+.3f} [{estimate.low:+.3f}, {estimate.high:+.3f}]",
                    f"{truth:+.3f}", f"{(estimate.value - truth) / estimate.se:+.2f}"])
    return out


def fixed_only(design: Design, seeds: int, first_seed: int, base: TrainSettings) -> None:
    """Print each seed's fixed policies and, per policy, the mean and spread over the seeds of
    (DR - truth) / SE: about 0 and 1 when DR is unbiased with honest intervals."""
    errors: dict[str, list[float]] = {}
    for seed in range(first_seed, first_seed + seeds):
        rows = fixed_policies(generate(design, 100 + seed), replace(base, seed=seed))
        print(f"\n{design.name}, seed {seed}\n\n" + markdown_table(
            ["policy", "DR value [95% CI]", "truth", "(DR - truth) / SE"], rows), flush=True)
        for r in rows:
            errors.setdefault(r[0].split(" (")[0], []).append(float(r[3]))
    print(f"\n{design.name}: (DR - truth) / SE over {seeds} seed(s)\n")
    print(markdown_table(["policy", "mean", "sd", "per seed"],
                         [[name, f"{np.mean(e):+.2f}", f"{np.std(e, ddof=1):.2f}"
                           if len(e) > 1 else "-", " ".join(f"{x:+.2f}" for x in e)]
                          for name, e in errors.items()]), flush=True)


def selection_with_truth(world: World, settings: TrainSettings
                         ) -> tuple[Selection, pd.DataFrame, np.ndarray]:
    """The menu scored on the selection rows as training does (no refit): the selection, those
    rows, and their true net profit per offer (rows x offers, `selection_truth`)."""
    spec = infer_spec(world.exposures, list(world.columns))
    mask, net = selection_truth(world, settings)
    sample = world.exposures[mask]
    return select_policy(sample, spec, world.catalog, settings, Progress(STEPS)), sample, net


def truth_over_oracle(world: World, settings: TrainSettings) -> dict[str, float]:
    """Per candidate: true value of its out-of-fold arms / the oracle's, on the selection rows
    (and "chosen": the menu's choice), without the refit."""
    selection, _, net = selection_with_truth(world, settings)
    oracle = float(np.mean(np.maximum(net.max(axis=1), 0)))
    ratios = {name: true_value(net, arms) / oracle for name, arms in selection.arms.items()}
    # the contact guard may serve `nobody`, which has no arms in the menu: truly worth 0
    ratios["chosen"] = (0.0 if selection.chosen.rule == "nobody"
                        else ratios[selection.chosen.name])
    return ratios


def summarize(names: list[str], seeds: int, first_seed: int, base: TrainSettings,
              designs: dict[str, Design] = DESIGNS) -> None:
    """Print candidate x world: mean true / oracle over the seeds (and the mean over worlds)."""
    by_world: dict[str, dict[str, list[float]]] = {}
    for name in names:
        for seed in range(first_seed, first_seed + seeds):
            ratios = truth_over_oracle(generate(designs[name], 100 + seed),
                                       replace(base, seed=seed))
            for candidate, ratio in ratios.items():
                by_world.setdefault(candidate, {}).setdefault(name, []).append(ratio)
            print(f"{name} seed {seed}: " + ", ".join(f"{c} {r:.2f}" for c, r in ratios.items()),
                  file=sys.stderr, flush=True)
    rows = []
    for candidate, worlds in by_world.items():
        means = [float(np.mean(worlds[n])) for n in names]
        rows.append([candidate, *(f"{m:.3f}" for m in means), f"{np.mean(means):.3f}"])
    print(f"\nTrue value of each candidate's out-of-fold arms / oracle, on the selection rows; "
          f"mean over {seeds} seed(s)\n")
    print(markdown_table(["candidate", *names, "mean"], rows), flush=True)


def slopes(u: np.ndarray, y: np.ndarray, fold: np.ndarray | None) -> np.ndarray:
    """Per offer, the unclipped OLS slope of y on u: within folds, or pooled (fold None)."""
    return rules.fold_slopes(u, y, np.zeros(len(u)) if fold is None else fold)[0]


def slope_row(name: str, learner: str, seeds: int, first_seed: int, base: TrainSettings
              ) -> list[str]:
    """One world: the slope's truth and its estimates, means over offers and seeds; and the
    offers x seeds whose heterogeneity gate opens, within folds and pooled, beside those whose
    true slope is above 0.2."""
    true, within, pooled, errors = [], [], [], []
    opens, opens_pooled = 0, 0
    for seed in range(first_seed, first_seed + seeds):
        world, settings = generate(ALL_WORLDS[name], 100 + seed), replace(base, seed=seed)
        cap = settings.selection_cap(len(world.catalog.offers) + 1)
        frame = world.exposures[selection_mask(world.exposures["customer_id"], cap, seed)]
        X = build_matrix(frame, infer_spec(frame, list(world.columns)))
        logged = arm_index(frame["treatment"], world.catalog)
        converted, propensity = frame["converted"].to_numpy(), frame["propensity"].to_numpy()
        customers = frame["customer_id"].astype(str).to_numpy()
        fold = crossfit.folds(customers, settings.folds, seed)
        mu = crossfit.outcome_predictions(X, logged, converted, fold,
                                          n_arms=len(world.catalog.offers) + 1,
                                          params=settings.params, seed=seed)
        dr = aipw_scores(logged, propensity, converted, mu)
        uplift = crossfit.uplift_predictions(
            learner, X, frame["treatment"].to_numpy(dtype=object), converted,  # type: ignore[arg-type]
            propensity, fold, offer_ids=world.catalog.offer_ids,
            control_label=world.catalog.control_label,
            params=CAPACITIES["low"].apply(settings.params), seed=seed).uplift
        truth = slopes(uplift, ALL_WORLDS[name].uplift(frame), fold)
        estimate = slopes(uplift, dr[:, 1:] - dr[:, :1], fold)
        true += list(truth)
        within += list(estimate)
        pooled += list(slopes(uplift, dr[:, 1:] - dr[:, :1], None))
        errors += list(np.abs(estimate - truth))
        pseudo = dr[:, 1:] - dr[:, :1]
        opens += int(rules.heterogeneity_gate(uplift, pseudo, fold, customers).sum())
        opens_pooled += int(rules.heterogeneity_gate(uplift, pseudo, np.zeros(len(fold)),
                                                     customers).sum())
    true_open = int(np.sum(np.array(true) > 0.2))
    return [name, f"{np.mean(true):+.2f}", f"{np.mean(within):+.2f}", f"{np.mean(pooled):+.2f}",
            f"{np.mean(errors):.2f}", f"{opens} / {opens_pooled} / {true_open} of {len(true)}"]


def main() -> None:
    """Print the tables per seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="many_offers", choices=sorted(ALL_WORLDS),
                        help="any world of any set (design, held-out, fresh, blind, unseen, "
                             "sealed: naming a blind one spends its blindness)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--rows-per-arm", type=int, default=None,
                        help="the world with this many logged rows per arm instead")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--select-rows-per-arm", type=int,
                        default=TrainSettings().select_rows_per_arm,
                        help="0: the fixed 25,000-row cap of before")
    parser.add_argument("--summary", action="store_true",
                        help="only the candidates' true value / oracle per world (no refit)")
    parser.add_argument("--worlds", default="all",
                        help="with --summary or --slopes: comma-separated worlds, or all")
    parser.add_argument("--slopes", default=None, choices=("s", "t", "x"),
                        help="only the calibration slopes of this learner's uplift per world")
    parser.add_argument("--rules", default=None, help="comma-separated menu rules")
    parser.add_argument("--capacities", default=None, help="comma-separated menu capacities")
    parser.add_argument("--learners", default=None, help="comma-separated menu learners")
    parser.add_argument("--folds", type=int, default=None,
                        help="cross-fitting folds by customer (TrainSettings.folds)")
    parser.add_argument("--fixed-only", action="store_true",
                        help="only the fixed policies' DR against the truth per seed, and the "
                             "mean (DR - truth) / SE over the seeds (no menu, no refit)")
    parser.add_argument("--held-out", action="store_true",
                        help="with --summary: the held-out worlds (nba.worlds.HELD_OUT)")
    args = parser.parse_args()
    quiet_logging()
    logging.getLogger("training").setLevel(logging.WARNING)
    design = ALL_WORLDS[args.world]
    if args.rows_per_arm:
        design = replace(design, rows_per_arm=args.rows_per_arm)
    base = TrainSettings(params=BoosterParams(n_estimators=args.trees, n_jobs=1),
                         select_rows_per_arm=args.select_rows_per_arm)
    if args.rules:
        base = replace(base, rules=tuple(args.rules.split(",")))
    if args.capacities:
        base = replace(base, capacities=tuple(args.capacities.split(",")))
    if args.learners:
        base = replace(base, learners=tuple(args.learners.split(",")))
    if args.folds:
        base = replace(base, folds=args.folds)
    if args.slopes:
        names = list(DESIGNS) if args.worlds == "all" else args.worlds.split(",")
        print(f"\nCalibration slope of the {args.slopes}/low out-of-fold uplift per offer, "
              f"unclipped; mean over offers and {args.seeds} seed(s)\n")
        print(markdown_table(["world", "true (within folds)", "estimated within folds",
                              "estimated pooled over folds", "mean |within - true|",
                              "gate open within / pooled / true > 0.2"],
                             [slope_row(n, args.slopes, args.seeds, args.first_seed, base)
                              for n in names]), flush=True)
        return
    if args.summary:
        designs = HELD_OUT if args.held_out else DESIGNS
        names = list(designs) if args.worlds == "all" else args.worlds.split(",")
        # any set's worlds by name too (a diagnosis: naming a blind one spends its blindness)
        summarize(names, args.seeds, args.first_seed, base, {**designs, **ALL_WORLDS})
        return
    if args.fixed_only:
        fixed_only(design, args.seeds, args.first_seed, base)
        return
    decomposition = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        world, settings = generate(design, 100 + seed), replace(base, seed=seed)
        rows, summary, row = menu_against_truth(world, settings)
        decomposition.append([str(seed), *row])
        print(f"\n### {args.world}, seed {seed} (as in bench/worlds.py)\n\n{summary}\n")
        print(markdown_table(["candidate (<- chosen)", "DR value [95% CI]",
                              "true value of its out-of-fold arms", "DR - truth"], rows))
        print("\nFixed policies, no selection:\n")
        print(markdown_table(["policy", "DR value [95% CI]", "truth", "(DR - truth) / SE"],
                             fixed_policies(world, settings)), flush=True)
    print(f"\n### {args.world}: the chosen candidate's gain over the best single offer\n")
    print(markdown_table(["seed", "chosen", "DR claimed gain over best_single [95% CI]",
                          "OOF truth gain over best_single's OOF arms",
                          "OOF truth gain over the true best single",
                          "refit truth gain on the rows", "refit truth gain on fresh",
                          "best_single's OOF arms vs the true best single",
                          "refit best-single twin vs the true best single, on fresh",
                          "nested check's DR gain [95% CI]"], decomposition))

if __name__ == "__main__":
    main()
