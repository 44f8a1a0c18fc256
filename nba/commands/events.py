"""`nba events load FILE`: apply a file of customer events to the stored profiles."""

from __future__ import annotations

import argparse
from pathlib import Path

from nba.commands.common import AddCommand, CliError, add_state_flag, open_state
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba events load events.parquet\n\nColumns: event_id, customer_id, "
            "type (purchase | return | consent | sign_up), occurred_at\n(timestamp with a "
            "time zone), amount (purchase, return), contactable (consent);\noptional for "
            "sign_up: channel, loyalty_tier, preferred_size, preferred_color, "
            "loyalty_card.\nEach event applies once (by event_id): a load that stopped "
            "half-way is simply run again.\n"
            "Live: POST /v1/events.")
#: events per transaction: a failure loses at most this many, and a rerun skips the rest
CHUNK = 1_000


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba events`."""
    p = add("events", "Apply customer events (purchases, returns, consent changes, sign-ups) "
                      "to the customer profiles in the shared state store.", EXAMPLES)
    p.add_argument("action", choices=("load",), help="apply a file of events")
    p.add_argument("file", type=Path, help="events parquet (columns: see below)")
    add_state_flag(p, settings)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate every event of the file first, then apply them in chunks."""
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pydantic import ValidationError

    from service.events import to_profile_event, update
    from service.schemas import CustomerEventIn

    file = args.file.name
    if not args.file.exists():
        raise CliError(f"{args.file}: file not found")
    try:
        rows = pq.read_table(args.file).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise CliError(f"{file}: not a readable parquet file ({exc})") from None
    events = []
    for number, row in enumerate(rows, start=1):
        try:
            events.append(CustomerEventIn.model_validate(
                {k: v for k, v in row.items() if v is not None}))
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            column = ".".join(str(p) for p in error["loc"]) or "row"
            raise CliError(f"{file}: row {number}, column {column}: {error['msg']}") from None
    applied = 0
    with open_state(args.state_url) as store:
        for start in range(0, len(events), CHUNK):
            statuses = store.profiles.apply(
                [to_profile_event(e) for e in events[start:start + CHUNK]], update,
                now=datetime.now(UTC))
            applied += statuses.count("applied")
        print(f"{file}: {applied:,} events applied, {len(events) - applied:,} already applied "
              f"before, into {store.url}")
    return 0
