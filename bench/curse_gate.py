"""A selection-adjusted gate on the menu's claimed gain (issue 12, the department_catalogue
diagnosis; measured, not adopted).

The menu serves the argmax of ~19 cross-fitted DR values and reports its paired gain over the
best single offer; that gain is the maximum of correlated noisy estimates, so even when no
candidate truly beats the best single offer it is positive and often "significant". The gate
asks how large the top gain would be from noise alone: under the null that every targeting
candidate is truly worth the best single offer, the candidates' gains are N(0, Sigma), Sigma
their covariance clustered by customer (from the per-row DR terms the menu already has); the
choice is served only when its gain exceeds the (1 - alpha) quantile of the maximum of that
noise (a max-t bound in the manner of Westfall and Young, computed by simulation), else the
best single offer (the full-data choice's twin with shrinkage 0, as the nested check serves).
Per world x seed: the real selection and refit (`nba.worlds.train_and_score` does the same),
the true values on fresh customers of the choice and its twin, and the gate's decision.
Run: `nice .venv/bin/python bench/curse_gate.py --sets design --seeds 2 [--worlds a,b]`.
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
from selection_truth import WORLD_SETS, clustered_covariance, normal_draws  # noqa: E402

from features.build import build_matrix, infer_spec  # noqa: E402
from nba.worlds import World, generate  # noqa: E402
from training.pipeline import STEPS, Progress, fit_chosen, policy_arms  # noqa: E402
from training.select import SINGLE_RULES  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402

ALPHAS = (0.5, 0.2, 0.05)
HETEROGENEOUS = 1.5  # oracle / best single at which a world counts as worth targeting


def null_max_quantiles(gains: np.ndarray, clusters: np.ndarray, alphas: tuple[float, ...],
                       draws: int = 4_000, seed: int = 0) -> np.ndarray:
    """The (1 - alpha) quantiles of max_c N(0, Sigma)_c: how large the best of the candidates'
    gains over the baseline would be if none truly differed from it.

    `gains` is (candidates x rows) per-row gain terms; Sigma the clustered covariance of their
    means (`selection_truth.clustered_covariance`).
    """
    noise = normal_draws(clustered_covariance(gains, clusters), draws, seed)
    return np.quantile(noise.max(axis=1), [1.0 - a for a in alphas])


@dataclass(frozen=True)
class Row:
    """One world x seed: the choice, its claimed gain, the null maximum and the true values."""

    world: str
    seed: int
    chosen: str
    gain: float
    quantiles: np.ndarray  # per ALPHAS
    choice: float  # true value of the served choice on fresh customers
    twin: float  # true value of its best-single twin
    best_single: float
    oracle: float
    targeting: bool  # the choice is a targeting candidate (else the gate has nothing to check)

    def fires(self, alpha: float) -> bool:
        """The gate at `alpha` replaces the choice by the best single twin."""
        return self.targeting and self.gain <= self.quantiles[ALPHAS.index(alpha)]

    def served(self, alpha: float | None) -> float:
        """True value served with the gate at `alpha` (None: ungated)."""
        return self.twin if alpha is not None and self.fires(alpha) else self.choice


def run(world: World, settings: TrainSettings) -> Row:
    """The real selection and refit, then the gate's inputs and both sides' truths."""
    spec = infer_spec(world.exposures, list(world.columns))
    policy, selection = fit_chosen(world.exposures, spec, world.catalog,
                                   replace(settings, nested_z=None), Progress(STEPS))
    X = build_matrix(world.test, spec)
    choice = world.value(policy_arms(policy, policy.score(X)[0], None))
    policy.shrinkage, policy.penalty = 0.0, None
    twin = world.value(policy_arms(policy, policy.score(X)[0], None))
    table = selection.table
    single = str(table.loc[table["rule"] == "best_single", "candidate"].iloc[0])
    targeting = [str(c) for c in table.loc[~table["rule"].isin(SINGLE_RULES), "candidate"]]
    customers = world.exposures.loc[_selection_rows(world, settings), "customer_id"]
    clusters = customers.astype(str).to_numpy()
    gains = np.stack([selection.terms[c] - selection.terms[single] for c in targeting])
    chosen = selection.chosen
    is_targeting = chosen.rule not in SINGLE_RULES and chosen.name in targeting
    gain = float(gains[targeting.index(chosen.name)].mean()) if is_targeting else 0.0
    quantiles = null_max_quantiles(gains, clusters, ALPHAS, seed=settings.seed)
    return Row(world.name, settings.seed, chosen.name, gain, quantiles, choice, twin,
               world.best_single(), world.oracle(), is_targeting)


def _selection_rows(world: World, settings: TrainSettings) -> np.ndarray:
    """The rows selection scored (as `fit_chosen` samples them)."""
    from training.pipeline import selection_mask

    cap = settings.selection_cap(len(world.catalog.offers) + 1)
    return selection_mask(world.exposures["customer_id"], cap, settings.seed)


def report(rows: list[Row], command: str) -> str:
    """Per world x seed, then per world and the heterogeneous mean, ungated vs each alpha."""
    detail = [[r.world, str(r.seed), r.chosen, f"{r.gain:+.3f}",
               " / ".join(f"{q:.3f}" for q in r.quantiles), f"{r.choice:.3f}", f"{r.twin:.3f}",
               f"{r.best_single:.3f}", f"{r.oracle:.3f}"] for r in rows]
    gates: list[float | None] = [None, *ALPHAS]
    names = ["ungated", *(f"alpha {a:g}" for a in ALPHAS)]
    worlds = list(dict.fromkeys(r.world for r in rows))
    summary, hetero = [], {n: [] for n in names}  # type: ignore[var-annotated]
    below = dict.fromkeys(names, 0)
    for w in worlds:
        mine = [r for r in rows if r.world == w]
        oracle, single = np.mean([r.oracle for r in mine]), np.mean([r.best_single for r in mine])
        cells = []
        for name, alpha in zip(names, gates, strict=True):
            ratio = float(np.mean([r.served(alpha) for r in mine]) / oracle) if oracle > 0 else 0.0
            n_below = sum(r.served(alpha) < r.best_single - 0.02 * r.oracle for r in mine)
            below[name] += n_below
            if single > 0 and oracle >= HETEROGENEOUS * single:
                hetero[name].append(ratio)
            cells.append(f"{ratio:.3f}" + (f" ({n_below}↓)" if n_below else ""))
        fired = [sum(r.fires(a) for r in mine) for a in ALPHAS]
        summary.append([w, f"{single / oracle:.2f}" if oracle > 0 else "-", *cells,
                        " / ".join(map(str, fired))])
    summary.append(["heterogeneous mean", "", *(f"{np.mean(hetero[n]):.3f}" if hetero[n] else "-"
                                                for n in names), ""])
    summary.append(["seeds below (all worlds)", "", *(str(below[n]) for n in names), ""])
    return (f"## Selection-adjusted gate on the menu's gain (`{command}`)\n\n"
            "Per world: policy/oracle (means over seeds) served ungated and with the gate at each "
            "alpha (serve the choice only when its DR gain over the best single offer exceeds "
            "the (1 - alpha) quantile of the null maximum of the candidates' gains, else the best "
            "single twin); (n↓): seeds below the true best single offer by > 2% of the oracle; "
            "the last column: seeds where the gate fires at each alpha.\n\n"
            + markdown_table(["world", "best single / oracle", *names,
                              "fired (" + " / ".join(f"{a:g}" for a in ALPHAS) + ")"], summary)
            + "\n\nPer seed: the choice's claimed gain, the null maximum's quantiles (alpha "
            + " / ".join(f"{a:g}" for a in ALPHAS) + "), the true values on fresh customers.\n\n"
            + markdown_table(["world", "seed", "chosen", "DR gain", "null max quantiles",
                              "choice", "twin", "best single", "oracle"], detail) + "\n")


def main() -> None:
    """Run the worlds, print and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="design",
                        help=f"comma-separated: {', '.join(WORLD_SETS)}")
    parser.add_argument("--worlds", default=None, help="comma-separated worlds of those sets")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--out", default=None, help="also write bench/results/<out>")
    args = parser.parse_args()
    quiet_logging()
    logging.getLogger("training").setLevel(logging.WARNING)
    designs = {n: d for s in args.sets.split(",") for n, d in WORLD_SETS[s].items()}
    names = args.worlds.split(",") if args.worlds else list(designs)
    base = TrainSettings(params=BoosterParams(n_estimators=args.trees, n_jobs=1))
    rows = []
    for name in names:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            started = time.perf_counter()
            row = run(generate(designs[name], 100 + seed), replace(base, seed=seed))
            rows.append(row)
            print(f"{name} seed {seed}: {row.chosen} gain {row.gain:+.3f} null max "
                  f"{row.quantiles.round(3)} choice {row.choice:.3f} twin {row.twin:.3f} "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    markdown = report(rows, " ".join(["bench/curse_gate.py", *sys.argv[1:]]))
    if args.out:
        publish(args.out, markdown)
    else:
        print(markdown, flush=True)


if __name__ == "__main__":
    main()
