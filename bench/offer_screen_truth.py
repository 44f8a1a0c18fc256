"""Many offers, few that matter: is the loss a per-customer winner's curse, and does an offer
screen fix it? (issue 12, many-offer diagnosis; out-of-fold truth, no choice noise).

Per world and seed, on the selection rows `training.pipeline.select_policy` scores: the DR
scores and every (learner, capacity)'s out-of-fold uplift exactly as selection computes them
(same sample, folds, seeds), then the TRUE value / the oracle on those rows of policies built
on that uplift:
- `full`, `shrink_0.5` and `best_single` (each fold's offer from the other folds), as the menu;
- `oracle_screen`: offers whose true uplift does not vary between customers compete by their
  (out-of-fold DR) average, the rest by their per-customer uplift: what a perfect screen adds;
- `target_<z>`: an estimated screen (`rules.offer_screen`); an offer keeps its per-customer
  uplift only where the DR effect on the rows its uplift ranks above their fold's median beats
  the rows below by z SE (the folds' contrasts pooled, clustered by customer), else it competes
  by its average; `pooled_<z>`: the same test pooled over folds (one median), as first measured;
- `delta_<z>`: the same with a decision test: ranking the offer by its uplift rather than its
  average raises the full policy's DR value by z SE;
each fold's screen from the other folds' rows (with their out-of-fold average effect), so it
is out of fold like the uplift. Also `curse`: the mean over customers of the chosen offer's
predicted net minus its true net (per customer, not / oracle), `kept`: the share of offers a
screen keeps (`kept flat` / `kept varying`: of the offers whose truth is flat / varies, `-` on
a world without such offers), and `noise_share`: the share of rows sent an offer whose true
uplift is constant.
Last, the menu: the candidate with the best cross-fitted DR value (best single, every pair x
full and shrink 0.5; then with every pair x target_0, or x pooled_0, added), scored by its truth.
Out-of-fold predictions are cached per world and seed (`--cache`), as they take minutes.
Run: `nice .venv/bin/python bench/offer_screen_truth.py --worlds many_offers,catalogue_16`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, quiet_logging  # noqa: E402

from features.build import build_matrix, infer_spec  # noqa: E402
from nba.blind_worlds import BLIND  # noqa: E402
from nba.worlds import DESIGNS, HELD_OUT, generate  # noqa: E402
from stats import aipw_scores, mean_estimate  # noqa: E402
from training import crossfit, rules  # noqa: E402
from training import evaluate as ev  # noqa: E402
from training.learners import CAPACITIES  # noqa: E402
from training.pipeline import arm_index, economics, selection_mask  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402

WORLDS = {**DESIGNS, **HELD_OUT, **BLIND}
Screen = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                   np.ndarray, float], np.ndarray]


def fitted_with(pairs: list[str], trees: int) -> dict[str, str]:
    """Per `learner_capacity` pair, the booster settings its models are fitted with: a pair's
    cached fits are stale once its capacity's settings change (low was redefined)."""
    params = TrainSettings(params=BoosterParams(n_estimators=trees, n_jobs=1)).params
    return {p: repr(CAPACITIES[p.split("_", 1)[1]].apply(params)) for p in pairs}


def drop_stale(data: dict[str, np.ndarray], fitted: dict[str, str], prefixes: tuple[str, ...]
               ) -> None:
    """Drop each pair's `<prefix><pair>` entries whose `s_<pair>` is not what it is fitted with."""
    for pair, settings in fitted.items():
        if str(data.get(f"s_{pair}", "")) != settings:
            for prefix in prefixes:
                data.pop(f"{prefix}{pair}", None)


