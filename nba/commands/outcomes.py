"""`nba outcomes load`: customers' outcomes of logged decisions, from a file, in bulk."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nba.commands.common import AddCommand, CliError, add_state_flag, open_state
from nba.settings import CliSettings

if TYPE_CHECKING:
    import pandas as pd

    from service.schemas import OutcomeRequest

EXAMPLES = ("examples:\n  nba outcomes load outcomes.csv\n  nba outcomes load "
            "outcomes.parquet --state-url postgresql://nba@db/nba\n\nColumns: "
            "decision_id, offer_id (empty for a purchase not tied to an offer),\nevent "
            "(shown, accepted, declined or purchased), revenue. Every row is checked\n"
            "before any is recorded; an event already recorded counts as a duplicate.")
OUTCOME_COLUMNS = ("decision_id", "offer_id", "event", "revenue")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba outcomes load`."""
    p = add("outcomes", "Record customers' outcomes of logged decisions from a file "
                        "(what POST /v1/outcomes does, in bulk).", EXAMPLES)
    actions = p.add_subparsers(dest="outcomes_action", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="record every row of a parquet or CSV file",
                              description="Record every row of a parquet or CSV file of "
                                          "outcomes: decision_id, offer_id, event, revenue.",
                              epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("file", type=Path, help="outcomes as .parquet or .csv")
    add_state_flag(load, settings, "state store holding the decision log")
    load.set_defaults(handler=run)


def read_outcomes_file(path: Path) -> pd.DataFrame:
    """An outcomes file (.parquet or .csv) with its four columns; CliError when unreadable."""
    import pandas as pd
    import pyarrow as pa

    if not path.exists():
        raise CliError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path, dtype={"decision_id": str, "offer_id": str, "event": str},
                                keep_default_na=False, na_values={"offer_id": [""],
                                                                  "revenue": [""]})
        else:
            raise CliError(f"{path}: expected a .parquet or .csv file")
    except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError) as exc:
        raise CliError(f"{path.name}: cannot be read ({str(exc).splitlines()[0]})") from None
    for column in OUTCOME_COLUMNS:
        if column not in frame.columns:
            raise CliError(f"{path.name}: missing required column '{column}'")
    return frame


def run(args: argparse.Namespace) -> int:
    """Check every row against the log, then record them (service.outcomes' one code path)."""
    from pydantic import ValidationError

    from service.outcomes import UnknownDecision, check_outcome, record_outcome
    from service.schemas import InvalidRequest, OutcomeRequest

    path: Path = args.file
    frame = read_outcomes_file(path)
    requests: list[OutcomeRequest] = []
    for number, row in enumerate(frame[list(OUTCOME_COLUMNS)].itertuples(index=False), start=1):
        body = {column: _cell(value) for column, value in zip(OUTCOME_COLUMNS, row, strict=True)}
        if body["revenue"] is None:
            body["revenue"] = 0.0
        try:
            requests.append(OutcomeRequest.model_validate(body))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            column = ".".join(str(p) for p in first["loc"]) or "row"
            raise CliError(f"{path.name}: row {number}, column '{column}': {first['msg']} "
                           "(nothing recorded)") from None
    now = datetime.now(UTC)
    with open_state(args.state_url) as store:
        # every row is checked against the log before the first is recorded: a bad file
        # records nothing
        for number, request in enumerate(requests, start=1):
            try:
                check_outcome(store, request)
            except (UnknownDecision, InvalidRequest) as exc:
                # the decision_id is unknown, or the offer_id does not fit the decision
                column = "decision_id" if isinstance(exc, UnknownDecision) else "offer_id"
                raise CliError(f"{path.name}: row {number}, column '{column}': {exc.message} "
                               "(nothing recorded)") from None
        recorded = 0
        for number, request in enumerate(requests, start=1):
            try:
                recorded += bool(record_outcome(store, request, now)["recorded"])
            except (UnknownDecision, InvalidRequest) as exc:
                raise CliError(f"{path.name}: row {number}: {exc.message} ({recorded:,} "
                               "earlier rows recorded; loading again is safe)") from None
        url = store.url
    print(f"{len(requests):,} rows from {path}: {recorded:,} recorded, "
          f"{len(requests) - recorded:,} duplicates (already recorded) in {url}")
    return 0


def _cell(value: Any) -> Any:
    """A file cell as JSON would carry it: None for nulls, plain Python scalars."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value

