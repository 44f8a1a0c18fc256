"""`nba demo-data`: a synthetic retailer in the data contract, with the true uplift."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nba.commands.common import AddCommand, CliError
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba demo-data                      # 50,000 customers, 200,000 "
            "exposures into ./data\n  nba demo-data --customers 5000 --seed 1 --out /tmp/demo")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba demo-data`."""
    p = add("demo-data", "Write a synthetic retailer in the data contract, with the TRUE "
                         "uplift of every offer (true_uplift.parquet) for checking models.",
            EXAMPLES)
    p.add_argument("--customers", type=int, default=50_000, help="customers (default %(default)s)")
    p.add_argument("--exposures", type=int, default=None,
                   help="exposure rows in the randomized campaign log (default 4 x customers)")
    p.add_argument("--new-customers", type=int, default=0,
                   help="also this many exposures of first visits (no profile, marked "
                        "new_customer): they train the first-visit policy (default 0)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default %(default)s)")
    p.add_argument("--out", type=Path, default=settings.data_dir,
                   help="output folder (env NBA_DATA_DIR; default %(default)s)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Generate and write the demo data."""
    from nba import demo

    if args.customers < 1:
        raise CliError("--customers must be at least 1")
    exposures = args.exposures if args.exposures is not None else 4 * args.customers
    if exposures < 1:
        raise CliError("--exposures must be at least 1")
    started = time.perf_counter()
    if args.new_customers < 0:
        raise CliError("--new-customers must be at least 0")
    data = demo.generate(args.customers, exposures, args.seed, new_customers=args.new_customers)
    paths = demo.write(data, args.out)
    print(f"wrote {args.customers:,} customers, {exposures:,} exposures, "
          f"{len(data.catalog.offers)} offers, {len(data.inventory)} inventory rows to "
          f"{args.out}/ in {time.perf_counter() - started:.1f}s")
    for path in paths.values():
        print(f"  {path}")
    return 0
