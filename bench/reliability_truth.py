"""Does split-half reliability tell flat offers from varying ones? (issue 12, many offers;
out-of-fold truth on the selection rows, no choice noise).

Per world and seed, on the selection rows and folds `bench/offer_screen_truth.py` uses (its
cache), each (learner, capacity) is also fitted twice per fold on disjoint halves, by
customer, of the rows outside the fold (`split_half_uplift`). On each fold's own rows
the halves' covariance over the fold model's variance is the offer's reliability
(`split_half_reliability`): models fitted without the fold, outcomes of the fold unused.
Policies scored by their TRUE value / the oracle (per customer):
- `full`, `oracle_screen` (offers whose true uplift is flat compete by their out-of-fold DR
  average), `target_0` (`rules.offer_screen`, the `screened` rule);
- `rel_screen_<z>`: an offer keeps its per-customer uplift where its split-half covariance is
  above z SE (over rows, clustered by customer), else competes by its average;
- `rel_shrink`: each offer's uplift shrunk towards its average by its reliability;
- `rel_sb_shrink`: the same with the half-model reliability stepped up by Spearman-Brown;
- `placebo_max` / `placebo_q95`: the halves refitted with the arms shuffled (no offer varies) give
  each fold a null covariance per offer; an offer is kept above the fold's null maximum over
  offers / null mean + 1.645 sd; `placebo_shrink`: the reliability less the null's mean.
Per offer (`--per-offer`): the true sd of its uplift, its mean reliability and covariance
z-score over folds and seeds, and the shares of folds each screen kept it.
Last, the menu's DR argmax (best single, pairs x full and shrink_0.5) with and without the
pairs x rel_shrink / rel_screen_0 added.
Run: `nice .venv/bin/python bench/reliability_truth.py --worlds no_heterogeneity,catalogue_16`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, quiet_logging  # noqa: E402
from offer_screen_truth import (  # noqa: E402
    WORLDS,
    cached,
    drop_stale,
    fitted_with,
    greedy,
    policy_table,
    screen_target,
    screened,
)

from features.build import build_matrix, infer_spec  # noqa: E402
from nba.worlds import generate  # noqa: E402
from stats import mean_variance  # noqa: E402
from training import crossfit, rules  # noqa: E402
from training import evaluate as ev  # noqa: E402
from training.learners import CAPACITIES, LEARNERS, fit_learner  # noqa: E402
from training.pipeline import selection_mask  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402
from training.uplift import Learner  # noqa: E402


def half_masks(customer_ids: np.ndarray, rows: np.ndarray, seed: int) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Two disjoint halves of `rows` (a boolean mask), split by customer at random."""
    groups = np.asarray(customer_ids).astype(str)
    names = np.unique(groups[rows])
    first = set(np.random.default_rng(seed).permutation(names)[: len(names) // 2].tolist())
    in_first = np.fromiter((g in first for g in groups), dtype=bool, count=len(groups))
    return rows & in_first, rows & ~in_first


def split_half_uplift(kind: Learner, X: np.ndarray, treatment: np.ndarray,
                      converted: np.ndarray, propensity: np.ndarray, fold: np.ndarray,
                      customer_ids: np.ndarray, *, offer_ids: tuple[str, ...],
                      control_label: str, params: BoosterParams, seed: int,
                      placebo: bool = False) -> np.ndarray:
    """Per row: two uplift predictions (rows, 2, n_offers) by models of the same learner fitted
    on disjoint halves, by customer, of the rows outside the row's fold.

    Their fitting noise is independent, so across rows cov(u_A, u_B) estimates the variance of
    the per-customer signal the learner picks up (`split_half_reliability`); no outcome
    of a fold enters its own rows' predictions. `placebo`: each half's arms shuffled between
    its rows (propensity: the arm's share), so no offer's effect varies: what the halves then
    agree on is the learner's own bias, a null for the real halves' covariance.
    """
    out = np.full((len(X), 2, len(offer_ids)), np.nan)
    for j in np.unique(fold):
        test = fold == j
        for h, half in enumerate(half_masks(customer_ids, ~test, seed + 7919 * (int(j) + 1))):
            arms, shares = treatment[half], propensity[half]
            if placebo:
                arms = np.random.default_rng(seed + 31 * int(j) + h).permutation(arms)
                _, which, counts = np.unique(arms, return_inverse=True, return_counts=True)
                shares = (counts / len(arms))[which]
            model = fit_learner(kind, X[half], arms, converted[half], shares,
                                control_label=control_label, params=params, seed=seed + h)
            columns = np.array([offer_ids.index(o) for o in model.offer_ids if o in offer_ids],
                               dtype=np.int64)
            modelled = [i for i, o in enumerate(model.offer_ids) if o in offer_ids]
            out[np.ix_(np.flatnonzero(test), np.array([h]), columns)] = \
                model.predict(X[test])[0][:, modelled][:, None, :]
    return out


def split_half_reliability(uplift: np.ndarray, halves: np.ndarray, clusters: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per offer over the rows: (reliability, split-half covariance, its SE by customer).

    `halves` (rows, 2, n_offers) are two models' uplift fitted on disjoint halves of the
    customers (`split_half_uplift`): their fitting noise is independent, so
    cov(u_A, u_B) across rows estimates the variance of the per-customer signal the learner
    picks up, while var(uplift) also holds the noise. Their ratio is the share of the uplift's
    spread that is signal: ~0 for an offer whose effect is the same for everyone, and the
    coefficient of the best linear predictor of that signal from the uplift (the empirical-Bayes
    shrinkage towards the offer's average), clipped to [0, 1]. Outcomes are not used, so it has
    none of the DR slope's outcome noise (`fold_slopes`). The SE is over rows (clustered by
    `clusters`) for fixed models: it leaves out the models' own fitting noise.
    """
    n_offers = uplift.shape[1]
    reliability, cov, se = np.zeros(n_offers), np.zeros(n_offers), np.full(n_offers, np.inf)
    for k in range(n_offers):
        u, a, b = uplift[:, k], halves[:, 0, k], halves[:, 1, k]
        rows = np.isfinite(u) & np.isfinite(a) & np.isfinite(b)
        if rows.sum() < 2:
            continue
        da, db, du = a[rows] - a[rows].mean(), b[rows] - b[rows].mean(), u[rows] - u[rows].mean()
        cov[k], variance, _ = mean_variance(da * db, clusters[rows])
        spread = float(np.mean(du * du))
        if spread > 0.0:
            reliability[k] = float(np.clip(cov[k] / spread, 0.0, 1.0))
        se[k] = float(np.sqrt(variance))
    return reliability, cov, se


def reliability_by_fold(uplift: np.ndarray, halves: np.ndarray, fold: np.ndarray,
                        clusters: np.ndarray, screen_z: float | None = None) -> np.ndarray:
    """Per fold and offer (k, n_offers): the split-half reliability on the fold's own rows,
    whose uplift and halves come from models fitted without them (`crossfit`), so no outcome
    of a fold sets its own parameter. `screen_z`: 1 where the split-half covariance is above
    z SE, else 0 (a screen), instead of the reliability (a shrinkage).
    """
    out = []
    for j in range(int(fold.max()) + 1):
        rows = fold == j
        reliability, cov, se = split_half_reliability(uplift[rows], halves[rows],
                                                      clusters[rows])
        out.append(reliability if screen_z is None
                   else (cov - screen_z * se > 0.0).astype(np.float64))
    return np.stack(out)


def halves_cached(name: str, seed: int, pairs: list[str], trees: int, cache: Path
                  ) -> dict[str, np.ndarray]:
    """Each pair's split-half uplift per fold (`h_<pair>`, rows x 2 x offers) and its placebo
    (`p_<pair>`), cached with the capacity settings they were fitted with (`s_<pair>`)."""
    path = cache / f"{name}_{seed}_{trees}_halves.npz"
    data = dict(np.load(path)) if path.exists() else {}
    fitted = fitted_with(pairs, trees)
    drop_stale(data, fitted, ("h_", "p_"))
    if all(f"h_{p}" in data and f"p_{p}" in data for p in pairs):
        return data
    world = generate(WORLDS[name], 100 + seed)
    settings = TrainSettings(params=BoosterParams(n_estimators=trees, n_jobs=1), seed=seed)
    cap = settings.selection_cap(len(world.catalog.offers) + 1)
    frame = world.exposures[selection_mask(world.exposures["customer_id"], cap, seed)]
    X = build_matrix(frame, infer_spec(frame, list(world.columns)))
    customers = frame["customer_id"].astype(str).to_numpy()
    fold = crossfit.folds(customers, settings.folds, seed)
    for pair in pairs:
        data[f"s_{pair}"] = np.array(fitted[pair])
        for key, placebo in ((f"h_{pair}", False), (f"p_{pair}", True)):
            if key in data:
                continue
            learner, capacity = pair.split("_", 1)
            data[key] = split_half_uplift(
                learner, X, frame["treatment"].to_numpy(dtype=object),  # type: ignore[arg-type]
                frame["converted"].to_numpy(), frame["propensity"].to_numpy(), fold, customers,
                offer_ids=world.catalog.offer_ids, control_label=world.catalog.control_label,
                params=CAPACITIES[capacity].apply(settings.params), seed=seed, placebo=placebo)
            print(f"  {name} seed {seed}: {key} split halves fitted", file=sys.stderr,
                  flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)
    return data


def spearman_brown(halves: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Per fold and offer: the halves' correlation stepped up to full data, 2r / (1 + r)."""
    out = []
    for j in range(int(fold.max()) + 1):
        a, b = halves[fold == j, 0], halves[fold == j, 1]
        da, db = a - a.mean(axis=0), b - b.mean(axis=0)
        denominator = np.sqrt((da * da).mean(axis=0) * (db * db).mean(axis=0))
        r = np.clip(np.divide((da * db).mean(axis=0), denominator,
                              out=np.zeros(a.shape[1]), where=denominator > 0), 0.0, 1.0)
        out.append(2 * r / (1 + r))
    return np.stack(out)


def world_seed(data: dict[str, np.ndarray], halves: dict[str, np.ndarray], pairs: list[str],
               zs: list[float]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Policies' true value / oracle, and per-offer diagnostics (pair/name -> per offer)."""
    margins, costs, fold = data["margins"][1:], data["costs"][1:], data["fold"]
    clusters = data["customers"]
    true_net = data["truth"] * margins - costs
    oracle = float(np.mean(np.maximum(true_net.max(axis=1), 0.0)))
    pseudo_net = (data["dr"][:, 1:] - data["dr"][:, :1]) * margins - costs
    fold_population = crossfit.arm_effects_out_of_fold(data["dr"], data["logged"], fold)
    population = fold_population[fold]
    flat = data["truth"].std(axis=0) <= 1e-9

    def value(u: np.ndarray) -> float:
        return float(ev.at_arms(true_net, greedy(u * margins - costs)).mean()) / oracle

    out = {"best_single": value(population)}
    offers: dict[str, np.ndarray] = {"true sd": data["truth"].std(axis=0)}
    menu = {"best_single": population}
    added: dict[str, np.ndarray] = {}
    for pair in pairs:
        u, h = data[f"u_{pair}"], halves[f"h_{pair}"]
        out[f"{pair}/full"] = value(u)
        out[f"{pair}/oracle_screen"] = value(np.where(flat, population, u))
        target, kept_target = screened(u, data, fold_population, pseudo_net, 0.0, screen_target)
        out[f"{pair}/target_0"] = value(target)
        menu[f"{pair}/full"], menu[f"{pair}/shrink_0.5"] = u, rules.apply(u, population, 0.5)
        reliability = reliability_by_fold(u, h, fold, clusters)
        shrunk = rules.apply(u, population, reliability[fold])
        out[f"{pair}/rel_shrink"] = value(shrunk)
        out[f"{pair}/rel_sb_shrink"] = value(rules.apply(u, population,
                                                         spearman_brown(h, fold)[fold]))
        added[f"{pair}/rel_shrink"] = shrunk
        offers[f"{pair} rel"] = reliability.mean(axis=0)
        offers[f"{pair} kept target_0"] = kept_target
        zscores = []
        for j in range(int(fold.max()) + 1):
            _, cov, se = split_half_reliability(u[fold == j], h[fold == j],
                                                clusters[fold == j])
            zscores.append(cov / se)
        offers[f"{pair} cov z"] = np.mean(zscores, axis=0)
        for z in zs:
            keep = reliability_by_fold(u, h, fold, clusters, screen_z=z)
            screened_u = rules.apply(u, population, keep[fold])
            out[f"{pair}/rel_screen_{z:g}"] = value(screened_u)
            offers[f"{pair} kept rel_{z:g}"] = keep.mean(axis=0)
            if flat.any():
                out[f"{pair}/rel_screen_{z:g}/kept flat"] = float(keep[:, flat].mean())
            if not flat.all():
                out[f"{pair}/rel_screen_{z:g}/kept varying"] = float(keep[:, ~flat].mean())
            if z == zs[0]:
                added[f"{pair}/rel_screen_{z:g}"] = screened_u
        # the placebo's halves (arms shuffled: no offer varies) give each fold a null of the
        # covariance the learner's own bias reaches, over the offers
        real, null = [], []
        for j in range(int(fold.max()) + 1):
            rows = fold == j
            real.append(split_half_reliability(u[rows], h[rows], clusters[rows])[1])
            null.append(split_half_reliability(
                u[rows], halves[f"p_{pair}"][rows], clusters[rows])[1])
        real_cov, null_cov = np.stack(real), np.stack(null)
        spread = np.stack([np.var(u[fold == j], axis=0) for j in range(len(real))])
        for label, bound in (("max", null_cov.max(axis=1)),
                             ("q95", null_cov.mean(axis=1) + 1.645 * null_cov.std(axis=1))):
            keep = (real_cov > bound[:, None]).astype(np.float64)
            out[f"{pair}/placebo_{label}"] = value(rules.apply(u, population, keep[fold]))
            offers[f"{pair} kept placebo_{label}"] = keep.mean(axis=0)
            if flat.any():
                out[f"{pair}/placebo_{label}/kept flat"] = float(keep[:, flat].mean())
            if not flat.all():
                out[f"{pair}/placebo_{label}/kept varying"] = float(keep[:, ~flat].mean())
        corrected = np.clip(np.divide(real_cov - null_cov.mean(axis=1, keepdims=True), spread,
                                      out=np.zeros_like(spread), where=spread > 0), 0.0, 1.0)
        out[f"{pair}/placebo_shrink"] = value(rules.apply(u, population, corrected[fold]))
        offers[f"{pair} null cov/var"] = (null_cov / np.where(spread > 0, spread, np.nan)
                                          ).mean(axis=0)
        if flat.any():
            out[f"{pair}/target_0/kept flat"] = float(kept_target[flat].mean())
        if not flat.all():
            out[f"{pair}/target_0/kept varying"] = float(kept_target[~flat].mean())

    def dr_choice(candidates: dict[str, np.ndarray]) -> float:
        dr = {k: ev.at_arms(pseudo_net, greedy(u * margins - costs)).mean()
              for k, u in candidates.items()}
        return value(candidates[max(dr, key=lambda k: dr[k])])

    out["menu: DR argmax (best_single, pairs x full, shrink_0.5)"] = dr_choice(menu)
    out["menu: the same + pairs x rel_shrink, rel_screen"] = dr_choice({**menu, **added})
    out["menu: the same + pairs x rel_shrink only"] = dr_choice(
        {**menu, **{k: v for k, v in added.items() if k.endswith("rel_shrink")}})
    return out, offers


def main() -> None:
    """Print policy x world (means over seeds, and over worlds); per offer with --per-offer."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--worlds", required=True,
                        help=f"comma-separated design, held-out or blind worlds, of: "
                             f"{', '.join(WORLDS)}")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds 0..n-1 per world (world seed 100 + seed)")
    parser.add_argument("--pairs", default="x_low,t_low",
                        help="comma-separated learner_capacity (or learner/capacity) pairs")
    parser.add_argument("--z", default="0,1.645", help="screen thresholds, comma-separated")
    parser.add_argument("--trees", type=int, default=100, help="LightGBM trees of every model")
    parser.add_argument("--per-offer", action="store_true",
                        help="also a table per world of each offer's reliability and screens")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/offer_screen_truth"),
                        help="directory of the out-of-fold fits (shared with "
                             "offer_screen_truth.py) and of the split halves")
    args = parser.parse_args()
    names = args.worlds.split(",")
    if unknown := [n for n in names if n not in WORLDS]:
        parser.error(f"unknown world(s) {', '.join(unknown)}; use {', '.join(WORLDS)}")
    pairs = [p.replace("/", "_", 1) for p in args.pairs.split(",")]
    for pair in pairs:
        learner, _, capacity = pair.partition("_")
        if learner not in LEARNERS or capacity not in CAPACITIES:
            parser.error(f"unknown pair {pair}: learner one of {', '.join(LEARNERS)}, capacity "
                         f"one of {', '.join(CAPACITIES)}, as x_low or x/low")
    quiet_logging()
    zs = [float(z) for z in args.z.split(",")]
    table: dict[str, dict[str, list[float]]] = {}
    per_offer: dict[str, dict[str, list[np.ndarray]]] = {}
    for name in names:
        for seed in range(args.seeds):
            data = cached(name, seed, pairs, args.trees, args.cache)
            figures, offers = world_seed(
                data, halves_cached(name, seed, pairs, args.trees, args.cache), pairs, zs)
            for key, figure in figures.items():
                table.setdefault(key, {}).setdefault(name, []).append(figure)
            for key, values in offers.items():
                per_offer.setdefault(name, {}).setdefault(key, []).append(values)
            print(f"{name} seed {seed} done", file=sys.stderr, flush=True)
    print(f"\nTrue value / oracle on the selection rows, out of fold, mean over {args.seeds} "
          f"seed(s) ({args.trees} trees)\n")
    print(policy_table(table, names), flush=True)
    if args.per_offer:
        for name in names:
            columns = {k: np.mean(v, axis=0) for k, v in per_offer[name].items()}
            print(f"\n{name}: per offer, mean over seeds (and folds)\n")
            print(markdown_table(["offer", *columns],
                                 [[str(k), *(f"{c[k]:.3f}" for c in columns.values())]
                                  for k in range(len(columns["true sd"]))]))


if __name__ == "__main__":
    main()
