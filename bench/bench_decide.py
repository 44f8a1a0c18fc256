"""In-process decision latency: the raw LightGBM floor, our whole decision, MLflow's pyfunc.

A second table splits a served decision into its stages (features, models, state reads,
arbitration, JSON, state writes) beside the raw Booster.predict calls on the same rows.

Run from the repo root: `.venv/bin/python bench/bench_decide.py`. Writes bench/results/decide.md.
One thread for LightGBM/OpenMP, as a single-row decision uses.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
from common import booster_inputs, boosters_of, markdown_table, publish, quiet_logging

from decisioning.core import OFFLINE
from decisioning.decision import DecisionContext, DecisionSettings
from decisioning.snapshot import StateSnapshot
from features import io
from nba import demo
from service.api import decision_json
from service.live import (
    LiveDecision,
    LiveState,
    Served,
    decide_live,
    log_decisions,
)
from service.model_store import LoadedModel, load_from_registry
from service.settings import ServiceSettings
from state import StockSnapshot, open_store
from state.rows import snapshot_of, stock_rows
from training import registry
from training.fastpredict import SingleRowPredictor
from training.pipeline import train
from training.settings import BoosterParams, TrainSettings

CUSTOMERS = 20_000
EXPOSURES = 80_000
SEED = 3
TREES = 150
SAMPLES = 3_000
PYFUNC_SAMPLES = 200
WARMUP = 200
PYFUNC_WARMUP = 20


def raw_floor(boosters: list[lgb.Booster], rows: np.ndarray) -> None:
    """The bare Booster.predict calls for one customer: the control model (T and X), each
    offer's (X: each offer's two effect models)."""
    for booster in boosters:
        booster.predict(rows, num_threads=1)


def fast_floor(predictor: SingleRowPredictor, rows: np.ndarray) -> None:
    """The same boosters on the same rows through LightGBM's single-row C API (what we serve)."""
    predictor.predict(rows)


#: the service's experiment settings: a 5% holdout and 5% exploration
SERVED = DecisionSettings(holdout_share=0.05, exploration=0.05)


def whole_decision(model: LoadedModel, stock: StockSnapshot, customer_id: str) -> str:
    """The model and the rules, minus Flask and the state store: lookup to JSON text."""
    row = model.customer_row(customer_id)
    context = DecisionContext(channel="web", now=datetime.now(UTC), limit=3)
    decision = model.policy.decide_row(model.customers, row, context, StateSnapshot(stock))
    return json.dumps(decision_json(uuid.uuid4().hex, customer_id, model, decision))


def live_decision(model: LoadedModel, live: LiveState, customer_id: str) -> str:
    """What POST /v1/decisions does, minus Flask: live stock, launch holds, the decision log."""
    context = DecisionContext(channel="web", now=datetime.now(UTC), limit=3)
    decision_id = uuid.uuid4().hex
    result = decide_live(live, model, customer_id, context, decision_id, SERVED)
    # as the route logs it: the contact cap counted again in the write's transaction
    [sent] = log_decisions(live, model, [Served(result, context, decision_id)])
    return json.dumps(decision_json(decision_id, customer_id, model, sent.decision,
                                    sent.holds))


#: the stages of one served decision, in order (timed one by one by `stage_times_us`)
STAGES = (
    ("features: row lookup (`CustomerTable.row`, the matrix row)", False),
    ("models: `Policy.score_row` (single-row C API calls, shrinkage, catalog order)", False),
    ("state reads: live stock version, launch counts, contact history (SQLite, one statement)",
     True),
    ("arbitration: `Policy.decide_scored` (eligibility, stock, caps, ranking)", False),
    ("JSON: `decision_json` + `json.dumps`", False),
    ("state writes: decision log + contacts, cap counted in the write (SQLite, one "
     "transaction)", True),
)


def stage_times_us(model: LoadedModel, live: LiveState, ids: list[str]) -> np.ndarray:
    """Microseconds of each STAGES step for each customer: shape (len(ids), len(STAGES)).

    The steps of `decide_live` + the route, one at a time, without holdout, exploration or
    launch holds (which only add store writes for the few decisions that show a launch).
    """
    policy, table = model.policy, model.customers
    out = np.empty((len(ids), len(STAGES)), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, customer_id in enumerate(ids):
        t0 = clock()
        row = table.row(customer_id)
        assert row is not None
        table.matrix[row:row + 1]
        t1 = clock()
        scores = policy.score_row(table, row)
        t2 = clock()
        context = DecisionContext(channel="web", now=datetime.now(UTC), limit=3)
        snapshot = live.read(policy.catalog, model.launch_values, customer_id, "web",
                             context.now)
        t3 = clock()
        decision = policy.decide_scored(table, row, scores, context, snapshot, OFFLINE)
        t4 = clock()
        decision_id = uuid.uuid4().hex
        json.dumps(decision_json(decision_id, customer_id, model, decision))
        t5 = clock()
        result = LiveDecision(decision, [], scores.uplift.tolist(), table, row)
        log_decisions(live, model, [Served(result, context, decision_id)])
        t6 = clock()
        out[i] = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)
    return out / 1_000


