"""`nba state prune` and `nba state partition`: keep the state store bounded."""

from __future__ import annotations

import argparse
import sys

from nba.commands.common import AddCommand, CliError, add_data_flag, add_state_flag, open_state
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba state prune --older-than 400 --dry-run   # what would go\n"
            "  nba state prune --older-than 400             # delete it, in small batches\n"
            "  nba state prune --before 2026-01-01          # everything before a date (UTC)\n"
            "  nba state partition                          # a PostgreSQL store made before "
            "partitioning\n\n"
            "Deletes decisions (with their outcomes), contacts and declines older than the "
            "cut-off,\nand launch holds that ended (released or expired) before it. Sales "
            "stay. On PostgreSQL\nthe decision log and contacts are partitioned by month: "
            "months wholly before the cut-off\nare dropped as partitions. Reports look back "
            "only as far as what is kept: export first\n(nba export-training, nba report).")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba state`."""
    p = add("state", "Keep the state store bounded: delete decision-log, contact and decline "
                     "history older than a cut-off (dropping whole monthly partitions on "
                     "PostgreSQL), or partition a PostgreSQL store made before partitioning.",
            EXAMPLES)
    p.add_argument("action", choices=("prune", "partition"),
                   help="prune: delete old history; partition: turn a PostgreSQL store's "
                        "plain decision log and contacts into monthly partitions (once)")
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--older-than", type=float, metavar="DAYS",
                     help="prune what is older than this many days; at least the catalog's "
                          "contact-cap windows (offers.yaml in --data-dir)")
    cut.add_argument("--before", metavar="DATE",
                     help="prune what is older than this ISO 8601 date or time (naive = UTC)")
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    add_data_flag(p, settings)
    add_state_flag(p, settings)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Prune (or count) history older than the cut-off, or partition the store."""
    if args.action == "partition":
        return _partition(args)
    return _prune(args)


def _partition(args: argparse.Namespace) -> int:
    from state import StateStoreError

    if args.older_than is not None or args.before is not None or args.dry_run:
        raise CliError("partition takes no --older-than, --before or --dry-run")
    with open_state(args.state_url) as store:
        try:
            done = store.db.partition()
        except StateStoreError as exc:
            raise CliError(str(exc)) from None
    print(f"{store.url}: " + ("already partitioned by month" if not done else
                              "partitioned:\n  " + "\n  ".join(done)))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from features import io
    from nba.commands.common import parse_since
    from state import StateStoreError
    from state.retention import CutoffTooRecent, check_cutoff, prune

    now = datetime.now(UTC)
    if args.before is not None:
        try:
            cut = parse_since(args.before)
        except CliError as exc:
            raise CliError(str(exc).replace("--since", "--before")) from None
        assert cut is not None  # args.before is not None
        before = cut
        older_than = (now - before).total_seconds() / 86_400
        flag = f"--before {args.before}"
    elif args.older_than is not None:
        if not args.older_than > 0:
            raise CliError("--older-than must be a positive number of days")
        older_than = args.older_than
        try:
            before = now - timedelta(days=older_than)
        except OverflowError:
            raise CliError(f"--older-than {older_than:g} days goes back before the year 1"
                           ) from None
        flag = f"--older-than {older_than:g}"
    else:
        raise CliError("prune needs --older-than DAYS or --before DATE")
    offers = args.data_dir / io.OFFERS
    caps = io.read_catalog(offers).contact_policy if offers.exists() else None
    if caps is not None:
        try:
            check_cutoff(older_than, cap_window_hours=caps.window_hours,
                         decline_days=caps.decline_days)
        except CutoffTooRecent as exc:
            raise CliError(f"{flag} would delete history the contact caps in {offers} still "
                           f"count ({exc.needed_days:g} days); use at least "
                           f"{exc.needed_days:g} days back") from None

    def progress(table: str, done: int) -> None:
        print(f"  {table}: {done:,} deleted so far", file=sys.stderr, flush=True)

    with open_state(args.state_url) as store:
        try:
            pruned = prune(store, before=before, dry_run=args.dry_run, progress=progress)
        except StateStoreError as exc:
            raise CliError(str(exc)) from None
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{store.url}: {verb} history older than {before:%Y-%m-%d %H:%M} UTC "
          f"({older_than:.4g} days):")
    for table, rows in pruned.items():
        print(f"  {table:<13} {rows:>10,}")
    if pruned.partitions:
        print(f"  {'dropping' if args.dry_run else 'dropped'} whole partitions: "
              f"{', '.join(pruned.partitions)}")
    return 0

