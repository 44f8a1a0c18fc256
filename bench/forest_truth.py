"""Do causalml's uplift forests beat the menu's meta-learners at 1,000-2,000 rows per arm?

Issue 12 experiment. On each world and seed (generated as in bench/worlds.py), the same
selection rows and customer folds as training (`training.pipeline.selection_mask`,
`training.crossfit.folds`); every model is fitted without one fold and predicts it. Models: the
menu's learners (`crossfit.uplift_predictions`), causalml's UpliftRandomForestClassifier (one
multi-arm forest: a split criterion over all arms at once) and CausalRandomForestRegressor (one
forest per offer against control), each at settings fixed before any run (FORESTS: causalml's
defaults and one regularised). Each model's out-of-fold policy is the menu's `full` rule: per
row the offer with the best uplift x margin - cost, or nothing. It is scored by the world's
truth on the same rows (`selection_truth.true_value`), as a share of the oracle on those rows;
with the seconds per fold fit. Prints markdown; writes nothing.
Run: `nice -n 19 .venv/bin/python bench/forest_truth.py --seeds 2 --worlds smooth`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, quiet_logging  # noqa: E402
from selection_truth import true_value  # noqa: E402

from features.build import build_matrix, infer_spec  # noqa: E402
from nba.worlds import DESIGNS, FEATURES, HELD_OUT, Design, generate  # noqa: E402
from training import crossfit  # noqa: E402
from training.evaluate import greedy_arm  # noqa: E402
from training.learners import CAPACITIES  # noqa: E402
from training.pipeline import economics, selection_mask  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402


@dataclass(frozen=True)
class Forest:
    """One forest setting: which causalml class, and its keyword arguments."""

    name: str
    kind: str  # "uplift": one multi-arm UpliftRandomForestClassifier; "causal": one per offer
    kwargs: dict[str, Any] = field(default_factory=dict)


#: fixed before any run, never tuned per world: causalml's defaults (the uplift forest with
#: 100 trees instead of its 10, as the causal forest has) and one regularised variant of each
#: (shallower trees, twice the leaf floor, more rows per arm in a leaf, stronger pull of each
#: child's arm rates to its parent's)
FORESTS = {f.name: f for f in (
    Forest("urf/KL", "uplift", {"n_estimators": 100}),
    Forest("urf/ED-reg", "uplift", {"n_estimators": 100, "evaluationFunction": "ED",
                                    "max_depth": 3, "min_samples_leaf": 200,
                                    "min_samples_treatment": 50, "n_reg": 100}),
    Forest("crf", "causal", {}),
    Forest("crf-reg", "causal", {"max_depth": 4, "min_samples_leaf": 200}),
)}

#: the menu's learners compared, at the capacities the menu offers
LEARNERS = ("x/low", "t/low", "x/base", "t/base")


def fit_forest(forest: Forest, X: np.ndarray, treatment: np.ndarray, converted: np.ndarray,
               *, offer_ids: tuple[str, ...], control_label: str, seed: int
               ) -> Callable[[np.ndarray], np.ndarray]:
    """Fit `forest` on the rows given; return a predictor of (rows, n_offers) uplift (NaN for
    an offer the rows never showed)."""
    from causalml.inference.tree import CausalRandomForestRegressor, UpliftRandomForestClassifier

    y = np.asarray(converted)
    if forest.kind == "uplift":
        model = UpliftRandomForestClassifier(control_name=control_label, random_state=seed,
                                             n_jobs=1, **forest.kwargs)
        model.fit(X, treatment=treatment, y=y)
        columns = [offer_ids.index(str(g)) for g in model.classes_[1:]]

        def predict(rows: np.ndarray) -> np.ndarray:
            out = np.full((len(rows), len(offer_ids)), np.nan)
            out[:, columns] = model.predict(rows)
            return out
        return predict
    models = {}
    for k, offer in enumerate(offer_ids):
        rows = (treatment == offer) | (treatment == control_label)
        if not np.any(treatment == offer):
            continue
        models[k] = CausalRandomForestRegressor(control_name=0, random_state=seed, n_jobs=1,
                                                **forest.kwargs).fit(
            X[rows], treatment=(treatment[rows] == offer).astype(np.int64), y=y[rows])

    def predict_each(rows: np.ndarray) -> np.ndarray:
        out = np.full((len(rows), len(offer_ids)), np.nan)
        for k, m in models.items():
            out[:, k] = np.ravel(m.predict(rows))
        return out
    return predict_each


def forest_out_of_fold(forest: Forest, X: np.ndarray, treatment: np.ndarray,
                       converted: np.ndarray, fold: np.ndarray, *, offer_ids: tuple[str, ...],
                       control_label: str, seed: int) -> tuple[np.ndarray, float]:
    """Each fold's uplift from the forest fitted on the other folds; seconds per fold fit."""
    uplift = np.full((len(X), len(offer_ids)), np.nan)
    started = time.perf_counter()
    for j in np.unique(fold):
        test = fold == j
        predict = fit_forest(forest, X[~test], treatment[~test], converted[~test],
                             offer_ids=offer_ids, control_label=control_label, seed=seed)
        uplift[test] = predict(X[test])
    return uplift, (time.perf_counter() - started) / len(np.unique(fold))


