"""Choice rules compared offline on the same menu (issue 12: the choice's winner's curse).

Per world x seed the menu is scored once as training does (`selection_truth.selection_with_truth`:
every candidate's out-of-fold arms and per-row DR profit terms on the selection rows, no refit)
and cached as .npz; every choice rule of `CHOICES` below (plus the existing one-SE
tolerance and nested check, for reference) is then applied to the same cache, followed by the
contact guard as in training, and scored by the TRUE value of its pick's out-of-fold arms / the
oracle on the same rows. "argmax" must reproduce the choice training served on those rows.
Run: `nice .venv/bin/python bench/choice_truth.py --sets design,unseen --seeds 3
--cache /tmp/choice_cache [--out choice_truth.md]`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, publish, quiet_logging  # noqa: E402
from selection_truth import selection_with_truth, true_value  # noqa: E402

from nba.blind_worlds import BLIND  # noqa: E402
from nba.fresh_worlds import FRESH  # noqa: E402
from nba.unseen_worlds import UNSEEN  # noqa: E402
from nba.worlds import DESIGNS, HELD_OUT, Design, generate  # noqa: E402
from training import crossfit, select  # noqa: E402
from training.learners import CAPACITIES  # noqa: E402
from training.select import Candidate  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402

#: how the menu's per-row DR terms choose a candidate (before the contact guard):
#: argmax: the best mean, as `choose` at tolerance 0; bagged: the most frequent argmax over
#: customer bootstrap resamples; eb_shrunk: each gain over the best single offer shrunk on its
#: own towards 0; eb_posterior: posterior mean gains under a normal prior, correlations kept
CHOICES = ("argmax", "bagged", "eb_shrunk", "eb_posterior")


def choose_by_evidence(terms: np.ndarray, clusters: np.ndarray,
                       candidates: Sequence[Candidate], choice: str = "argmax", seed: int = 0,
                       resamples: int = 200) -> Candidate:
    """The candidate `choice` (one of CHOICES) picks from per-row DR profit terms
    (candidates x rows, in `candidates`' order), clustered by customer.

    The argmax of ~19 noisy, correlated values picks noise as often as signal (the winner's
    curse); the other choices spend the same evidence more cautiously. Ties go to the simplest.
    """
    terms = np.asarray(terms, dtype=np.float64)
    if terms.shape[0] != len(candidates):
        raise ValueError(f"{terms.shape[0]} rows of terms for {len(candidates)} candidates")
    if choice == "argmax":
        return _simplest_best(terms.mean(axis=1), candidates)
    if choice == "bagged":
        return bagged_choice(terms, clusters, candidates, seed, resamples)
    if choice not in ("eb_shrunk", "eb_posterior"):
        raise ValueError(f"unknown choice {choice!r}; use {', '.join(CHOICES)}")
    base = next((i for i, c in enumerate(candidates) if c.rule == "best_single"), None)
    if base is None:
        raise ValueError(f"choice {choice} shrinks gains over best_single, not on the menu")
    gains = terms - terms[base]
    shrunk = eb_shrunk_gains(gains, clusters) if choice == "eb_shrunk" \
        else eb_posterior_gains(gains, clusters)
    return _simplest_best(shrunk, candidates)


def _simplest_best(values: np.ndarray, candidates: Sequence[Candidate]) -> Candidate:
    """The simplest candidate whose value equals the best."""
    return min((c for c, v in zip(candidates, values, strict=True) if v >= values.max()),
               key=lambda c: c.complexity)


def cluster_sums(values: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Per customer, the sum of each row of `values` (k x rows) over their rows: (customers, k)."""
    _, which = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.zeros((which.max() + 1, values.shape[0]))
    np.add.at(sums, which, values.T)
    return sums


def bagged_choice(terms: np.ndarray, clusters: np.ndarray, candidates: Sequence[Candidate],
                  seed: int, resamples: int = 200) -> Candidate:
    """The candidate the argmax picks most often over `resamples` bootstrap resamples of
    customers (bagging, Breiman 1996; the selection frequency of stability selection,
    Meinshausen and Buehlmann 2010): a winner by a noise spike on a few customers rarely
    wins a resample, one ahead on most customers wins most. Ties to the simplest."""
    sums = cluster_sums(terms, clusters)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=resamples)
    wins = np.zeros(len(candidates))
    for total in weights @ sums:  # per resample: the candidates' total profit (same rows each)
        wins[candidates.index(_simplest_best(total, candidates))] += 1
    return _simplest_best(wins, candidates)


