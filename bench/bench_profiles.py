"""Customers in the state store vs in every worker: worker memory, decision latency, the read.

For each size (100k and 1M customers by default; `--sizes 100000,1000000,10000000` for 10M),
profiles are generated in bulk (the demo's customers resampled under new ids), loaded with the
real `nba customers load` path (COPY into PostgreSQL) and a worker process loads the champion
as the service does and decides for random customers:

- store: NBA_CUSTOMERS_FROM=store, the profile read in the decision's one statement;
- file (today's, the peer): customers.parquet held whole in the worker (up to --file-max).

Each worker reports its RSS (VmRSS after the decisions, VmHWM the peak) and the p50/p99 of the
served decision (`decide_live` + the decision-log write, against the same PostgreSQL). A last
table times the profile read itself: the hot read with and without the profile row, and the
hot read followed by a Redis GET of the same document (the alternative store).

Run from the repo root: `.venv/bin/python bench/bench_profiles.py`. Writes
bench/results/profiles.md. Uses the PostgreSQL at NBA_BENCH_POSTGRES_URL (default the test
server) in a schema of its own, dropped at the end, and Redis at NBA_BENCH_REDIS_URL under a
key prefix of its own, deleted at the end.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from common import markdown_table, publish, quiet_logging

from state import StateStore

POSTGRES = os.environ.get("NBA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("NBA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BASE_CUSTOMERS = 20_000
EXPOSURES = 80_000
SEED = 3
TREES = 100
DECISIONS = 2_000
WARMUP = 200
READS = 2_000
BATCH = 50_000


def bulk_frames(base: pd.DataFrame, n: int, seed: int = 0) -> Iterator[pd.DataFrame]:
    """`n` customers in batches: rows of `base` drawn at random under ids B00000000.. (fast)."""
    rng = np.random.default_rng(seed)
    rest = base.drop(columns=["customer_id"])
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        chunk = rest.iloc[rng.integers(0, len(base), size)].reset_index(drop=True)
        chunk.insert(0, "customer_id", [f"B{i:08d}" for i in range(start, start + size)])
        yield chunk


def bulk_documents(base: pd.DataFrame, n: int) -> Iterator[list[tuple[str, str]]]:
    """The same customers as `bulk_frames`, as profile documents."""
    from features.customers import profile_documents

    for chunk in bulk_frames(base, n):
        yield from profile_documents(chunk, BATCH)


def worker(args: argparse.Namespace) -> None:
    """One worker: load the champion as the service does, decide, print RSS and latencies."""
    from decisioning.decision import DecisionContext, DecisionSettings
    from service.live import LiveState, Served, decide_live, log_decisions
    from service.model_store import load_from_registry
    from service.settings import ServiceSettings
    from state import open_store

    quiet_logging()
    settings = ServiceSettings(tracking_uri=args.tracking_uri, data_dir=Path(args.data_dir),
                               state_url=args.state_url, customers_from=args.worker,
                               holdout_share=0.05)
    started = time.perf_counter()
    model = load_from_registry(settings)
    load_s = time.perf_counter() - started
    live = LiveState(open_store(args.state_url))
    rng = np.random.default_rng(1)
    ids = [f"B{i:08d}" for i in rng.integers(0, args.customers, DECISIONS + WARMUP)]
    served = DecisionSettings(holdout_share=0.05, exploration=0.05)
    out = np.empty(DECISIONS + WARMUP)
    decided = np.empty(DECISIONS + WARMUP)
    for k, customer_id in enumerate(ids):
        t0 = time.perf_counter_ns()
        context = DecisionContext(channel="web", now=datetime.now(UTC), limit=3)
        decision_id = uuid.uuid4().hex
        result = decide_live(live, model, customer_id, context, decision_id, served)
        t1 = time.perf_counter_ns()
        # as the route logs it: the contact cap counted again in the write's transaction
        log_decisions(live, model, [Served(result, context, decision_id)])
        out[k] = (time.perf_counter_ns() - t0) / 1_000
        decided[k] = (t1 - t0) / 1_000
    live.store.close()
    status = Path("/proc/self/status").read_text().splitlines()
    memory = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status
              if line.startswith(("VmRSS", "VmHWM"))}
    timed = out[WARMUP:]
    print(json.dumps({"decide_p50": float(np.percentile(decided[WARMUP:], 50)),
                      "decide_p99": float(np.percentile(decided[WARMUP:], 99)),
                      "p50": float(np.percentile(timed, 50)),
                      "p99": float(np.percentile(timed, 99)), "rss": memory["VmRSS"],
                      "peak": memory["VmHWM"], "load_s": load_s}))


def run_worker(mode: str, n: int, tracking_uri: str, data_dir: Path, state_url: str) -> dict:
    """A worker in its own process (its memory is its own); its JSON line."""
    out = subprocess.run([sys.executable, __file__, "--worker", mode, "--customers", str(n),
                          "--tracking-uri", tracking_uri, "--data-dir", str(data_dir),
                          "--state-url", state_url], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{mode} worker failed:\n{out.stderr[-3000:]}")
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def read_costs(store: StateStore, n: int) -> list[tuple[str, str, str]]:
    """p50/p99 µs of the hot read without, with the profile row, and + a Redis GET."""
    import redis

    rng = np.random.default_rng(2)
    ids = [f"B{i:08d}" for i in rng.integers(0, n, READS)]
    prefix = f"nba-bench-{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS)
    try:
        documents = {cid: json.dumps(store.profiles.get(cid)) for cid in set(ids)}
        client.mset({prefix + cid: doc for cid, doc in documents.items()})
        now = datetime.now(UTC)

        def hot(customer_id: str, profile: bool) -> object:
            return store.decision_state(customer_id=customer_id, channel="web", now=now,
                                        with_profile=profile)

        def timed(call: Callable[[str], object]) -> np.ndarray:
            for cid in ids[:WARMUP]:
                call(cid)
            out = np.empty(READS)
            for k, cid in enumerate(ids):
                t0 = time.perf_counter_ns()
                call(cid)
                out[k] = (time.perf_counter_ns() - t0) / 1_000
            return out

        without = timed(lambda cid: hot(cid, False))
        within = timed(lambda cid: hot(cid, True))
        with_redis = timed(lambda cid: (hot(cid, False),
                                        json.loads(client.get(prefix + cid) or "null")))
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start:start + 10_000])
        client.close()

    def row(name: str, us: np.ndarray) -> tuple[str, str, str]:
        return name, f"{np.percentile(us, 50):,.0f}", f"{np.percentile(us, 99):,.0f}"

    return [row("hot read, no profile (file mode)", without),
            row("hot read + profile row in the same statement (store mode)", within),
            row("hot read, then a Redis GET of the profile (the alternative)", with_redis)]


def main() -> None:
    """Train once, then per size: load profiles, run a store worker and (<= --file-max) a
    file worker; print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=("store", "file"))
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--tracking-uri")
    parser.add_argument("--data-dir")
    parser.add_argument("--state-url")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--file-max", type=int, default=1_000_000)
    parser.add_argument("--out", default="profiles.md", help="file under bench/results/")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from sqlalchemy import create_engine, text

    from features import io
    from nba import demo
    from state import open_store
    from state.rows import stock_rows
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    quiet_logging()
    sizes = [int(s) for s in args.sizes.split(",")]
    schema = f"nba_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    state_url = f"{POSTGRES}?options={quote(f'-csearch_path={schema}')}"
    rows, reads = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="nba-bench-profiles-") as tmp:
            root = Path(tmp)
            data_dir = root / "data"
            data = demo.generate(BASE_CUSTOMERS, EXPOSURES, SEED)
            demo.write(data, data_dir)
            tracking_uri = f"sqlite:///{root}/mlflow.db"
            train(TrainSettings(data_dir=data_dir, tracking_uri=tracking_uri,
                                artifact_root=root / "mlruns",
                                params=BoosterParams(n_estimators=TREES, n_jobs=1)))
            store = open_store(state_url)
            store.replace_inventory(stock_rows(io.read_inventory(data_dir / io.INVENTORY)),
                                    now=datetime.now(UTC))
            for n in sizes:
                started = time.perf_counter()
                loaded = store.profiles.replace(bulk_documents(data.customers, n),
                                                now=datetime.now(UTC))
                load_s = time.perf_counter() - started
                with admin.begin() as conn:
                    conn.execute(text(f'ANALYZE "{schema}".profiles'))
                print(f"{n:,}: loaded {loaded:,} profiles in {load_s:.1f}s", file=sys.stderr)
                on_file = None
                if n <= args.file_max:
                    frame = pd.concat(list(bulk_frames(data.customers, n)), ignore_index=True)
                    io.write_parquet(frame, data_dir / io.CUSTOMERS)
                    del frame
                    on_file = run_worker("file", n, tracking_uri, data_dir, state_url)
                on_store = run_worker("store", n, tracking_uri, data_dir, state_url)
                rows.append((n, load_s, on_store, on_file))
                reads = read_costs(store, n)
            store.close()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    publish(args.out, report(rows, reads, sizes[-1]))