def world_seed(design: Design, seed: int, settings: TrainSettings, models: list[str]
               ) -> dict[str, tuple[float, float]]:
    """Per model: (true value of its out-of-fold policy / oracle on the rows, s per fold fit);
    with 'oracle' and 'best single' (their true values, s 0)."""
    world = generate(design, 100 + seed)
    cap = settings.selection_cap(len(world.catalog.offers) + 1)
    frame = world.exposures[selection_mask(world.exposures["customer_id"], cap, seed)]
    X = build_matrix(frame, infer_spec(frame, FEATURES))
    treatment = frame["treatment"].to_numpy(dtype=object)
    converted = frame["converted"].to_numpy()
    propensity = frame["propensity"].to_numpy()
    fold = crossfit.folds(frame["customer_id"].astype(str).to_numpy(), settings.folds, seed)
    margins, costs = economics(world.catalog)
    net = design.uplift(frame) * margins[1:] - costs[1:]
    oracle = float(np.mean(np.maximum(net.max(axis=1), 0.0)))
    out = {"oracle": (oracle, 0.0), "best single": (max(net.mean(axis=0).max(), 0.0), 0.0)}
    offers = world.catalog.offer_ids
    eligible = np.ones(net.shape, dtype=bool)
    for name in models:
        started = time.perf_counter()
        if name in FORESTS:
            uplift, seconds = forest_out_of_fold(
                FORESTS[name], X, treatment, converted, fold, offer_ids=offers,
                control_label=world.catalog.control_label, seed=seed)
        else:
            learner, capacity = name.split("/")
            uplift = crossfit.uplift_predictions(
                learner, X, treatment, converted, propensity, fold,  # type: ignore[arg-type]
                offer_ids=offers, control_label=world.catalog.control_label,
                params=CAPACITIES[capacity].apply(settings.params), seed=seed).uplift
            seconds = (time.perf_counter() - started) / settings.folds
        arms = greedy_arm(np.nan_to_num(uplift * margins[1:] - costs[1:], nan=-np.inf),
                          eligible)
        out[name] = (true_value(net, arms), seconds)
    return out


