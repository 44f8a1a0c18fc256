"""Cold start: from launching `nba serve` to its first good decision, and where the time goes.

Run from the repo root: `.venv/bin/python bench/bench_coldstart.py` (about a minute and a half).
Writes bench/results/coldstart.md.

The demo champion is trained on the demo's default 50,000 customers (what `make run` serves).
Each start launches `nba serve --workers 2` with a fresh SQLite state store holding the demo
stock, then POSTs a decision every 20 ms until one comes back 200 (gunicorn binds its socket in
the master before the workers load, so an early request waits in the backlog). The same is done
for `mlflow models serve -w 2` and its first 200 prediction. A child process then times the
steps one worker takes before it can decide, in order, without gunicorn.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

from bench_online import (
    Champion,
    Server,
    check_mlflow,
    customer_rows,
    mlflow_bodies,
    mlflow_server,
    nba_env,
    nba_server,
    post_json,
    train_champion,
)
from common import markdown_table, publish, quiet_logging

CUSTOMERS = 50_000
EXPOSURES = 80_000
STARTS = 3
POLL_SECONDS = 0.02

#: run in a child with the server's environment: the steps of a worker's start, timed
WORKER_STEPS = r"""
import json, time
marks = [("python start to here", time.perf_counter())]
def mark(step):
    marks.append((step, time.perf_counter()))
import numpy, pandas, pyarrow.parquet, lightgbm
mark("import NumPy, pandas, pyarrow, LightGBM")
import mlflow.pyfunc
mark("import MLflow")
import flask, sqlalchemy
from service.observability import configure_logging
configure_logging("WARNING")
import service.api, service.staff, service.reports_api, service.openapi
mark("import Flask, SQLAlchemy and the service modules")
from datetime import UTC, datetime
from features import io
from decisioning.launch import launch_distributions
from service.settings import ServiceSettings
from training import registry
settings = ServiceSettings.from_env()
client = registry.configure(settings.tracking_uri)
ref = registry.get_alias(client, settings.model_name, settings.model_alias)
mark("registry: open the tracking store, resolve the alias")
pyfunc = mlflow.pyfunc.load_model(f"models:/{ref.name}/{ref.version}")
policy = pyfunc.unwrap_python_model().policy
mark("`mlflow.pyfunc.load_model`: the policy and its boosters")
frame = io.read_customers(settings.data_dir / io.CUSTOMERS, policy.spec)
mark("read and validate customers.parquet")
customers = policy.customers(frame)
mark("build the customer table (feature matrix)")
metrics = client.get_run(ref.run_id).data.metrics
distributions = launch_distributions(policy.catalog, customers)
mark("run metrics, launch value distributions")
from service import create_app
from service.model_store import LoadedModel, ModelStore, smoke_decision
model = LoadedModel(policy, ref.name, ref.version, ref.alias, ref.run_id, dict(metrics),
                    customers, distributions)
smoke_decision(model)
app = create_app(settings, store=ModelStore(lambda: model))
app.extensions["nba.model_store"].try_load()
mark("smoke decision and create_app")
response = app.test_client().post("/v1/decisions", json={"customer_id": customers.ids[0],
                                                         "channel": "web"})
assert response.status_code == 200, response.json
mark("first decision (state store opened on first use)")
print(json.dumps([(step, t1 - t0) for (_, t0), (step, t1) in zip(marks, marks[1:])]))
"""


def first_decision(server: Server, body: dict, path: str, timeout: float = 120.0) -> float:
    """Seconds from launch until a POST to `path` answers 200 (retrying every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = post_json(f"{server.base}{path}", body, timeout=timeout)
            if status == 200:
                return time.perf_counter() - server.started
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            pass
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{server.log_path.read_text()[-4000:]}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"no good answer in {timeout:.0f} s:\n{server.log_path.read_text()[-4000:]}")


def listening(server: Server) -> float:
    """Seconds from launch until the port accepts a connection."""
    port = int(server.base.rsplit(":", 1)[1])
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return time.perf_counter() - server.started
        except OSError:
            if server.process.poll() is not None:
                raise RuntimeError(server.log_path.read_text()[-4000:]) from None
            time.sleep(POLL_SECONDS / 4)


def worker_steps(champion: Champion, root: Path) -> list[tuple[str, float]]:
    """The steps of one worker's start, timed in a fresh child process."""
    env = nba_env(champion, root / "state.db")
    out = subprocess.run([sys.executable, "-c", WORKER_STEPS], env=env, check=True,
                         capture_output=True, text=True).stdout
    return [(step, seconds) for step, seconds in json.loads(out.strip().splitlines()[-1])]


def main() -> None:
    """Train, start each server a few times, time a worker's steps, publish."""
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="nba-bench-coldstart-") as tmp:
        root = Path(tmp)
        print("training the demo champion ...", file=sys.stderr, flush=True)
        champion = train_champion(root / "champion", customers=CUSTOMERS, exposures=EXPOSURES)
        frame = customer_rows(champion)
        ours_body = {"customer_id": frame["customer_id"].iloc[0], "channel": "web"}
        theirs_body = mlflow_bodies(frame.head(1))[0]
        ours, theirs = [], []
        for i in range(STARTS):
            print(f"start {i + 1} of {STARTS} ...", file=sys.stderr, flush=True)
            with nba_server(champion, root / f"nba-{i}", wait=False) as server:
                listen = listening(server)
                ours.append((listen, first_decision(server, ours_body, "/v1/decisions")))
            with mlflow_server(champion, root / f"mlflow-{i}", wait=False) as server:
                listen = listening(server)
                theirs.append((listen, first_decision(server, theirs_body, "/invocations")))
                check_mlflow(server.base, theirs_body)
        (root / "steps").mkdir()
        steps = worker_steps(champion, root / "steps")

    def row(label: str, runs: list[tuple[float, float]]) -> tuple[str, ...]:
        firsts = [first for _, first in runs]
        return (label, f"{statistics.median(listen for listen, _ in runs):.2f}",
                f"{statistics.median(firsts):.2f}", f"{min(firsts):.2f}", f"{max(firsts):.2f}")

    total = sum(seconds for _, seconds in steps)
    markdown = "\n".join([
        "## Cold start",
        "",
        f"Demo champion trained on {CUSTOMERS:,} customers, {EXPOSURES:,} exposures (12 offers, "
        f"150 trees per booster); {STARTS} starts of each server, 2 workers each; a request every "
        f"{POLL_SECONDS * 1000:.0f} ms from launch until the first 200.",
        "",
        markdown_table(("server", "port open s (median)", "first good answer s (median)",
                        "min", "max"),
                       [row("`nba serve --workers 2` (first decision)", ours),
                        row("`mlflow models serve -w 2` (first prediction)", theirs)]),
        "",
        "One worker's start, step by step (a fresh process, no gunicorn):",
        "",
        markdown_table(("step", "seconds", "share"),
                       [(step, f"{seconds:.2f}", f"{seconds / total:.0%}")
                        for step, seconds in steps] + [("total", f"{total:.2f}", "100%")]),
        "",
    ])
    publish("coldstart.md", markdown)


if __name__ == "__main__":
    main()
