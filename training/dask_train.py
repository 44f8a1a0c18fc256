"""Training on a Dask cluster: the S-learner, response and value models fitted by lightgbm.dask.

`nba train --engine dask` fits ONE fixed candidate, not the single-machine menu: the S-learner
(one LightGBM model per offer on (treatment flag, features), as causalml's BaseSClassifier
builds it), the response model P(convert | customer, arm) and the baseline value model, each
with LightGBM's own Dask interface (data-parallel: every worker builds histograms of its
partitions). The exposures are read as a Dask DataFrame, validated partition by partition with
the same contract code as `features.io`, and never collected; fits run one at a time
(concurrent lightgbm.dask fits can hang). The boosters are ordinary `lightgbm.Booster`s, so the
policy, its evaluation (`training.pipeline.evaluate_policy`, on a bounded holdout sample
collected to the client) and its registration (`training.pipeline.publish`) are the
single-machine ones: the registered pyfunc and the service cannot tell the engines apart.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import io
from features.build import build_matrix, categorical_feature
from features.catalog import Catalog
from features.errors import ContractError
from features.schema import NEW_CUSTOMER, Feature, FeatureSpec, feature_columns
from training import evaluate as ev
from training.package import Policy
from training.pipeline import (
    Evaluation,
    Progress,
    TrainResult,
    _input_example,
    arm_index,
    evaluate_policy,
    fitted_params,
    publish,
)
from training.response import with_arm
from training.settings import TrainSettings
from training.split import holdout_mask
from training.uplift import LEARNER_NAMES, UpliftModel

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

log = logging.getLogger(__name__)
STEPS = 7


@dataclass(frozen=True)
class DaskSettings:
    """Where the cluster is and how the exposures are cut and sampled."""

    #: a running scheduler (tcp://host:8786); None starts a LocalCluster of `workers`
    scheduler: str | None = None
    workers: int = 2
    #: partitions of the exposures (None: the parquet file's row groups, at least 2 per worker)
    partitions: int | None = None
    #: the holdout and the training rows the evaluation baselines use are sampled (whole
    #: customers) down to about this many rows each before they are collected to the client
    eval_rows: int = 1_000_000


def connect(settings: DaskSettings) -> Client:
    """A client of the scheduler, or of a new LocalCluster (one thread per worker process)."""
    from distributed import Client, LocalCluster

    if settings.scheduler:
        return Client(settings.scheduler)
    cluster = LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    return Client(cluster)


def read_exposures(path: Path, catalog: Catalog, partitions: int | None) -> dd.DataFrame:
    """The exposures as a Dask DataFrame, each partition validated by `features.io`'s contract
    (file-wide checks, such as a control arm being present, run on the cluster afterwards)."""
    import dask.dataframe as dd

    if not path.exists():
        raise ContractError(str(path), "file not found")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(path.name, f"not a readable parquet file ({exc})") from None
    feature_columns(schema, path.name)  # a disallowed feature type fails before any work
    empty = schema.empty_table()
    arms = len(catalog.offers) + 1
    meta = io.exposures_frame(empty, path.name, catalog, part=True, arms=arms)
    frame = dd.read_parquet(str(path))
    if partitions:
        frame = frame.repartition(npartitions=partitions)
    return frame.map_partitions(
        lambda part: io.exposures_frame(pa.Table.from_pandas(part, schema=schema,
                                                             preserve_index=False),
                                        path.name, catalog, part=True, arms=arms),
        meta=meta)


def infer_spec(frame: dd.DataFrame, columns: list[tuple[str, Any]]) -> FeatureSpec:
    """`features.build.infer_spec` on a Dask DataFrame: categorical levels counted on the
    cluster and encoded by `features.build.categorical_feature`, the rest as declared."""
    import dask

    categorical = [name for name, kind in columns if kind == "categorical"]
    counts = dask.compute(*(frame[name].dropna().astype(str).value_counts()
                            for name in categorical))
    encoded = {name: categorical_feature(name, c)
               for name, c in zip(categorical, counts, strict=True)}
    return FeatureSpec(tuple(encoded[name] if kind == "categorical" else Feature(name, kind)
                             for name, kind in columns))


def _design(part: pd.DataFrame, spec: FeatureSpec, catalog: Catalog, target: str,
            offer: str | None) -> pd.DataFrame:
    """One partition's model input (columns Column_0.., as LightGBM names NumPy columns) and
    its label: `uplift` (offer and control rows, treatment flag first), `response` (every row,
    arm one-hot last) or `value` (control rows, revenue)."""
    treatment = part["treatment"]
    if target == "uplift":
        part = part[(treatment == offer) | (treatment == catalog.control_label)]
        X = build_matrix(part, spec)
        X = np.hstack([(part["treatment"] == offer).to_numpy(np.float32)[:, None], X])
        label = part["converted"].to_numpy()
    elif target == "response":
        X = with_arm(build_matrix(part, spec), arm_index(treatment, catalog),
                     len(catalog.offers) + 1)
        label = part["converted"].to_numpy()
    else:
        part = part[treatment == catalog.control_label]
        X = build_matrix(part, spec)
        label = part["revenue"].to_numpy()
    out = pd.DataFrame(X, columns=[f"Column_{i}" for i in range(X.shape[1])])
    out["label"] = label
    return out


def _fit(client: Client, frame: dd.DataFrame, spec: FeatureSpec, catalog: Catalog,
         settings: TrainSettings, target: str, offer: str | None = None) -> lgb.Booster:
    """One lightgbm.dask fit on the cluster (the caller runs them one at a time)."""
    from lightgbm import DaskLGBMClassifier, DaskLGBMRegressor

    width = spec.width + (1 if target == "uplift" else 0)
    width += len(catalog.offers) + 1 if target == "response" else 0
    meta = pd.DataFrame({f"Column_{i}": pd.Series(dtype=np.float32) for i in range(width)})
    meta["label"] = pd.Series(dtype=np.float64 if target == "value" else np.int8)
    design = frame.map_partitions(_design, spec, catalog, target, offer, meta=meta)
    model_type = DaskLGBMRegressor if target == "value" else DaskLGBMClassifier
    # level codes as native categoricals; the uplift input has the treatment flag in front
    booster_params = replace(settings.params, categorical=spec.categorical_columns)
    params = booster_params.shifted(1 if target == "uplift" else 0).as_lightgbm(settings.seed)
    del params["n_jobs"]  # lightgbm.dask gives each worker its own threads (dask's nthreads)
    model = model_type(client=client, **params)
    with warnings.catch_warnings():
        # lightgbm 4.7's Dask fit passes its own unset n_jobs on and then warns it is ignored
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        model.fit(design[list(meta.columns[:-1])], design["label"])
    return model.booster_


def fit_policy(client: Client, frame: dd.DataFrame, spec: FeatureSpec, catalog: Catalog,
               settings: TrainSettings, population: np.ndarray, rows: int,
               progress: Progress) -> Policy:
    """The S-learner (one model per offer present), response and value models, on the cluster."""
    present = set(frame["treatment"].unique().compute())
    offers = tuple(o for o in sorted(present) if o != catalog.control_label)
    boosters = []
    progress(f"fitting the S-learner with lightgbm.dask: {len(offers)} offers vs control, "
             f"{rows:,} rows, one fit at a time")
    for offer in offers:
        boosters.append(_fit(client, frame, spec, catalog, settings, "uplift", offer))
        log.info("  uplift model for %s fitted", offer)
    uplift = UpliftModel(offers, None, tuple(boosters), "s")
    progress("fitting the response and the baseline value models with lightgbm.dask")
    response = _fit(client, frame, spec, catalog, settings, "response")
    value = _fit(client, frame, spec, catalog, settings, "value")
    meta = {"learner": LEARNER_NAMES["s"], "engine": "dask",
            "params": fitted_params(settings, spec), "seed": settings.seed, "trained_rows": rows}
    return Policy(spec, catalog, uplift, response, value, meta,
                  shrinkage=1.0 if settings.shrinkage is None else settings.shrinkage,
                  population_uplift=population)


def _sample(frame: dd.DataFrame, rows: int, limit: int, seed: int) -> pd.DataFrame:
    """Whole customers of `frame` down to about `limit` rows, collected to the client."""
    if rows > limit:
        share = limit / rows
        frame = frame[frame.map_partitions(
            lambda part: pd.Series(holdout_mask(part["customer_id"], share, seed),
                                   index=part.index), meta=("sample", bool))]
    return frame.compute().reset_index(drop=True)


def train(settings: TrainSettings, dask: DaskSettings) -> TrainResult:
    """Fit on Dask, evaluate on the holdout, register the pyfunc policy (as `pipeline.train`)."""
    progress = Progress(STEPS)
    data = settings.data_dir
    progress(f"reading {data / io.OFFERS} and {data / io.EXPOSURES} as a Dask DataFrame")
    catalog = io.read_catalog(data / io.OFFERS)
    client = connect(dask)
    try:
        log.info("dask: %s with %d workers", client.scheduler.address,
                 len(client.scheduler_info()["workers"]))
        workers = len(client.scheduler_info()["workers"])
        exposures = read_exposures(data / io.EXPOSURES, catalog,
                                   dask.partitions or None)
        if dask.partitions is None and exposures.npartitions < 2 * workers:
            exposures = exposures.repartition(npartitions=2 * workers)
        if NEW_CUSTOMER in exposures.columns:  # no first-visit policy on this engine (yet)
            log.warning("dask: exposures of new customers (%s) are left out; train on this "
                        "machine (`nba train`) for a first-visit policy", NEW_CUSTOMER)
            exposures = exposures[~exposures[NEW_CUSTOMER]]
        kinds = feature_columns(pq.read_schema(data / io.EXPOSURES), io.EXPOSURES)
        is_test = exposures.map_partitions(
            lambda part: pd.Series(holdout_mask(part["customer_id"], settings.test_size,
                                                settings.seed), index=part.index),
            meta=("holdout", bool))
        train_frame = _spread(client, exposures[~is_test])
        test_frame = exposures[is_test]
        train_rows, test_rows = (int(n) for n in client.compute(
            [train_frame.shape[0], test_frame.shape[0]], sync=True))
        _check_arms(train_frame, catalog)
        spec = infer_spec(train_frame, kinds)
        log.info("%d features (%d matrix columns); %s train / %s holdout rows",
                 len(spec.features), spec.width, f"{train_rows:,}", f"{test_rows:,}")
        progress(f"collecting samples of up to {dask.eval_rows:,} rows for the baselines and "
                 "the holdout evaluation")
        train_sample = _sample(train_frame, train_rows, dask.eval_rows, settings.seed + 3)
        test_sample = _sample(test_frame, test_rows, dask.eval_rows, settings.seed + 3)
        population = ev.population_uplift(
            arm_index(train_sample["treatment"], catalog), train_sample["converted"].to_numpy(),
            train_sample["propensity"].to_numpy(), len(catalog.offers) + 1)
        policy = fit_policy(client, train_frame, spec, catalog, settings, population,
                            train_rows, progress)
    finally:
        _close(client, dask)
    progress("evaluating on the randomized holdout split")
    evaluation: Evaluation = evaluate_policy(policy, train_sample, test_sample)
    example = _input_example(settings, test_sample, spec)
    return publish(settings, policy, evaluation, example, progress,
                   {"engine": "dask", "candidate": f"s/{'/'.join(settings.capacities[:1])}"
                                                  f"/shrink_{policy.shrinkage:g}",
                    "train_rows": train_rows, "holdout_rows": test_rows,
                    "holdout_evaluated_rows": len(test_sample)})


def _spread(client: Client, frame: dd.DataFrame) -> dd.DataFrame:
    """`frame` computed into the workers' memory, partitions dealt round-robin: lightgbm.dask
    fits each worker on the partitions it holds, so a worker holding none sits idle."""
    import dask.dataframe as dd
    from distributed import wait

    workers = sorted(client.scheduler_info()["workers"])
    futures = [client.compute(part, workers=[workers[i % len(workers)]])
               for i, part in enumerate(frame.to_delayed())]
    spread = dd.from_delayed(futures, meta=frame._meta, verify_meta=False)
    wait(futures)
    holders = {w for ws in client.who_has(futures).values() for w in ws}
    log.info("training partitions held by %d of %d workers", len(holders), len(workers))
    return spread


def _check_arms(frame: dd.DataFrame, catalog: Catalog) -> None:
    """The file-wide checks a partition cannot make (`features.io`'s): a control arm is
    present and not every row is control (a policy with zero offers)."""
    import dask

    control = frame["treatment"] == catalog.control_label
    has_control, has_offer = dask.compute(control.any(), (~control).any())
    if not has_control:
        raise ContractError(io.EXPOSURES, f"no control rows (label '{catalog.control_label}'):"
                                          " uplift needs a control arm", "treatment")
    if not has_offer:
        raise ContractError(io.EXPOSURES, f"every row is control (label "
                                          f"'{catalog.control_label}'): uplift needs rows of at "
                                          "least one offer of offers.yaml beside the control "
                                          "arm", "treatment")


def _close(client: Client, dask: DaskSettings) -> None:
    cluster = client.cluster if dask.scheduler is None else None
    client.close()
    if cluster is not None:
        cluster.close()