def _gain_covariance(gains: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean per-row gains (k) and their cluster-robust covariance (k x k), as
    `stats.mean_estimate` computes each variance (G / (G - 1) small-sample factor)."""
    means = gains.mean(axis=1)
    centred = cluster_sums(gains - means[:, None], clusters)
    units, n = len(centred), gains.shape[1]
    return means, centred.T @ centred / n**2 * units / max(units - 1, 1)


def eb_shrunk_gains(gains: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Each gain over the baseline times tau^2 / (tau^2 + se^2), tau^2 = max(0, mean(gain^2 -
    se^2)) over the candidates that differ from the baseline (moment estimate of the spread
    of true gains, James-Stein / Efron-Morris); gains of zero variance stay as they are (0)."""
    means, cov = _gain_covariance(gains, clusters)
    var = np.diag(cov)
    moving = var > 0
    if not moving.any():
        return means
    tau2 = max(0.0, float(np.mean(means[moving] ** 2 - var[moving])))
    factor = np.where(moving, tau2 / np.maximum(tau2 + var, 1e-300), 1.0)
    return means * factor


def eb_posterior_gains(gains: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Posterior mean gains over the baseline under theta ~ N(mu 1, tau^2 I), the estimates
    ~ N(theta, Sigma) with Sigma their clustered covariance, a flat prior on mu and a uniform
    one on tau (hierarchical normal model; the uniform prior on the scale as Gelman 2006,
    "Prior distributions for variance parameters in hierarchical models", advises). Its
    posterior means are the selection-bias correction of the max (Efron 2011, "Tweedie's
    formula and selection bias"); averaging over tau rather than plugging in its maximum
    likelihood estimate avoids the boundary tau = 0, where every candidate would tie.
    Unlike `eb_shrunk_gains` it keeps the correlations: candidates that differ by a
    well-measured margin stay apart however noisy their common level is. Candidates with zero
    variance keep their gain (the baseline's 0); twins score as their first twin."""
    means, cov = _gain_covariance(gains, clusters)
    var = np.diag(cov)
    keep = [i for i in range(len(means)) if var[i] > 0
            and not any(np.array_equal(gains[i], gains[j]) for j in range(i))]
    out = means.copy()
    if not keep:
        return out
    g, sigma = means[keep], cov[np.ix_(keep, keep)]
    ones, eye = np.ones(len(g)), np.eye(len(g))
    scale = float(max(np.abs(g).max(), np.sqrt(var[keep].max())))
    taus = scale * np.geomspace(1e-3, 1e1, 161)  # a geometric grid: d tau is proportional to tau
    logs, posteriors = [], []
    for tau in taus:
        a = sigma + tau**2 * eye + 1e-12 * scale**2 * eye
        inv = np.linalg.inv(a)
        precision = float(ones @ inv @ ones)
        mu = float(ones @ inv @ g) / precision
        r = g - mu
        # log p(g | tau) with mu integrated out under its flat prior, + log d tau
        logs.append(-0.5 * (np.linalg.slogdet(a)[1] + np.log(precision) + r @ inv @ r)
                    + np.log(tau))
        posteriors.append(mu + tau**2 * (inv @ r))
    weights = np.exp(np.array(logs) - max(logs))
    posterior = weights @ np.array(posteriors) / weights.sum()
    out[keep] = posterior
    for i in range(len(means)):  # twins of a kept candidate score as it does
        if i not in keep and var[i] > 0:
            out[i] = out[next(j for j in keep if np.array_equal(gains[i], gains[j]))]
    return out


SETS: dict[str, dict[str, Design]] = {"design": DESIGNS, "held_out": HELD_OUT, "fresh": FRESH,
                                      "blind": BLIND, "unseen": UNSEEN}
HETEROGENEOUS = 1.5  # oracle / best single at which a world counts as worth targeting (worlds.py)
MOVED = 0.005  # a rule's pick truly differs from argmax's by more than this x oracle
STRICT = 0.02  # a seed is below the best single offer when its true gap exceeds this x oracle


@dataclass(frozen=True)
class Cached:
    """One world x seed's menu on its selection rows: what every choice rule needs, and the
    truth to score it."""

    names: list[str]
    terms: np.ndarray  # candidates x rows: per-row DR profit terms
    arms: np.ndarray  # candidates x rows: out-of-fold arm per row
    clusters: np.ndarray  # customer id per row
    net: np.ndarray  # rows x offers: true incremental profit
    table: pd.DataFrame  # the menu's DR table (for the contact guard)
    served: str  # what training served on these rows (after the guard)
    full_choice: str  # training's choice before the guard


def cache_path(cache: Path, world_set: str, name: str, seed: int, trees: int) -> Path:
    """Where one world x seed's menu at `trees` trees is kept."""
    return cache / f"{world_set}-{name}-{seed}-{trees}.npz"


def fingerprint(settings: TrainSettings) -> str:
    """The settings a cached menu was scored with, beside the world, seed and trees of its file
    name: the booster, the menu (learners, each capacity as it applies to the booster, rules),
    selection's caps and folds and the choice's own settings. A cache whose fingerprint differs
    is stale (as `offer_screen_truth.cached` keeps `s_<pair>`: `low` was once redefined)."""
    params = settings.params
    return repr((params, settings.learners,
                 {c: CAPACITIES[c].apply(params) for c in settings.capacities}, settings.rules,
                 settings.folds, settings.select_rows, settings.select_rows_per_arm,
                 settings.tolerance, settings.nested_z, settings.nested_folds,
                 settings.contact_z, settings.shrinkage))


def is_current(path: Path, settings: TrainSettings) -> bool:
    """Whether `path` holds a menu scored with these settings."""
    if not path.exists():
        return False
    with np.load(path) as z:
        return "settings" in z.files and str(z["settings"]) == fingerprint(settings)


def build_cache(path: Path, design: Design, seed: int, base: TrainSettings) -> None:
    """Score the menu once on this world x seed and write it to `path`."""
    settings = replace(base, seed=seed)
    selection, sample, net = selection_with_truth(generate(design, 100 + seed), settings)
    names = list(selection.table["candidate"])
    clusters = sample["customer_id"].astype(str).to_numpy().astype("U")
    np.savez_compressed(
        path, settings=np.array(fingerprint(settings)), names=np.array(names),
        terms=np.stack([selection.terms[n] for n in names]),
        arms=np.stack([selection.arms[n] for n in names]), clusters=clusters, net=net,
        dr=selection.table["dr"].to_numpy(), dr_low=selection.table["dr_low"].to_numpy(),
        dr_high=selection.table["dr_high"].to_numpy(), served=selection.chosen.name,
        full_choice=(selection.full_choice or selection.chosen).name)


def load(path: Path) -> Cached:
    """One cached world x seed."""
    with np.load(path) as z:
        names = [str(n) for n in z["names"]]
        table = pd.DataFrame({"candidate": names, "dr": z["dr"], "dr_low": z["dr_low"],
                              "dr_high": z["dr_high"]})
        return Cached(names, z["terms"], z["arms"], z["clusters"], z["net"], table,
                      str(z["served"]), str(z["full_choice"]))


def reference_rules(seed: int, settings: TrainSettings
                    ) -> dict[str, Callable[[Cached, list[Candidate]], Candidate]]:
    """Choices already in training, for reference: the one-SE rule and the nested check."""
    def one_se(c: Cached, candidates: list[Candidate]) -> Candidate:
        terms = dict(zip(c.names, c.terms, strict=True))
        gap, se = select.gaps_to_best(terms, c.names, c.clusters)
        return select.choose(pd.DataFrame({"candidate": c.names, "gap_to_best": gap,
                                           "gap_se": se}), candidates, 1.0)

    def nested(c: Cached, candidates: list[Candidate]) -> Candidate:
        chosen = choose_by_evidence(c.terms, c.clusters, candidates, "argmax", seed)
        if chosen.rule in select.SINGLE_RULES or "best_single" not in [x.rule for x in candidates]:
            return chosen
        terms = dict(zip(c.names, c.terms, strict=True))
        single = next(x for x in candidates if x.rule == "best_single")
        fold = crossfit.folds(c.clusters, settings.nested_folds, seed + 1)
        result = select.nested_selection(terms, candidates, terms[single.name], fold,
                                         c.clusters)
        return chosen if select.beats_baseline(result, 0.0) else single

    return {"one_se": one_se, "nested_z0": nested}


def run_rules(c: Cached, seed: int, settings: TrainSettings, fixed: tuple[str, ...] = ()
              ) -> dict[str, tuple[str, float]]:
    """Per rule: (the candidate served after the contact guard, its truth / oracle); `fixed`
    candidates (no choice, the guard still applies) for reference."""
    candidates = [Candidate(*n.split("/")) for n in c.names]
    single = next((x for x in candidates if x.rule == "best_single"), None)
    oracle = float(np.mean(np.maximum(c.net.max(axis=1), 0)))

    def by_evidence(choice: str) -> Callable[[Cached, list[Candidate]], Candidate]:
        return lambda cc, cands: choose_by_evidence(cc.terms, cc.clusters, cands, choice, seed)

    rules = {name: by_evidence(name) for name in CHOICES}
    rules.update(reference_rules(seed, settings))
    for name in fixed:
        rules[name] = lambda cc, cands, name=name: Candidate(*name.split("/"))  # type: ignore[misc]
    out = {}
    for name, rule in rules.items():
        pick = rule(c, candidates)
        if settings.contact_z is not None:
            pick, _ = select.guard_contacts(c.table, pick, single, settings.contact_z)
        value = 0.0 if pick.rule == "nobody" else true_value(c.net, c.arms[c.names.index(
            pick.name)])
        out[name] = (pick.name, value / oracle)
    truths = [true_value(c.net, arms) / oracle for arms in c.arms]
    best = int(np.argmax(truths))  # no rule: the menu's truly best, for the headroom
    out["truly_best"] = (c.names[best], max(truths[best], 0.0))
    if out["argmax"][0] != c.served:
        raise RuntimeError(f"argmax serves {out['argmax'][0]}, training served {c.served}")
    return out


def summarize(results: dict[str, dict[str, list[dict[str, tuple[str, float]]]]],
              truths: dict[str, dict[str, list[tuple[float, float]]]], trees: int) -> str:
    """Per world set: mean policy/oracle over heterogeneous worlds, seeds below the best single
    offer (strict), and per world; the menu's models had `trees` trees."""
    parts = []
    rules = list(next(iter(next(iter(results.values())).values()))[0])
    overview = []
    for world_set, worlds in results.items():
        per_world_rows: list[list[str]] = []
        het_means: dict[str, list[float]] = {r: [] for r in rules}
        below = {r: 0 for r in rules}
        for world, seeds in worlds.items():
            oracle = float(np.mean([t[0] for t in truths[world_set][world]]))
            best = float(np.mean([t[1] for t in truths[world_set][world]]))
            het = oracle >= HETEROGENEOUS * best
            cells = []
            for r in rules:
                ratios = [s[r][1] for s in seeds]
                lost = sum(1 for s, (o, b) in zip(seeds, truths[world_set][world], strict=True)
                           if (b - s[r][1] * o) > STRICT * o)
                below[r] += lost
                if het:
                    het_means[r].append(float(np.mean(ratios)))
                cells.append(f"{np.mean(ratios):.3f}" + (f" ({lost}↓)" if lost else ""))
            per_world_rows.append([world + (" *" if het else ""), f"{best / oracle:.2f}",
                                   *cells])
        parts.append(f"\n#### {world_set} ({len(next(iter(worlds.values())))} seeds; * "
                     f"heterogeneous: oracle >= {HETEROGENEOUS}x best single; (n↓): seeds "
                     f"below the best single offer by > {STRICT:.0%} of the oracle)\n\n"
                     + markdown_table(["world", "best single / oracle", *rules],
                                      per_world_rows))
        moves = {r: [s[r][1] - s["argmax"][1] for seeds in worlds.values() for s in seeds]
                 for r in rules}
        overview.append([world_set, *((f"{np.mean(het_means[r]):.3f}" if het_means[r] else "-")
                                      + f" / {below[r]} / +{sum(d > MOVED for d in moves[r])}"
                                      f" -{sum(d < -MOVED for d in moves[r])}" for r in rules)])
    head = (f"\nPer world set ({trees} trees): mean policy/oracle over heterogeneous worlds / "
            f"seeds below the best single offer (all worlds) / seeds truly better + and worse "
            f"- than argmax's pick by more than {MOVED} of the oracle\n\n"
            + markdown_table(["world set", *rules], overview))
    return head + "\n" + "\n".join(parts)


def main() -> None:
    """Cache every world x seed's menu (once), then compare the choice rules on it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="design,unseen,blind,held_out,fresh",
                        help=f"comma-separated world sets, of: {', '.join(SETS)}")
    parser.add_argument("--worlds", default=None,
                        help="comma-separated worlds of those sets (default all)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds 0..n-1 per world (world seed 100 + seed)")
    parser.add_argument("--trees", type=int, default=100,
                        help="LightGBM trees of every menu model (part of the cache's key)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/choice_cache"),
                        help="directory of the scored menus, one .npz per set x world x seed x "
                             "trees; rebuilt when the settings differ")
    parser.add_argument("--fixed", default="",
                        help="comma-separated menu candidates (learner/capacity/rule) served "
                             "without a choice, for reference")
    parser.add_argument("--only-cache", action="store_true", help="build the cache, no table")
    parser.add_argument("--out", default=None, help="also write bench/results/<out>")
    args = parser.parse_args()
    sets = args.sets.split(",")
    if unknown := [s for s in sets if s not in SETS]:
        parser.error(f"unknown world set(s) {', '.join(unknown)}; use {', '.join(SETS)}")
    wanted = None if args.worlds is None else set(args.worlds.split(","))
    if unknown := sorted((wanted or set()) - {n for s in sets for n in SETS[s]}):
        parser.error(f"world(s) {', '.join(unknown)} not in the set(s) {args.sets}")
    settings = TrainSettings(params=BoosterParams(n_estimators=args.trees, n_jobs=1))
    fixed = tuple(filter(None, args.fixed.split(",")))
    names = [c.name for c in select.menu(settings.learners, settings.capacities,
                                         settings.menu_rules)]
    if unknown := [f for f in fixed if f not in names]:
        parser.error(f"--fixed {', '.join(unknown)} not on the menu; use {', '.join(names)}")
    quiet_logging()
    logging.getLogger("training").setLevel(logging.WARNING)
    args.cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, list[dict[str, tuple[str, float]]]]] = {}
    truths: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for world_set in sets:
        for name, design in SETS[world_set].items():
            if wanted is not None and name not in wanted:
                continue
            for seed in range(args.seeds):
                path = cache_path(args.cache, world_set, name, seed, args.trees)
                if not is_current(path, replace(settings, seed=seed)):
                    started = time.perf_counter()
                    build_cache(path, design, seed, settings)
                    print(f"cached {path.name} ({time.perf_counter() - started:.0f} s)",
                          file=sys.stderr, flush=True)
                if args.only_cache:
                    continue
                cached = load(path)
                oracle = float(np.mean(np.maximum(cached.net.max(axis=1), 0)))
                best = max(float(cached.net.mean(axis=0).max()), 0.0)
                out = run_rules(cached, seed, replace(settings, seed=seed), fixed)
                results.setdefault(world_set, {}).setdefault(name, []).append(out)
                truths.setdefault(world_set, {}).setdefault(name, []).append((oracle, best))
                print(f"{world_set}/{name} seed {seed}: " + ", ".join(
                    f"{r} {p} {v:.2f}" for r, (p, v) in out.items()), file=sys.stderr,
                    flush=True)
    if args.only_cache:
        return
    text = summarize(results, truths, args.trees)
    if args.out:
        publish(args.out, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
