"""Is the served policy (the choice refit on every row) worth what selection measured?

For each world x seed: the real selection and refit (`training.pipeline.fit_chosen`, as
bench/worlds.py runs it), then, each as a share of the oracle:
(a) the chosen candidate's out-of-fold policy, truly, on the selection rows (what its DR
    value estimated);
(b) the same K fold policies (fold j's model with fold j's shrinkage target and penalty,
    `training.measured.FoldPolicies`) on the 20,000 fresh customers, averaged over the folds;
(e) the K fold models' uplift averaged, with the served rule (all rows' offer averages and
    penalty): what serving the measured models instead of a refit would earn;
(c) the served refit on the fresh customers (bench/worlds.py's "policy");
(f) the same refit on the selection rows only (differs from (c) only where the log has more
    rows than selection scores: the `select_rows` cap).
It also checks that the kept fold policies reproduce the out-of-fold arms selection scored.
Run: `nice .venv/bin/python bench/refit_gap.py --sets design,held-out,sealed --seeds 3
--trees 100` (writes bench/results/refit_gap.md, rewritten after every world); seeds 3-4 of
design: `--sets design --seeds 2 --first-seed 3 --out refit_gap_design_seeds34.md`. Each
world x seed's line goes to stderr only: keep it to pool runs (docs/measurement.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, publish, quiet_logging  # noqa: E402
from selection_truth import WORLD_SETS, selection_truth, true_value  # noqa: E402

from decisioning.eligibility import tier_eligibility  # noqa: E402
from features.build import build_matrix, infer_spec  # noqa: E402
from features.catalog import Catalog  # noqa: E402
from nba.worlds import World, generate  # noqa: E402
from training import crossfit, rules  # noqa: E402
from training import evaluate as ev  # noqa: E402
from training.pipeline import (  # noqa: E402
    STEPS,
    Progress,
    economics,
    fit_chosen,
    fit_models,
    policy_arms,
)
from training.settings import BoosterParams, TrainSettings  # noqa: E402

HETEROGENEOUS = 1.5  # oracle / best single at which a world counts as worth targeting


@dataclass(frozen=True)
class Gap:
    """One world x seed: the four values as shares of their oracle."""

    world: str
    seed: int
    chosen: str
    oof_rows: float  # (a)
    folds_fresh: float  # (b)
    bagged_fresh: float  # (e)
    served_fresh: float  # (c)
    sample_refit_fresh: float  # (f)
    heterogeneous: bool
    reproduced: float  # share of selection rows whose kept fold policy gives the scored arm
    rows: int
    select_rows: int


def greedy(uplift: np.ndarray, catalog: Catalog) -> np.ndarray:
    """The arm the ranking picks per row (every offer eligible, as the worlds have no tiers)."""
    margins, costs = economics(catalog)
    net = np.nan_to_num(uplift * margins[1:] - costs[1:], nan=-np.inf)
    return ev.greedy_arm(net, tier_eligibility(catalog, None))


def measure(world: World, settings: TrainSettings) -> Gap:
    """Select and refit as training does; score (a), (b), (e), (c)."""
    spec = infer_spec(world.exposures, list(world.columns))
    policy, selection = fit_chosen(world.exposures, spec, world.catalog,
                                   replace(settings, nested_z=None), Progress(STEPS))
    chosen, measured = selection.chosen, selection.measured
    if measured is None:
        raise RuntimeError(f"{world.name}: selection kept no fold policies for {chosen.name}")
    mask, net = selection_truth(world, settings)
    sample = world.exposures[mask]
    oracle_rows = float(np.mean(np.maximum(net.max(axis=1), 0.0)))
    scored = selection.arms.get(chosen.name, np.zeros(len(sample), dtype=np.int64))
    fold = crossfit.folds(sample["customer_id"].astype(str).to_numpy(), settings.folds,
                          settings.seed)
    X_rows, X_test = build_matrix(sample, spec), build_matrix(world.test, spec)
    again = np.empty(len(sample), dtype=np.int64)
    for j in range(measured.folds):
        again[fold == j] = greedy(measured.ranked(j, X_rows[fold == j]), world.catalog)
    oracle = world.oracle()
    folds_fresh = np.mean([world.value(greedy(measured.ranked(j, X_test), world.catalog))
                           for j in range(measured.folds)])
    bagged = rules.apply(measured.mean_raw(X_test), selection.population, selection.shrinkage,
                         selection.penalty)
    served = world.value(policy_arms(policy, policy.score(X_test)[0], None)) / oracle
    on_sample = served
    if len(sample) < len(world.exposures):
        refit = fit_models(sample, spec, world.catalog, settings, chosen, selection.population)
        refit.shrinkage, refit.penalty = selection.shrinkage, selection.penalty
        on_sample = world.value(policy_arms(refit, refit.score(X_test)[0], None)) / oracle
    return Gap(world.name, settings.seed, chosen.name, true_value(net, scored) / oracle_rows,
               float(folds_fresh) / oracle, world.value(greedy(bagged, world.catalog)) / oracle,
               served, on_sample, oracle >= HETEROGENEOUS * world.best_single(),
               float(np.mean(again == scored)), len(world.exposures), len(sample))


def paired(values: list[float]) -> str:
    """Mean and 95% half-width over world x seed differences."""
    if len(values) < 2:
        return f"{np.mean(values):+.3f}" if values else "-"
    return f"{np.mean(values):+.3f} +- {1.96 * np.std(values, ddof=1) / np.sqrt(len(values)):.3f}"


def world_rows(gaps: list[Gap]) -> list[list[str]]:
    """Per world: means over seeds of (a), (b), (e), (c) and the rows the refit saw."""
    out = []
    for name in dict.fromkeys(g.world for g in gaps):
        mine = [g for g in gaps if g.world == name]
        out.append([name + ("" if mine[0].heterogeneous else " (flat)"),
                    ", ".join(g.chosen for g in mine),
                    f"{mine[0].rows:,} / {mine[0].select_rows:,}",
                    *(f"{np.mean([getattr(g, f) for g in mine]):.0%}" for f in
                      ("oof_rows", "folds_fresh", "bagged_fresh", "served_fresh",
                       "sample_refit_fresh")),
                    f"{np.mean([g.served_fresh - g.folds_fresh for g in mine]):+.3f}",
                    f"{min(g.reproduced for g in mine):.1%}"])
    return out


def set_rows(gaps: list[Gap], sets: dict[str, list[str]]) -> list[list[str]]:
    """Per world set: heterogeneous-world means of (a), (b), (e), (c) and paired differences."""
    out = []
    for label, names in sets.items():
        mine = [g for g in gaps if g.world in names and g.heterogeneous]
        if not mine:
            continue
        by_world = [[g for g in mine if g.world == n] for n in names]
        by_world = [w for w in by_world if w]
        mean = {f: np.mean([np.mean([getattr(g, f) for g in w]) for w in by_world])
                for f in ("oof_rows", "folds_fresh", "bagged_fresh", "served_fresh")}
        out.append([label, f"{len(by_world)} x {len(mine) // len(by_world)}",
                    *(f"{mean[f]:.0%}" for f in mean),
                    paired([g.served_fresh - g.folds_fresh for g in mine]),
                    paired([g.bagged_fresh - g.served_fresh for g in mine]),
                    str(sum(g.served_fresh < g.folds_fresh - 0.02 for g in mine)),
                    str(sum(g.bagged_fresh < g.served_fresh - 0.02 for g in mine))])
    return out


def report(gaps: list[Gap], sets: dict[str, list[str]], command: str, seconds: float) -> str:
    """The markdown: per world, then per set."""
    return "\n".join([
        "## The refit gap: what selection measured against what is served",
        "",
        f"`{command}` ({seconds:.0f} s). Shares of the oracle: (a) the chosen candidate's "
        "out-of-fold policy, truly, on the selection rows (against the oracle on those rows); "
        "(b) the same K fold policies on 20,000 fresh customers, averaged over folds; (e) the K "
        "fold models' uplift averaged under the served rule, on the fresh customers; (c) the "
        "served refit on the fresh customers; (f) the chosen candidate refit on the selection "
        "rows only, on the fresh customers (= (c) where selection scores every row). Rows: "
        "logged / scored by selection. Reproduced: "
        "the smallest share of selection rows whose kept fold policy picks the arm selection "
        "scored (a check of `training.measured`).",
        "",
        markdown_table(["world", "chosen per seed", "rows / selection rows", "(a) OOF rows",
                        "(b) folds fresh", "(e) bagged fresh", "(c) served fresh",
                        "(f) refit on selection rows, fresh", "(c) - (b)", "reproduced"],
                       world_rows(gaps)),
        "",
        "Per set, heterogeneous worlds (oracle >= 1.5x best single): means over worlds; "
        "paired differences over world x seed (share of the oracle, 95% half-width); seeds "
        "where one is below the other by more than 2% of the oracle.",
        "",
        markdown_table(["set", "worlds x seeds", "(a)", "(b)", "(e)", "(c)", "(c) - (b)",
                        "(e) - (c)", "(c) < (b) - 2%", "(e) < (c) - 2%"],
                       set_rows(gaps, sets)),
    ])


def main() -> None:
    """Run every world x seed of the sets, printed as each finishes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="design,held-out,sealed",
                        help=f"comma-separated world sets of {', '.join(WORLD_SETS)}")
    parser.add_argument("--worlds", default=None, help="comma-separated world names (default: "
                                                       "every world of the sets)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (worlds 100 + seed)")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--out", default="refit_gap.md", help="results file in bench/results")
    args = parser.parse_args()
    quiet_logging()
    logging.getLogger("training").setLevel(logging.WARNING)
    settings = TrainSettings(params=BoosterParams(n_estimators=args.trees, n_jobs=1))
    sets = {s: [n for n in WORLD_SETS[s] if not args.worlds or n in args.worlds.split(",")]
            for s in args.sets.split(",")}
    command = (f"bench/refit_gap.py --sets {args.sets} --seeds {args.seeds} --trees "
               f"{args.trees}" + (f" --worlds {args.worlds}" if args.worlds else "")
               + (f" --first-seed {args.first_seed}" if args.first_seed else ""))
    started, gaps = time.perf_counter(), []
    for label, names in sets.items():
        for name in names:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                t0 = time.perf_counter()
                g = measure(generate(WORLD_SETS[label][name], 100 + seed),
                            replace(settings, seed=seed))
                gaps.append(g)
                print(f"{name:<20} seed {seed}: {g.chosen:<18} (a) {g.oof_rows:.3f} (b) "
                      f"{g.folds_fresh:.3f} (e) {g.bagged_fresh:.3f} (c) {g.served_fresh:.3f} "
                      f"(f) {g.sample_refit_fresh:.3f} "
                      f"reproduced {g.reproduced:.1%} ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
            publish(args.out, report(gaps, sets, command, time.perf_counter() - started))


if __name__ == "__main__":
    main()
