"""`nba state prune`: keep the state store bounded by deleting old history."""

from __future__ import annotations

import argparse
import sys

from nba.commands.common import AddCommand, CliError, add_data_flag, add_state_flag, open_state
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba state prune --older-than 400 --dry-run   # what would go\n"
            "  nba state prune --older-than 400             # delete it, in small batches\n\n"
            "Deletes decisions (with their outcomes), contacts and declines older than the "
            "cut-off,\nand launch holds that ended (released or expired) before it. Sales "
            "stay. Reports\nlook back only as far as what is kept: export first "
            "(nba export-training, nba report).")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba state`."""
    p = add("state", "Keep the state store bounded: delete decision-log, contact and decline "
                     "history older than a cut-off.", EXAMPLES)
    p.add_argument("action", choices=("prune",), help="prune: delete old history")
    p.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                   help="delete what is older than this many days; at least the catalog's "
                        "contact-cap windows (offers.yaml in --data-dir)")
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    add_data_flag(p, settings)
    add_state_flag(p, settings)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Prune (or count) history older than the cut-off; refused inside the cap windows."""
    from datetime import UTC, datetime, timedelta

    from features import io
    from state import StateStoreError
    from state.retention import CutoffTooRecent, check_cutoff, prune

    if not args.older_than > 0:
        raise CliError("--older-than must be a positive number of days")
    offers = args.data_dir / io.OFFERS
    caps = io.read_catalog(offers).contact_policy if offers.exists() else None
    if caps is not None:
        try:
            check_cutoff(args.older_than, cap_window_hours=caps.window_hours,
                         decline_days=caps.decline_days)
        except CutoffTooRecent as exc:
            raise CliError(f"--older-than {args.older_than:g} would delete history the "
                           f"contact caps in {offers} still count ({exc.needed_days:g} days); "
                           f"use at least {exc.needed_days:g}") from None
    before = datetime.now(UTC) - timedelta(days=args.older_than)

    def progress(table: str, done: int) -> None:
        print(f"  {table}: {done:,} deleted so far", file=sys.stderr, flush=True)

    with open_state(args.state_url) as store:
        try:
            pruned = prune(store, before=before, dry_run=args.dry_run, progress=progress)
        except StateStoreError as exc:
            raise CliError(str(exc)) from None
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{store.url}: {verb} history older than {before:%Y-%m-%d %H:%M} UTC "
          f"({args.older_than:g} days):")
    for table, rows in pruned.items():
        print(f"  {table:<13} {rows:>10,}")
    return 0