def report(rows: list, reads: list, last: int) -> str:
    """The markdown tables."""
    table = []
    for n, _, on_store, on_file in rows:
        for mode, r in (("store", on_store), ("file (today)", on_file)):
            if r is None:
                continue
            ratios = ("", "")
            if mode == "store" and on_file is not None:
                ratios = (f"{on_store['decide_p50'] / on_file['decide_p50']:.2f}x",
                          f"{on_store['p50'] / on_file['p50']:.2f}x")
            table.append((f"{n:,}", mode, f"{r['rss']:,.0f}", f"{r['peak']:,.0f}",
                          f"{r['load_s']:.1f}", f"{r['decide_p50']:,.0f}",
                          f"{r['decide_p99']:,.0f}", f"{r['p50']:,.0f}", f"{r['p99']:,.0f}",
                          *ratios))
    loads = ", ".join(f"{n:,} in {s:.1f} s ({n / s:,.0f}/s)" for n, s, _, _ in rows)
    return "\n".join([
        "## Customers in the state store vs in every worker",
        "",
        f"A policy trained on {BASE_CUSTOMERS:,} demo customers ({TREES} trees); profiles are "
        "those customers resampled under new ids, loaded into PostgreSQL by "
        "`Profiles.replace` (COPY into a staging table, swapped in one transaction): "
        f"{loads}. One worker process per row loads the champion as the service does and "
        f"serves {DECISIONS:,} decisions for random customers (`decide_live` + the log write, "
        f"after {WARMUP} warm-up), holdout and exploration on. RSS of that worker in MB.",
        "",
        markdown_table(("customers", "customers from", "RSS MB", "peak MB", "model load s",
                        "decide p50 µs", "decide p99 µs", "+ log write p50 µs", "p99 µs",
                        "decide p50 store/file", "+ log p50 store/file"), table),
        "",
        "decide: `decide_live` (the state read, with the profile in store mode; features, "
        "scores, rules, launch holds); + log write: and the decision-log commit, as the route "
        "does (on a shared PostgreSQL the commit's fsync dominates, and varies run to run).",
        "",
        f"### The profile read ({READS:,} random customers of {last:,}, µs)",
        "",
        markdown_table(("read", "p50 µs", "p99 µs"), reads),
        "",
        "The profile rides in the statement the decision already makes, so it costs one more "
        "index lookup, not one more round trip; Redis would add a second network round trip "
        "(and a second store to keep consistent with the events that update profiles).",
        "",
    ])


if __name__ == "__main__":
    main()
