"""How finely each world's log tells its offers apart (`training.resolution`), against truth.

For every world of a set and every seed: the selection sample `nba train` scores, its
cross-fitted outcome model and DR scores (as `training.pipeline.select_policy` builds them),
then `offer_resolution` and `resolution_summary`, beside each offer's TRUE net value on the same
rows (from the world's logged truth). Prints per world: offers, rows per arm, the DR SE of an
offer's net, how many offers overlap the best one's interval, whether the best is told from the
runner-up, rows per arm to tell them apart, the true gap between the top two offers, and how
many offers' intervals cover their truth. Report only: nothing here changes a choice.
Run: `nice .venv/bin/python bench/offer_resolution.py [--seeds 2] [--trees 100]
[--sealed | --held-out | --fresh | --blind | --unseen] [--worlds a,b]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, quiet_logging  # noqa: E402

from features.build import build_matrix, infer_spec  # noqa: E402
from nba.blind_worlds import BLIND  # noqa: E402
from nba.fresh_worlds import FRESH  # noqa: E402
from nba.sealed_worlds import SEALED  # noqa: E402
from nba.unseen_worlds import UNSEEN  # noqa: E402
from nba.worlds import DESIGNS, HELD_OUT, Design, generate  # noqa: E402
from stats import aipw_scores  # noqa: E402
from training import crossfit  # noqa: E402
from training.learners import rows_per_arm  # noqa: E402
from training.pipeline import arm_index, economics, selection_mask  # noqa: E402
from training.resolution import offer_resolution, resolution_summary, top_two  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402

SETS = {"sealed": SEALED, "held_out": HELD_OUT, "fresh": FRESH, "blind": BLIND,
        "unseen": UNSEEN}


def one(name: str, design: Design, seed: int, settings: TrainSettings) -> list[str]:
    """One world x seed's row of the table."""
    world = generate(design, 100 + seed)
    catalog, exposures = world.catalog, world.exposures
    mask = selection_mask(exposures["customer_id"],
                          settings.selection_cap(len(catalog.offers) + 1), seed)
    frame = exposures[mask].reset_index(drop=True)
    spec = infer_spec(exposures, list(world.columns))
    X = build_matrix(frame, spec)
    logged = arm_index(frame["treatment"], catalog)
    customers = frame["customer_id"].astype(str).to_numpy()
    fold = crossfit.folds(customers, settings.folds, seed)
    n_arms = len(catalog.offers) + 1
    mu = crossfit.outcome_predictions(X, logged, frame["converted"].to_numpy(), fold,
                                      n_arms=n_arms, params=settings.params, seed=seed)
    dr = aipw_scores(logged, frame["propensity"].to_numpy(), frame["converted"].to_numpy(), mu)
    margins, costs = economics(catalog)
    table = offer_resolution(dr, logged, margins, costs, catalog.offer_ids, customers)
    per_arm = rows_per_arm(frame["treatment"].to_numpy())
    _, m = resolution_summary(table, top_two(dr, margins, costs, catalog.offer_ids, table,
                                             customers), per_arm)
    truth_rows = world.logged_truth[mask] if world.logged_truth is not None else None
    true_net = (None if truth_rows is None else
                dict(zip(catalog.offer_ids, (margins[1:] * (truth_rows[:, 1:] - truth_rows[:, :1])
                                             - costs[1:]).mean(axis=0), strict=True)))
    se = float(np.nanmedian((table["net_high"] - table["net_low"]) / (2 * 1.959964)))
    covered = "" if true_net is None else \
        f"{sum(r.net_low <= true_net[r.offer] <= r.net_high for r in table.itertuples())}"
    true_sorted = [] if true_net is None else sorted(true_net.values(), reverse=True)
    best_pick_truth = "" if true_net is None else f"{true_net[table['offer'].iloc[0]]:.3f}"
    return [name, str(seed), str(len(catalog.offers)), str(per_arm), f"{se:.3f}",
            str(int(m["offers_indistinguishable_from_best"])),
            "yes" if m.get("offer_best_resolved") else "no",
            f"{int(m['offer_rows_per_arm_to_resolve_top_two']):,}"
            if "offer_rows_per_arm_to_resolve_top_two" in m else "-",
            f"{true_sorted[0]:.3f}, {true_sorted[1]:.3f}" if len(true_sorted) > 1 else "",
            best_pick_truth, f"{covered}/{len(table)}"]


def main() -> None:
    """Parse the flags, run every world x seed, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--worlds", default="", help="comma-separated world names (default: all)")
    for key in SETS:
        p.add_argument(f"--{key.replace('_', '-')}", action="store_true")
    args = p.parse_args()
    quiet_logging()
    designs = next((SETS[k] for k in SETS if getattr(args, k)), DESIGNS)
    names = [n for n in args.worlds.split(",") if n] or list(designs)
    settings = TrainSettings(params=replace(BoosterParams(), n_estimators=args.trees))
    rows = []
    for name in names:
        for seed in range(args.seeds):
            started = time.perf_counter()
            rows.append(one(name, designs[name], seed, settings))
            print(f"{name} seed {seed}: {time.perf_counter() - started:.1f}s", flush=True)
    print(markdown_table(["world", "seed", "offers", "rows/arm", "offer net SE",
                          "overlap best", "best told", "rows/arm to tell top two",
                          "true top two", "truth of DR best", "intervals cover truth"], rows))


if __name__ == "__main__":
    main()