def latencies_us(call: Callable[[int], object], n: int) -> np.ndarray:
    """Microseconds of call(0), ..., call(n - 1), each timed with perf_counter_ns."""
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        started = time.perf_counter_ns()
        call(i)
        out[i] = time.perf_counter_ns() - started
    return out / 1_000


def stats(us: np.ndarray) -> tuple[float, float, float]:
    """(p50, p99, mean) in microseconds."""
    return float(np.percentile(us, 50)), float(np.percentile(us, 99)), float(us.mean())


def build_model(root: Path) -> tuple[LoadedModel, ServiceSettings]:
    """Demo data, a training run registered as champion, and the service's loaded model."""
    data_dir = root / "data"
    demo.write(demo.generate(CUSTOMERS, EXPOSURES, SEED), data_dir)
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    params = BoosterParams(n_estimators=TREES, n_jobs=1)  # setup only; 1 thread resists contention
    train(TrainSettings(data_dir=data_dir, tracking_uri=tracking_uri,
                        artifact_root=root / "mlruns", params=params))
    settings = ServiceSettings(tracking_uri=tracking_uri, data_dir=data_dir)
    return load_from_registry(settings), settings


def main() -> None:
    """Train a small policy, then time the three paths on random customers."""
    quiet_logging()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="nba-bench-decide-") as tmp:
        model, settings = build_model(Path(tmp))
        pyfunc = mlflow.pyfunc.load_model(registry.model_uri(settings.model_name,
                                                             settings.model_alias))
        frame = io.read_customers(settings.data_dir / io.CUSTOMERS, model.policy.spec)
        table = model.customers
        rows = rng.choice(len(table), SAMPLES, replace=False)
        ids = [table.ids[r] for r in rows]
        uplift = model.policy.uplift
        xs = [booster_inputs(uplift, table.matrix[r:r + 1]) for r in rows]
        one_row_frames = [frame.iloc[[r]] for r in rows[:PYFUNC_SAMPLES]]
        params = {"channel": "web", "limit": 3, "store_id": ""}
        inventory = io.read_inventory(settings.data_dir / io.INVENTORY)
        stock = snapshot_of(inventory)
        live = LiveState(open_store(f"sqlite:///{Path(tmp) / 'state.db'}"))
        live.store.replace_inventory(stock_rows(inventory), now=datetime.now(UTC))

        boosters = boosters_of(uplift)
        predictor = SingleRowPredictor(tuple(boosters))
        latencies_us(lambda i: raw_floor(boosters, xs[i % SAMPLES]), WARMUP)
        latencies_us(lambda i: fast_floor(predictor, xs[i % SAMPLES]), WARMUP)
        latencies_us(lambda i: whole_decision(model, stock, ids[i % SAMPLES]), WARMUP)
        latencies_us(lambda i: live_decision(model, live, ids[i % SAMPLES]), WARMUP)
        latencies_us(lambda i: pyfunc.predict(one_row_frames[i], params=params), PYFUNC_WARMUP)
        raw = latencies_us(lambda i: raw_floor(boosters, xs[i]), SAMPLES)
        fast = latencies_us(lambda i: fast_floor(predictor, xs[i]), SAMPLES)
        ours = latencies_us(lambda i: whole_decision(model, stock, ids[i]), SAMPLES)
        with_state = latencies_us(lambda i: live_decision(model, live, ids[i]), SAMPLES)
        stages = stage_times_us(model, live, ids)
        live.store.close()
        generic = latencies_us(lambda i: pyfunc.predict(one_row_frames[i], params=params),
                               PYFUNC_SAMPLES)

    (raw_p50, raw_p99, raw_mean), (our_p50, our_p99, our_mean) = stats(raw), stats(ours)
    gen_p50, gen_p99, gen_mean = stats(generic)
    live_p50, live_p99, live_mean = stats(with_state)
    n_boosters = (model.policy.uplift.control is not None) + len(model.policy.uplift.treated)
    result = [
        (f"raw floor: {n_boosters} `Booster.predict` calls for one customer "
         f"({model.policy.uplift.kind.upper()}-learner)", f"{SAMPLES:,}",
         f"{raw_p50:,.0f}", f"{raw_p99:,.0f}", f"{raw_mean:,.0f}", "1.0x"),
        (f"the same {n_boosters} boosters through LightGBM's single-row C API "
         "(`training.fastpredict`, what the service calls)", f"{SAMPLES:,}",
         *(f"{v:,.0f}" for v in stats(fast)), f"{stats(fast)[0] / raw_p50:.2f}x"),
        ("whole decision: `decide_row` + `decision_json` + `json.dumps`", f"{SAMPLES:,}",
         f"{our_p50:,.0f}", f"{our_p99:,.0f}", f"{our_mean:,.0f}", f"{our_p50 / raw_p50:.2f}x"),
        ("the service's decision: + live state in SQLite (stock version, launch counts and "
         "holds, decision log)", f"{SAMPLES:,}", f"{live_p50:,.0f}", f"{live_p99:,.0f}",
         f"{live_mean:,.0f}", f"{live_p50 / raw_p50:.2f}x"),
        ("MLflow pyfunc `predict` (one-row DataFrame)", f"{PYFUNC_SAMPLES:,}",
         f"{gen_p50:,.0f}", f"{gen_p99:,.0f}", f"{gen_mean:,.0f}", f"{gen_p50 / raw_p50:.1f}x"),
    ]
    stage_mean = stages.mean(axis=0)
    pure = sum(m for m, (_, is_state) in zip(stage_mean, STAGES, strict=True) if not is_state)
    split = [(name, f"{np.percentile(stages[:, k], 50):,.0f}", f"{stage_mean[k]:,.0f}",
              f"{stage_mean[k] / stage_mean.sum():.0%}", f"{stage_mean[k] / raw_mean:.2f}x")
             for k, (name, _) in enumerate(STAGES)]
    split.append(("sum of the stages", "", f"{stage_mean.sum():,.0f}", "100%",
                  f"{stage_mean.sum() / raw_mean:.2f}x"))
    split.append(("raw floor: the bare `Booster.predict` calls on the same rows",
                  f"{raw_p50:,.0f}", f"{raw_mean:,.0f}", "", "1.00x"))
    markdown = "\n".join([
        "## Decision latency (in process, one thread)",
        "",
        f"Demo data seed {SEED}: {CUSTOMERS:,} customers, {EXPOSURES:,} exposures; {TREES} trees "
        f"per booster; random customers; {WARMUP} warm-up calls per path ({PYFUNC_WARMUP} for "
        "pyfunc); OMP_NUM_THREADS=1. Our decision checks stock, pyfunc's does not.",
        "",
        markdown_table(("path", "calls", "p50 µs", "p99 µs", "mean µs", "p50 vs raw"), result),
        "",
        f"- whole decision / raw floor: {our_p50 / raw_p50:.2f}x at p50, "
        f"{our_mean / raw_mean:.2f}x on the mean",
        f"- against the single-row C API floor ({stats(fast)[0]:,.0f} µs, the fastest way "
        f"LightGBM scores these rows): whole decision {our_p50 / stats(fast)[0]:.2f}x, "
        f"served decision {live_p50 / stats(fast)[0]:.2f}x at p50",
        f"- MLflow pyfunc / whole decision: {gen_p50 / our_p50:.1f}x at p50, "
        f"{gen_p99 / our_p99:.1f}x at p99",
        f"- target: a whole decision costs <= 2x its raw model calls: "
        f"{our_p50 / raw_p50:.2f}x without the state store "
        f"(**{'met' if our_p50 <= 2 * raw_p50 else 'not met'}**), {live_p50 / raw_p50:.2f}x "
        f"with it (**{'met' if live_p50 <= 2 * raw_p50 else 'not met'}**)",
        "",
        "### Where a served decision's time goes",
        "",
        f"The same {SAMPLES:,} customers again, each stage timed on its own (no holdout, "
        "exploration or launch holds); the features, models, arbitration and JSON stages "
        f"together cost {pure:,.0f} µs on the mean, {pure / raw_mean:.2f}x the raw calls.",
        "",
        markdown_table(("stage", "p50 µs", "mean µs", "share", "vs raw mean"), split),
        "",
    ])
    publish("decide.md", markdown)


if __name__ == "__main__":
    main()
