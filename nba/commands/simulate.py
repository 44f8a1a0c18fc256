"""`nba simulate`: the demo retailer's customers against a running `nba serve`."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

from nba.commands.common import AddCommand, CliError, add_data_flag
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba simulate                       # 2,000 demo customers against "
            "http://127.0.0.1:8000\n  nba simulate --customers 10000 --channel app "
            "--seed 3\n  NBA_API_KEY=... nba simulate --url http://10.0.0.5:8000 "
            "--data-dir /tmp/demo\n\nStart the service first (`nba serve`, in another "
            "shell). Needs the demo data\n(nba demo-data): customers answer with the TRUE "
            "uplift of true_uplift.parquet.\nEach customer sees the top offer and converts "
            "with baseline + its true uplift\n(shown, accepted, purchased) or declines it "
            "with probability 0.3; a holdout\ncustomer converts with the baseline "
            "(purchased, no offer). Posting outcomes needs a\nstaff key unless the server "
            "runs with NBA_DEV_MODE=1.")

#: post(path, body) -> (status, body): how the simulator talks to the service
Post = Callable[[str, dict], tuple[int, dict]]


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba simulate`."""
    p = add("simulate", "Play the demo retailer's customers against a running `nba serve`: "
                        "ask for decisions, answer with the TRUE uplift, post outcomes.",
            EXAMPLES)
    p.add_argument("--url", default="http://127.0.0.1:8000",
                   help="base URL of the service (default %(default)s)")
    p.add_argument("--customers", type=int, default=2000,
                   help="decisions to ask for, one per sampled customer (default %(default)s)")
    p.add_argument("--channel", default="web", help="decision channel (default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the customer sample and their answers (default %(default)s)")
    p.add_argument("--api-key", default=settings.api_key,
                   help="a staff (or admin) API key: decisions and outcomes are both posted "
                        "(env NBA_API_KEY; none for a server in NBA_DEV_MODE)")
    add_data_flag(p, settings, "customers.parquet and true_uplift.parquet")
    p.set_defaults(handler=run)


def http_post(base_url: str, api_key: str | None = None, timeout: float = 30.0) -> Post:
    """A `post(path, body) -> (status, body)` for the simulator, over HTTP with urllib."""
    base = base_url.rstrip("/")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    def post(path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:  # an HTTPError holds the response's socket open until closed
                try:
                    return error.code, json.loads(error.read())
                except ValueError:
                    return error.code, {}
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach {base} ({reason}); is `nba serve` running "
                           "there?") from None

    return post


def run(args: argparse.Namespace) -> int:
    """Simulate and print the summary."""
    import numpy as np
    import pandas as pd

    from features import io
    from nba.demo import TRUE_UPLIFT
    from nba.simulate import SimulationError, Simulator

    if args.customers < 1:
        raise CliError("--customers must be at least 1")
    truth_path = args.data_dir / TRUE_UPLIFT
    if not truth_path.exists():
        raise CliError(f"{truth_path} not found: the simulator needs the demo generator's true "
                       "uplift (write it with `nba demo-data`)")
    customers = io.read_customers(args.data_dir / io.CUSTOMERS)
    try:
        simulator = Simulator(customers, pd.read_parquet(truth_path), args.seed)
    except ValueError as exc:
        raise CliError(f"{truth_path}: {exc}") from None
    known = simulator.customer_ids
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(known), args.customers, replace=args.customers > len(known))
    step = max(1, args.customers // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            print(f"  {done:,} / {total:,} decisions ({done / total:.0%})", file=sys.stderr,
                  flush=True)

    print(f"simulating {args.customers:,} customers against {args.url} "
          f"(channel {args.channel}, seed {args.seed})", file=sys.stderr, flush=True)
    try:
        summary = simulator.run(http_post(args.url, args.api_key), [known[i] for i in sample],
                                channel=args.channel, progress=progress)
    except SimulationError as exc:
        raise CliError(str(exc)) from None
    rate = summary.decisions / max(summary.seconds, 1e-9)
    print(f"decisions {summary.decisions:,} in {summary.seconds:.1f}s ({rate:,.0f}/s)")
    print(f"  holdouts     {summary.holdouts:>8,}  ({summary.holdouts / summary.decisions:.1%})")
    print(f"  explored     {summary.explored:>8,}  ({summary.explored / summary.decisions:.1%})")
    print(f"  served       {summary.served:>8,}")
    print(f"  conversions  {summary.conversions:>8,}  "
          f"({summary.conversions / summary.decisions:.1%})")
    print(f"  revenue      {summary.revenue:>12,.2f}")
    print(f"  outcomes     {summary.outcomes:>8,} posted ({summary.duplicates:,} duplicates)")
    if summary.throttled:
        print(f"  rate-limited {summary.throttled:>8,} requests (retried; NBA_RATE_LIMIT sets "
              "the server's limit)")
    return 0