def cached(name: str, seed: int, pairs: list[str], trees: int, cache: Path
           ) -> dict[str, np.ndarray]:
    """The world's selection rows' DR scores, folds, truth and each pair's out-of-fold uplift
    (`u_<learner>_<capacity>`), computed as `select_policy` does, from the cache if there."""
    path = cache / f"{name}_{seed}_{trees}.npz"
    data = dict(np.load(path)) if path.exists() else {}
    fitted = fitted_with(pairs, trees)
    drop_stale(data, fitted, ("u_",))
    if all(f"u_{p}" in data for p in pairs):
        return data
    design = WORLDS[name]
    world = generate(design, 100 + seed)
    settings = TrainSettings(params=BoosterParams(n_estimators=trees, n_jobs=1), seed=seed)
    cap = settings.selection_cap(len(world.catalog.offers) + 1)
    frame = world.exposures[selection_mask(world.exposures["customer_id"], cap, seed)]
    X = build_matrix(frame, infer_spec(frame, list(world.columns)))
    logged = arm_index(frame["treatment"], world.catalog)
    converted, propensity = frame["converted"].to_numpy(), frame["propensity"].to_numpy()
    customers = frame["customer_id"].astype(str).to_numpy()
    fold = crossfit.folds(customers, settings.folds, seed)
    if "dr" not in data:
        mu = crossfit.outcome_predictions(X, logged, converted, fold,
                                          n_arms=len(world.catalog.offers) + 1,
                                          params=settings.params, seed=seed)
        margins, costs = economics(world.catalog)
        data.update(dr=aipw_scores(logged, propensity, converted, mu), logged=logged, fold=fold,
                    margins=margins, costs=costs, truth=design.uplift(frame),
                    customers=np.unique(customers, return_inverse=True)[1])
    for pair in pairs:
        if f"u_{pair}" in data:
            continue
        learner, capacity = pair.split("_", 1)  # capacities may hold "_" (low_smooth)
        data[f"s_{pair}"] = np.array(fitted[pair])
        data[f"u_{pair}"] = crossfit.uplift_predictions(
            learner, X, frame["treatment"].to_numpy(dtype=object), converted,  # type: ignore[arg-type]
            propensity, fold, offer_ids=world.catalog.offer_ids,
            control_label=world.catalog.control_label,
            params=CAPACITIES[capacity].apply(settings.params), seed=seed).uplift
        print(f"  {name} seed {seed}: {learner}/{capacity} cross-fitted", file=sys.stderr,
              flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)
    return data


def greedy(net: np.ndarray) -> np.ndarray:
    """Arm per row as the pipeline picks it (`ev.greedy_arm`), every offer eligible."""
    return ev.greedy_arm(np.nan_to_num(net, nan=-np.inf), np.ones(net.shape, dtype=bool))


def screen_target(u: np.ndarray, population: np.ndarray, pseudo_net: np.ndarray,
                  margins: np.ndarray, costs: np.ndarray, fold: np.ndarray,
                  clusters: np.ndarray, z: float) -> np.ndarray:
    """`rules.offer_screen` (the `screened` rule): does the offer's DR effect on the rows its
    uplift ranks above their fold's median beat the rows below by z SE? (two groups per fold)"""
    return rules.offer_screen(u, (pseudo_net + costs) / margins, fold, clusters, z)


def screen_pooled(u: np.ndarray, population: np.ndarray, pseudo_net: np.ndarray,
                  margins: np.ndarray, costs: np.ndarray, fold: np.ndarray,
                  clusters: np.ndarray, z: float) -> np.ndarray:
    """The same two-group test with the rows pooled over folds (one median), as first
    measured: biased towards shutting (`rules.fold_slopes`)."""
    return screen_target(u, population, pseudo_net, margins, costs, np.zeros_like(fold),
                         clusters, z)


def screen_delta(u: np.ndarray, population: np.ndarray, pseudo_net: np.ndarray,
                 margins: np.ndarray, costs: np.ndarray, fold: np.ndarray,
                 clusters: np.ndarray, z: float) -> np.ndarray:
    """Per offer: does ranking it by its uplift rather than its average raise the full
    policy's DR value beyond z SE? (a decision test, one offer at a time)"""
    net = u * margins - costs
    served = ev.at_arms(pseudo_net, greedy(net))
    keep = np.zeros(u.shape[1], dtype=bool)
    for k in range(u.shape[1]):
        alternative = net.copy()
        alternative[:, k] = population[k] * margins[k] - costs[k]
        d = mean_estimate(served - ev.at_arms(pseudo_net, greedy(alternative)), clusters)
        keep[k] = d.value - z * d.se > 0.0
    return keep


def screened(u: np.ndarray, data: dict[str, np.ndarray], fold_population: np.ndarray,
             pseudo_net: np.ndarray, z: float, screen: Screen) -> tuple[np.ndarray, np.ndarray]:
    """Uplift with each fold's screened-out offers at their average, the screen decided on
    the other folds' rows; and each offer's share of folds that kept it."""
    fold, margins, costs = data["fold"], data["margins"][1:], data["costs"][1:]
    out, kept = np.empty_like(u), []
    for j in range(int(fold.max()) + 1):
        other = fold != j
        keep = screen(u[other], fold_population[j], pseudo_net[other], margins, costs,
                      fold[other], data["customers"][other], z)
        kept.append(keep)
        out[fold == j] = np.where(keep, u[fold == j], fold_population[j])
    return out, np.mean(kept, axis=0)


