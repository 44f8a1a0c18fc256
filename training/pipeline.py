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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

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
from training import evaluate as ev
from training import plots, registry
from training.package import NBAPolicyModel, Policy, decision_rows
from training.response import fit_response, predict_response
from training.settings import TrainSettings
from training.split import holdout_mask
from training.uplift import LEARNER_NAMES, fit_uplift
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


def arm_index(treatment: pd.Series, catalog: Catalog) -> np.ndarray:
    """Arm codes: 0 for control, k + 1 for the k-th catalog offer."""
    codes = {catalog.control_label: 0} | {o: k + 1 for k, o in enumerate(catalog.offer_ids)}
    return treatment.map(codes).to_numpy(dtype=np.int64)


SHRINKAGE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
TUNE_SHARE = 0.25


def economics(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """(margins, costs) indexed by arm: index 0 is control (no margin, no cost)."""
    margins = np.concatenate([[0.0], [o.margin for o in catalog.offers]])
    costs = np.concatenate([[0.0], [o.cost for o in catalog.offers]])
    return margins, costs


def _population_uplift(frame: pd.DataFrame, catalog: Catalog) -> np.ndarray:
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


def choose_shrinkage(train: pd.DataFrame, spec: FeatureSpec, catalog: Catalog,
                     settings: TrainSettings) -> tuple[float, dict[float, float]]:
    """Pick how far to trust per-customer uplift over the offers' average effect.

    Fits on 75% of the training customers and scores each shrinkage on the other 25% by IPW
    incremental profit (the quantity the policy ranks by). With no heterogeneity to exploit the
    shrunk policies win and every customer gets the best single offer; the holdout evaluation
    then reports whether deviating from that offer was justified (`deviation_justified`).
    """
    is_tune = holdout_mask(train["customer_id"], TUNE_SHARE, settings.seed + 1)
    fit, tune = train[~is_tune], train[is_tune]
    part = _fit_models(fit, spec, catalog, settings, population=_population_uplift(fit, catalog))
    raw = part.raw_uplift(build_matrix(tune, spec))  # scored once, shrunk per grid value
    estimates = {}
    for shrinkage in SHRINKAGE_GRID:
        part.shrinkage = shrinkage
        estimates[shrinkage] = incremental_profit(part, tune, part.shrink(raw))
    chosen = max(estimates, key=lambda s: (estimates[s].value, -s))  # ties: shrink more
    return chosen, {s: e.value for s, e in estimates.items()}


def _fit_models(train: pd.DataFrame, spec: FeatureSpec, catalog: Catalog,
                settings: TrainSettings, population: np.ndarray,
                progress: Progress | None = None) -> Policy:
    X = build_matrix(train, spec)
    converted = train["converted"].to_numpy()
    arms = sorted(set(train["treatment"]) - {catalog.control_label})
    if progress:
        progress(f"fitting uplift {settings.learner.upper()}-learner: {len(arms)} offers vs "
                 f"control, {len(train):,} rows")
    uplift, _ = fit_uplift(X, train["treatment"].to_numpy(dtype=object), converted,
                           control_label=catalog.control_label, params=settings.params,
                           seed=settings.seed, learner=settings.learner)  # type: ignore[arg-type]
    if progress:
        progress("fitting response model P(convert | customer, offer)")
    response = fit_response(X, arm_index(train["treatment"], catalog), converted,
                            n_arms=len(catalog.offers) + 1, params=settings.params,
                            seed=settings.seed)
    if progress:
        progress("fitting baseline value model on control revenue")
    control = (train["treatment"] == catalog.control_label).to_numpy()
    value = fit_value(X[control], train["revenue"].to_numpy()[control], params=settings.params,
                      seed=settings.seed)
    meta = {"learner": LEARNER_NAMES[settings.learner],
            "params": asdict(settings.params), "seed": settings.seed,
            "trained_rows": len(train)}
    return Policy(spec, catalog, uplift, response, value, meta, population_uplift=population)


def fit_policy(train: pd.DataFrame, spec: FeatureSpec, catalog: Catalog,
               settings: TrainSettings, progress: Progress) -> Policy:
    """Fit uplift, response and value models on the training split, with chosen shrinkage."""
    if settings.shrinkage is None:
        progress(f"choosing shrinkage towards the average effect on a {TUNE_SHARE:.0%} tuning "
                 "split")
        shrinkage, scores = choose_shrinkage(train, spec, catalog, settings)
        log.info("shrinkage %.2f (tuning-split incremental profit per customer: %s)", shrinkage,
                 ", ".join(f"{k:.2f}: {v:.4f}" for k, v in scores.items()))
    else:
        progress(f"shrinkage fixed at {settings.shrinkage:.2f}")
        shrinkage, scores = settings.shrinkage, {}
    policy = _fit_models(train, spec, catalog, settings, _population_uplift(train, catalog),
                         progress)
    policy.shrinkage = shrinkage
    policy.meta["shrinkage_tuning"] = {str(k): v for k, v in scores.items()}
    return policy


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

    curves, deciles = {}, {}
    for k, offer_id in enumerate(catalog.offer_ids):
        rows = (logged == 0) | (logged == k + 1)
        if not (logged == k + 1).any() or np.isnan(raw[rows, k]).all():
            continue
        score, treated, y = raw[rows, k], (logged[rows] == k + 1).astype(int), converted[rows]
        metrics[f"qini_{offer_id}"] = ev.qini_coefficient(score, treated, y)
        metrics[f"auuc_{offer_id}"] = ev.auuc(score, treated, y)
        curves[offer_id] = ev.qini_curve(score, treated, y)
        deciles[offer_id] = ev.uplift_by_decile(score, treated, y)

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
    metrics["shrinkage"] = policy.shrinkage
    learned = policies["learned_uplift_policy"]
    metrics["policy_value_learned_ci_low"] = rows[0]["ci_low"]
    metrics["policy_value_learned_ci_high"] = rows[0]["ci_high"]
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


def train(settings: TrainSettings) -> TrainResult:
    """Run the whole pipeline and register the policy; promotes the very first model."""
    progress = Progress(STEPS)
    data = settings.data_dir
    progress(f"reading {data / io.OFFERS} and {data / io.EXPOSURES}")
    catalog = io.read_catalog(data / io.OFFERS)
    exposures = io.read_exposures(data / io.EXPOSURES, catalog)
    kinds = feature_columns(pq.read_schema(data / io.EXPOSURES), io.EXPOSURES)

    is_test = holdout_mask(exposures["customer_id"], settings.test_size, settings.seed)
    train_frame, test_frame = exposures[~is_test], exposures[is_test]
    spec = infer_spec(train_frame, kinds)
    log.info("%d features (%d matrix columns); %s train / %s holdout rows", len(spec.features),
             spec.width, f"{len(train_frame):,}", f"{len(test_frame):,}")

    policy = fit_policy(train_frame, spec, catalog, settings, progress)
    progress("evaluating on the randomized holdout split")
    evaluation = evaluate_policy(policy, train_frame, test_frame)
    example = _input_example(settings, exposures, spec)
    return publish(settings, policy, evaluation, example, progress,
                   {"train_rows": len(train_frame), "holdout_rows": len(test_frame)})


def publish(settings: TrainSettings, policy: Policy, evaluation: Evaluation,
            example: pd.DataFrame, progress: Progress, params: dict) -> TrainResult:
    """Log the run (params, metrics, plots) and register the policy as an MLflow pyfunc;
    promotes it when asked or when it is the first. Shared by every training engine."""
    progress("logging the run and the policy to MLflow")
    data, spec, catalog = settings.data_dir, policy.spec, policy.catalog
    client = registry.configure(settings.tracking_uri)
    experiment_id = registry.ensure_experiment(client, settings.experiment, settings.artifact_root)
    with mlflow.start_run(experiment_id=experiment_id) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        mlflow.log_params({**asdict(settings.params), "seed": settings.seed,
                           "test_size": settings.test_size, "learner": policy.meta["learner"],
                           **params,
                           "n_features": len(spec.features), "n_offers": len(catalog.offers)})
        mlflow.set_tags({f"data.{name}.sha256": io.file_sha256(data / name)
                         for name in (io.EXPOSURES, io.OFFERS, io.CUSTOMERS)
                         if (data / name).exists()})
        mlflow.log_metrics({k: v for k, v in evaluation.metrics.items() if np.isfinite(v)})
        plots.qini_plot(evaluation.qini_curves, tmp_path / "qini_curves.png")
        plots.decile_plot(evaluation.deciles, tmp_path / "uplift_by_decile.png")
        (tmp_path / "features.json").write_text(json.dumps(
            {"features": [asdict(f) for f in spec.features],
             "matrix_columns": spec.matrix_names}, indent=2))
        evaluation.policy_table.to_csv(tmp_path / "policy_values.csv", index=False)
        (tmp_path / "policy_values.txt").write_text(
            evaluation.policy_table.to_string(index=False, float_format="%.4f"))
        for name in ("qini_curves.png", "uplift_by_decile.png", "features.json",
                     "policy_values.csv", "policy_values.txt"):
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
    return TrainResult(run.info.run_id, version, promoted, evaluation.metrics)

