"""The decision log at scale on PostgreSQL: campaign logging by COPY vs row INSERTs, and
pruning a month by dropping its partition vs deleting its rows.

Logging: `--rows` campaign decisions (two offers each, so two contact rows; a realistic
feature row as JSON), written in batches of `--batch` the way `nba batch-score --campaign`
logs them (state.campaigns.log_decisions: "already logged?" check, decision rows, contact
rows, one transaction per batch) into the monthly-partitioned tables, once with COPY (today's
path, `copy_rows`) and once with one executemany INSERT per table (the path it replaced,
`insert_rows`), each into a fresh schema, alternating for `--rounds` rounds; the median is
reported with the ratio.

Pruning: the same month of decisions and contacts pruned by `state.retention.prune` from the
partitioned store (the month's partitions dropped) and from a store with the plain tables
every store had before partitioning (rows deleted in batches of 2,000).

Run from the repo root: `nice .venv/bin/python bench/bench_decision_log.py`. Writes
bench/results/decision_log.md. Uses the PostgreSQL at NBA_BENCH_POSTGRES_URL (default the
test server) in schemas of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from common import markdown_table, publish, quiet_logging
from sqlalchemy import create_engine, text

from state import StateStore, open_store
from state.campaigns import _logged, copy_rows, insert_rows
from state.log import Candidate, DecisionRecord, _row
from state.retention import prune
from state.schema import contacts, decisions, metadata

POSTGRES = os.environ.get("NBA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MONTH = datetime(2031, 1, 1, tzinfo=UTC)


def records(n: int, campaign: str) -> list[DecisionRecord]:
    """`n` campaign decisions spread over January 2031, shaped like the demo's."""
    step = timedelta(days=30) / n
    return [DecisionRecord(
        decision_id=f"campaign:{campaign}:C{i:09d}", decided_at=MONTH + i * step,
        customer_id=f"C{i:09d}", channel="email", model_version="7",
        offer_ids=("spring-coat", "loyalty-10"), chosen_offer="spring-coat",
        propensity=0.95, candidates=(Candidate("spring-coat", 4.21, 0.031),
                                     Candidate("loyalty-10", 2.05, 0.018)),
        suppressed={"clearance": "out_of_stock"},
        features={"tenure_days": 400 + i % 900, "orders_12m": i % 17, "spend_12m": 312.5,
                  "loyalty_tier": "silver", "region": "north", "age_band": "35-44",
                  "email_opens_90d": i % 23, "last_order_days": i % 200},
        segment="silver") for i in range(n)]


@contextmanager
def schema(admin: Any, *, plain: bool = False) -> Iterator[StateStore]:
    """A store in a schema of its own (`plain`: the tables as made before partitioning)."""
    name = f"nba_bench_log_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    joiner = "&" if "?" in POSTGRES else "?"
    url = f"{POSTGRES}{joiner}options={quote(f'-csearch_path={name}')}"
    try:
        if plain:
            engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
            metadata.create_all(engine)
            engine.dispose()
        with open_store(url) as store:
            yield store
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))


def log(store: StateStore, batch: list[DecisionRecord],
        write: Callable[[Any, Any, list[dict[str, Any]]], None]) -> None:
    """One campaign batch as state.campaigns.log_decisions writes it, through `write`."""
    rows = [_row(r) for r in batch]
    store.db.ensure_partitions(rows, [{"contacted_at": r.decided_at} for r in batch])
    with store.db.write("bench log") as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(1)"))
        seen = _logged(conn, [r["decision_id"] for r in rows])
        write(conn, decisions, [r for r in rows if r["decision_id"] not in seen])
        write(conn, contacts, [{"customer_id": r.customer_id, "channel": r.channel,
                                "offer_id": o, "contacted_at": r.decided_at}
                               for r in batch for o in r.offer_ids])


def time_logging(admin: Any, all_records: list[DecisionRecord], size: int,
                 write: Callable[..., None]) -> float:
    """Seconds to log every record in batches of `size` into a fresh partitioned store."""
    with schema(admin) as store:
        start = time.perf_counter()
        for i in range(0, len(all_records), size):
            log(store, all_records[i:i + size], write)
        return time.perf_counter() - start


def time_prune(admin: Any, all_records: list[DecisionRecord], *, plain: bool
               ) -> tuple[float, int, int]:
    """(seconds, decisions, contacts) to prune January from a loaded store."""
    with schema(admin, plain=plain) as store:
        for i in range(0, len(all_records), 10_000):
            log(store, all_records[i:i + 10_000], copy_rows)
        with store.db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        start = time.perf_counter()
        pruned = prune(store, before=MONTH + timedelta(days=31))
        return time.perf_counter() - start, pruned.decisions, pruned.contacts


def main() -> None:
    """Measure and publish."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    quiet_logging()
    admin = create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1))
    all_records = records(args.rows, "bench")
    timings: dict[str, list[float]] = {"COPY": [], "INSERT": []}
    for _ in range(args.rounds):
        timings["COPY"].append(time_logging(admin, all_records, args.batch, copy_rows))
        timings["INSERT"].append(time_logging(admin, all_records, args.batch, insert_rows))
    copy_s, insert_s = (statistics.median(timings[k]) for k in ("COPY", "INSERT"))
    per = 1 + 2  # a decision row and two contact rows
    log_rows = [[path, f"{args.rows:,}", f"{seconds:.2f}", f"{args.rows / seconds:,.0f}",
                 f"{per * args.rows / seconds:,.0f}", ratio]
                for path, seconds, ratio in (
                    ("COPY (state.campaigns.copy_rows, now)", copy_s,
                     f"{insert_s / copy_s:.1f}x faster"),
                    ("INSERT executemany (before)", insert_s, "1.0x"))]
    drop_s, dropped, dropped_contacts = time_prune(admin, all_records, plain=False)
    delete_s, deleted, deleted_contacts = time_prune(admin, all_records, plain=True)
    assert (dropped, dropped_contacts) == (deleted, deleted_contacts) == (args.rows,
                                                                           2 * args.rows)
    prune_rows = [["partitioned: drop the month's partitions", f"{dropped:,}",
                   f"{dropped_contacts:,}", f"{drop_s:.2f}", f"{delete_s / drop_s:.0f}x faster"],
                  ["plain tables (before): delete in batches of 2,000", f"{deleted:,}",
                   f"{deleted_contacts:,}", f"{delete_s:.2f}", "1x"]]
    load = os.getloadavg()[0]
    publish("decision_log.md", "\n".join([
        "## The decision log at scale (PostgreSQL)", "",
        f"`nice .venv/bin/python bench/bench_decision_log.py --rows {args.rows} --batch "
        f"{args.batch} --rounds {args.rounds}`; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {load:.2f} on {os.cpu_count()} cores (shared: figures are noisy). "
        "PostgreSQL on the same machine.", "",
        f"### Logging campaign decisions (batches of {args.batch:,}, median of "
        f"{args.rounds} rounds, each into a fresh partitioned schema)", "",
        markdown_table(["path", "decisions", "seconds", "decisions/s", "rows/s (1 + 2 contacts)",
                        "vs INSERT"], log_rows), "",
        f"All rounds (s): COPY {', '.join(f'{t:.2f}' for t in timings['COPY'])}; "
        f"INSERT {', '.join(f'{t:.2f}' for t in timings['INSERT'])}.", "",
        "### Pruning one month (its decisions, their contacts)", "",
        markdown_table(["store", "decisions", "contacts", "seconds", "vs delete"], prune_rows),
        "",
    ]))
    admin.dispose()


if __name__ == "__main__":
    main()
