"""Slow clients vs the serving design: decisions/s and p99 with and without 50 slowloris.

Run from the repo root: `.venv/bin/python bench/bench_front.py` (about 4 minutes on 2 cores).
Writes bench/results/front.md; docs/operations.md explains the choice it supports.

One 12-offer demo champion (bench_online's), served by each candidate in turn with 2 workers:
gunicorn's sync workers bound to the port themselves (the design before issue 14), the same
behind nginx on a unix socket (shipped: `nba serve`'s default), and gthread workers bound to
the port. All candidates run side by side (idle when not measured) and are loaded in turn by
wrk at 16 connections, ROUNDS times round-robin, so that other work on the machine hits each
alike (the median round is reported); then each once while 50 slowloris connections
(tests/faults/attack.py: half trickle their headers, half their body, one byte a second,
re-opened when closed) are held; /healthz is timed the same way. A request that does not
complete within wrk's 10 s time-out counts as an error.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.faults.attack: the suite's own slowloris

import bench_online as bo  # noqa: E402
from common import markdown_table, publish, quiet_logging  # noqa: E402

from tests.faults.attack import Slowloris  # noqa: E402

CANDIDATES: tuple[tuple[str, dict[str, str], str], ...] = (
    ("sync, 2 workers on the port (before)", {"NBA_FRONT": "none"}, ""),
    ("nginx + sync, 2 workers (shipped)", {}, ""),
    ("gthread, 2 workers x 4 threads on the port", {"NBA_FRONT": "none"},
     "--worker-class gthread --threads 4"),
    ("gthread, 2 workers x 32 threads on the port", {"NBA_FRONT": "none"},
     "--worker-class gthread --threads 32"),
)
CONNECTIONS = 16
SECONDS = 8
SLOW = 50
ROUNDS = 3


def run(url: str, bodies: list[dict] | None, loads: bo.LoadGenerator) -> bo.Load:
    """One wrk run at CONNECTIONS for SECONDS (10 s request time-out)."""
    target = loads.target(url, bodies)
    return target(CONNECTIONS, SECONDS, 10**9)


def main() -> None:
    """Train once, then measure every candidate with and without the slow clients."""
    quiet_logging()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nba-bench-front-") as tmp:
        loads = bo.LoadGenerator(Path(tmp))
        print("training the 12-offer champion ...", file=sys.stderr, flush=True)
        champion = bo.train_champion(Path(tmp) / "champion", 12)
        bodies = bo.nba_bodies(bo.customer_rows(champion))
        with ExitStack() as stack:
            servers = [stack.enter_context(bo.nba_server(champion, Path(tmp) / f"c{i}",
                                                         gunicorn_args=args, extra_env=env))
                       for i, (_, env, args) in enumerate(CANDIDATES)]
            for server in servers:
                bo.check_nba(server.base, bodies[0])
                run(f"{server.base}/v1/decisions", bodies, loads)  # warm-up
            calm: list[list[bo.Load]] = [[] for _ in servers]
            for r in range(ROUNDS):
                print(f"  round {r + 1} of {ROUNDS} ...", file=sys.stderr, flush=True)
                for i, server in enumerate(servers):
                    calm[i].append(run(f"{server.base}/v1/decisions", bodies, loads))
            for (label, _, _), server, loads_i in zip(CANDIDATES, servers, calm, strict=True):
                print(f"  {label}: with slow clients ...", file=sys.stderr, flush=True)
                calm_health = run(f"{server.base}/healthz", None, loads)
                port = int(server.base.rsplit(":", 1)[1])
                with Slowloris("127.0.0.1", port, connections=SLOW):
                    time.sleep(3)
                    slow = run(f"{server.base}/v1/decisions", bodies, loads)
                    slow_health = run(f"{server.base}/healthz", None, loads)
                median = sorted(loads_i, key=lambda load: load.rate)[len(loads_i) // 2]
                rows.append((label, *cells(median),
                             " / ".join(f"{load.rate:,.0f}" for load in loads_i),
                             *cells(slow), f"{calm_health.p99:.1f}",
                             f"{slow_health.p99:.1f}" if slow_health.requests else "-",
                             f"{slow_health.non_2xx + slow_health.socket_errors:,}"))
    header = ("candidate", "decisions/s (median round)", "p99 ms", "errors",
              "decisions/s, each round",
              f"decisions/s, {SLOW} slow", f"p99 ms, {SLOW} slow", f"errors, {SLOW} slow",
              "/healthz p99 ms", f"/healthz p99 ms, {SLOW} slow",
              f"/healthz errors, {SLOW} slow")
    publish("front.md", "\n".join([
        "## Slow clients vs the serving design (12 offers, 2 workers, loopback)", "",
        f"wrk (one thread), {CONNECTIONS} connections, {SECONDS} s per point, 10 s request "
        f"time-out, {ROUNDS} rounds over the candidates running side by side; then each once "
        f"while {SLOW} slowloris connections are held (half trickle headers, half a body, one "
        "byte a second). Servers, wrk and the slow clients share the machine's cores with "
        f"whatever else runs (load average before: {load:.2f}).", "",
        markdown_table(header, rows), ""]))


def cells(load: bo.Load) -> tuple[str, str, str]:
    """decisions/s, p99 and errors of one run ("-" when nothing completed)."""
    errors = f"{load.non_2xx + load.socket_errors:,}"
    if not load.requests:
        return "0", "-", errors
    return f"{load.rate:,.0f}", f"{load.p99:.1f}", errors


if __name__ == "__main__":
    main()
