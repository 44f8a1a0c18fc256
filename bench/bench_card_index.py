"""What the profiles' card index (ix_profiles_card) costs a bulk load, and what a lookup costs.

The staff page finds a stored customer by loyalty card through a partial expression index on
the profile document's normalized `loyalty_card` (state.schema.CARD_KEY). Every bulk load
(`nba customers load`) maintains it. For each backend, N profiles (a share with a card) are
loaded with the real `Profiles.replace` path twice in the same run: with the index (as shipped)
and with it dropped (the peer); then the lookup by card (`Profiles.by_card`) is timed against
the lookup by id (`Profiles.get`, the primary key).

Run from the repo root: `nice .venv/bin/python bench/bench_card_index.py [--rows 200000]`.
Writes bench/results/card_index.md. PostgreSQL at NBA_BENCH_POSTGRES_URL (default the test
server) in a schema of its own, dropped at the end; SQLite in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from common import markdown_table, publish
from sqlalchemy import create_engine, text

from state import StateStore, open_store
from state.schema import card_index_ddl

POSTGRES = os.environ.get("NBA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 50_000
LOOKUPS = 2_000


def card(i: int) -> str:
    return f"6001 {i // 10_000:04d}-{i % 10_000:04d}"


def documents(n: int, card_share: float) -> Iterator[list[tuple[str, str]]]:
    """`n` profile documents shaped like the demo's, every 1/card_share-th with a card."""
    every = max(1, round(1 / card_share))
    for start in range(0, n, BATCH):
        yield [(f"B{i:08d}", json.dumps({
            "recency_days": i % 365, "frequency": i % 17, "monetary": round(i * 0.37 % 900, 2),
            "loyalty_tier": "gold", "contactable": True, "preferred_size": "M",
            **({"loyalty_card": card(i)} if i % every == 0 else {})}))
            for i in range(start, min(n, start + BATCH))]


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def p50_ms(run: Callable[[int], object], keys: np.ndarray) -> float:
    times = []
    for k in keys:
        start = time.perf_counter()
        run(int(k))
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def measure(store: StateStore, backend: str, rows: int, share: float) -> list[str]:
    now = datetime.now(UTC)
    store.profiles.replace(documents(1_000, share), now=now)  # warm the connection and tables
    with_index = seconds(lambda: store.profiles.replace(documents(rows, share), now=now))
    every = max(1, round(1 / share))
    keys = np.random.default_rng(0).integers(0, rows // every, LOOKUPS) * every
    by_card = p50_ms(lambda i: store.profiles.by_card(card(i).replace(" ", "").replace("-", "")),
                     keys)
    by_id = p50_ms(lambda i: store.profiles.get(f"B{i:08d}"), keys)
    assert store.profiles.by_card(card(int(keys[0])).replace(" ", "").replace("-", ""))
    with store.profiles.db.write("drop the card index") as conn:
        conn.execute(text("DROP INDEX ix_profiles_card"))
    without = seconds(lambda: store.profiles.replace(documents(rows, share), now=now))
    with store.profiles.db.write("restore the card index") as conn:
        conn.execute(text(card_index_ddl(backend)))
    return [backend, f"{rows:,}", f"{share:.0%}", f"{with_index:.1f}", f"{without:.1f}",
            f"{with_index / without:.2f}x", f"{by_card:.2f}", f"{by_id:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--card-share", type=float, default=0.5)
    parser.add_argument("--out", default="card_index.md", help="file under bench/results/")
    args = parser.parse_args()
    table = []
    with tempfile.TemporaryDirectory() as tmp, \
            open_store(f"sqlite:///{Path(tmp) / 'state.db'}") as store:
        table.append(measure(store, "sqlite", args.rows, args.card_share))
    schema = f"bench_card_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        joiner = "&" if "?" in POSTGRES else "?"
        url = f"{POSTGRES}{joiner}options={quote(f'-csearch_path={schema}')}"
        with open_store(url) as store:
            table.append(measure(store, "postgresql", args.rows, args.card_share))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    load = os.getloadavg()
    publish(args.out, "# Profiles' card index: bulk-load cost and lookup latency\n\n"
            + markdown_table(("backend", "profiles", "with card", "load s (index)",
                              "load s (no index)", "ratio", "by_card p50 ms", "get p50 ms"),
                             table)
            + f"\n\nload average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              "(2 cores, shared: timings are noisy)\n")


if __name__ == "__main__":
    main()
