"""`nba customers`: load customer profiles into the shared state store, or count them."""

from __future__ import annotations

import argparse
from pathlib import Path

from nba.commands.common import AddCommand, CliError, add_state_flag, open_state
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba customers load data/customers.parquet    # replace every "
            "profile\n  nba customers load new.parquet --if-empty     # only into an empty "
            "store\n  nba customers show                           # how many are stored\n\n"
            "A load is all or nothing: a failure leaves the old profiles serving; run it again.")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba customers`."""
    p = add("customers", "Load customer profiles (customers.parquet) into the shared state "
                         "store the service decides from, or count them.", EXAMPLES)
    p.add_argument("action", choices=("load", "show"), help="load a file, or count profiles")
    p.add_argument("file", nargs="?", type=Path, default=None,
                   help="customers parquet in the data contract (for load)")
    p.add_argument("--if-empty", action="store_true",
                   help="load only when the store holds no profiles yet (make run uses this)")
    add_state_flag(p, settings)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load a customers file into the store, or print how many profiles it holds."""
    import time
    from datetime import UTC, datetime

    from features import io
    from features.customers import profile_documents

    with open_state(args.state_url) as store:
        if args.action == "show":
            print(f"{store.url}: {store.profiles.count():,} customer profiles")
            return 0
        if args.file is None:
            raise CliError("nba customers load needs a FILE (a customers parquet)")
        if args.if_empty and (count := store.profiles.count()):
            print(f"{store.url} already holds {count:,} customer profiles; not loading "
                  f"{args.file}")
            return 0
        started = time.perf_counter()
        frame = io.read_customers(args.file)  # validated: errors name the file and column
        count = store.profiles.replace(profile_documents(frame), now=datetime.now(UTC))
        print(f"loaded {count:,} customer profiles from {args.file} into {store.url} in "
              f"{time.perf_counter() - started:.1f}s")
    return 0