def world_seed(data: dict[str, np.ndarray], pairs: list[str], zs: list[float]
               ) -> dict[str, float]:
    """Every policy's true value / oracle on the rows (curse, kept, noise_share as named)."""
    margins, costs, fold = data["margins"][1:], data["costs"][1:], data["fold"]
    true_net = data["truth"] * margins - costs
    oracle = float(np.mean(np.maximum(true_net.max(axis=1), 0.0)))
    pseudo_net = (data["dr"][:, 1:] - data["dr"][:, :1]) * margins - costs
    fold_population = crossfit.arm_effects_out_of_fold(data["dr"], data["logged"], fold)
    flat = data["truth"].std(axis=0) <= 1e-9

    def value(u: np.ndarray) -> float:
        return float(ev.at_arms(true_net, greedy(u * margins - costs)).mean()) / oracle

    out = {"oracle (per customer)": oracle, "best_single": value(fold_population[fold])}
    menu = {"best_single": fold_population[fold]}  # the menu's DR argmax, without / with screen
    screens: dict[str, dict[str, np.ndarray]] = {}
    for pair in pairs:
        u = data[f"u_{pair}"]
        arms = greedy(u * margins - costs)
        out[f"{pair}/full"] = value(u)
        out[f"{pair}/curse"] = float(np.mean(ev.at_arms(u * margins - costs, arms)
                                             - ev.at_arms(true_net, arms)))
        out[f"{pair}/noise_share"] = float(np.mean((arms > 0) & flat[np.maximum(arms - 1, 0)]))
        out[f"{pair}/shrink_0.5"] = value(rules.apply(u, fold_population[fold], 0.5))
        menu[f"{pair}/full"] = u
        menu[f"{pair}/shrink_0.5"] = rules.apply(u, fold_population[fold], 0.5)
        out[f"{pair}/oracle_screen"] = value(np.where(flat, fold_population[fold], u))
        for name, screen in (("target", screen_target), ("pooled", screen_pooled),
                             ("delta", screen_delta)):
            for z in zs:
                uplift, kept = screened(u, data, fold_population, pseudo_net, z, screen)
                out[f"{pair}/{name}_{z:g}"] = value(uplift)
                out[f"{pair}/{name}_{z:g}/kept"] = float(kept.mean())
                if flat.any():
                    out[f"{pair}/{name}_{z:g}/kept flat"] = float(kept[flat].mean())
                if not flat.all():
                    out[f"{pair}/{name}_{z:g}/kept varying"] = float(kept[~flat].mean())
                if name in ("target", "pooled") and z == 0.0:
                    screens.setdefault(name, {})[f"{pair}/{name}_0"] = uplift

    def dr_choice(candidates: dict[str, np.ndarray]) -> float:
        """True value / oracle of the candidate with the best DR value (cross-fitted)."""
        dr = {k: ev.at_arms(pseudo_net, greedy(u * margins - costs)).mean()
              for k, u in candidates.items()}
        return value(candidates[max(dr, key=lambda k: dr[k])])

    out["menu: DR argmax (best_single, pairs x full, shrink_0.5)"] = dr_choice(menu)
    out["menu: the same + pairs x target_0"] = dr_choice({**menu, **screens["target"]})
    out["menu: the same + pairs x pooled_0"] = dr_choice({**menu, **screens["pooled"]})
    return out


def policy_table(table: dict[str, dict[str, list[float]]], names: list[str]) -> str:
    """Markdown policy x world: each figure's mean over seeds (`-` where a world has none),
    and its mean over the worlds that have it."""
    rows = []
    for key, worlds in table.items():
        means = [float(np.mean(worlds[n])) if n in worlds else np.nan for n in names]
        rows.append([key, *("-" if np.isnan(m) else f"{m:.3f}" for m in means),
                     f"{np.nanmean(means):.3f}"])
    return markdown_table(["policy", *names, "mean"], rows)


def main() -> None:
    """Print policy x world: means over seeds, and the mean over worlds."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--worlds", required=True,
                        help="comma-separated names of design, held-out or blind worlds")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pairs", default="x_low,t_low,x_base,t_base",
                        help="learner_capacity pairs, comma-separated")
    parser.add_argument("--z", default="0,1,1.645", help="screen thresholds, comma-separated")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/offer_screen_truth"))
    args = parser.parse_args()
    quiet_logging()
    names, pairs = args.worlds.split(","), args.pairs.split(",")
    zs = [float(z) for z in args.z.split(",")]
    table: dict[str, dict[str, list[float]]] = {}
    for name in names:
        for seed in range(args.seeds):
            figures = world_seed(cached(name, seed, pairs, args.trees, args.cache), pairs, zs)
            for key, figure in figures.items():
                table.setdefault(key, {}).setdefault(name, []).append(figure)
            print(f"{name} seed {seed} done", file=sys.stderr, flush=True)
    print(f"\nTrue value / oracle on the selection rows of policies on out-of-fold uplift, mean "
          f"over {args.seeds} seed(s) ({args.trees} trees)\n")
    print(policy_table(table, names), flush=True)


if __name__ == "__main__":
    main()