def fit_seconds(models: list[str], rows: int, settings: TrainSettings) -> list[list[str]]:
    """Seconds of one fit on `rows` rows, per model, of a world of the demo's shape (12 offers
    and control: held-out `many_weak`, whose outcomes play no part here)."""
    design = HELD_OUT["many_weak"]
    world = generate(replace(design, rows_per_arm=rows // (len(design.margins) + 1)), 100)
    frame = world.exposures
    X = build_matrix(frame, infer_spec(frame, FEATURES))
    treatment = frame["treatment"].to_numpy(dtype=object)
    converted = frame["converted"].to_numpy()
    import causalml.inference.meta  # noqa: F401  (imported before the clock starts:
    import causalml.inference.tree  # noqa: F401  the first fit would pay for the imports)

    out = []
    for name in models:
        started = time.perf_counter()
        if name in FORESTS:
            fit_forest(FORESTS[name], X, treatment, converted, offer_ids=world.catalog.offer_ids,
                       control_label=world.catalog.control_label, seed=0)
        else:
            from training.learners import fit_learner

            learner, capacity = name.split("/")
            fit_learner(learner, X, treatment, converted,  # type: ignore[arg-type]
                        frame["propensity"].to_numpy(), control_label="control",
                        params=CAPACITIES[capacity].apply(settings.params), seed=0)
        out.append([name, f"{time.perf_counter() - started:.1f}"])
    return out


def main() -> None:
    """Print, per world, each model's out-of-fold true value / oracle per seed and on average."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default=",".join(DESIGNS),
                        help="comma-separated worlds of nba.worlds.DESIGNS")
    parser.add_argument("--held-out", action="store_true",
                        help="the held-out worlds instead (a final figure, never for choosing)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--models", default=",".join([*LEARNERS, *FORESTS]),
                        help="comma-separated: learner/capacity pairs and FORESTS names")
    parser.add_argument("--trees", type=int, default=100, help="LightGBM trees, as bench/worlds")
    parser.add_argument("--time-rows", type=int, default=0,
                        help="instead: seconds of one fit per model on this many rows")
    args = parser.parse_args()
    quiet_logging()
    logging.getLogger("training").setLevel(logging.WARNING)
    settings = TrainSettings(params=BoosterParams(n_estimators=args.trees, n_jobs=1))
    models = args.models.split(",")
    if args.time_rows:
        print(markdown_table(["model", f"s per fit, {args.time_rows:,} rows, 13 arms, 1 thread"],
                             fit_seconds(models, args.time_rows, settings)))
        return
    designs = HELD_OUT if args.held_out else DESIGNS
    names = list(designs) if args.held_out else args.worlds.split(",")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    share: dict[str, list[float]] = {m: [] for m in models}
    targeting: dict[str, list[float]] = {m: [] for m in models}  # oracle >= 1.5x best single
    seconds: dict[str, list[float]] = {m: [] for m in models}
    rows = []
    for name in names:
        per_seed = [world_seed(designs[name], s, replace(settings, seed=s), models)
                    for s in seeds]
        pays = np.mean([r["oracle"][0] for r in per_seed]) \
            >= 1.5 * np.mean([r["best single"][0] for r in per_seed])
        for result in per_seed:
            oracle = result["oracle"][0]
            for m in models:
                share[m].append(result[m][0] / oracle)
                if pays:
                    targeting[m].append(result[m][0] / oracle)
                seconds[m].append(result[m][1])
        cells = [f"{np.mean([r[m][0] / r['oracle'][0] for r in per_seed]):.2f} ("
                 + "/".join(f"{r[m][0] / r['oracle'][0]:.2f}" for r in per_seed) + ")"
                 for m in models]
        single = np.mean([r["best single"][0] / r["oracle"][0] for r in per_seed])
        rows.append([name, f"{single:.2f}", *cells])
        print(f"{name} done: " + ", ".join(f"{m} {c}" for m, c in zip(models, cells,
                                                                     strict=True)),
              file=sys.stderr, flush=True)
    rows.append(["mean", "", *(f"{np.mean(share[m]):.3f}" for m in models)])
    if any(targeting.values()):
        rows.append(["mean, oracle >= 1.5x best single", "",
                     *(f"{np.mean(targeting[m]):.3f}" for m in models)])
    rows.append(["s per fold fit (mean)", "", *(f"{np.mean(seconds[m]):.1f}" for m in models)])
    print(f"\nTrue value of each model's out-of-fold policy / oracle on the selection rows, "
          f"seeds {seeds.start}-{seeds.stop - 1} (mean (per seed)):\n")
    print(markdown_table(["world", "best single", *models], rows))


if __name__ == "__main__":
    main()
