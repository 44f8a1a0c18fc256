"""`nba simulate`, `nba export-training`, `nba outcomes load`: closing the learning loop.

Serve decisions, collect what customers did (from a simulator or a file of real outcomes),
turn the decision log back into exposures.parquet, retrain. nba/cli.py wires these in with
`add_loop_parsers(command)`; the handlers run through `run_loop_command(args)`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nba.cli import CliError

if TYPE_CHECKING:
    import pandas as pd

    from state import StateStore

EXAMPLES = {
    "simulate": "examples:\n  nba simulate                       # 2,000 demo customers against "
                "http://127.0.0.1:8000\n  nba simulate --customers 10000 --channel app "
                "--seed 3\n  NBA_API_KEY=... nba simulate --url http://10.0.0.5:8000 "
                "--data-dir /tmp/demo\n\nStart the service first (`nba serve`, in another "
                "shell). Needs the demo data\n(nba demo-data): customers answer with the TRUE "
                "uplift of true_uplift.parquet.\nEach customer sees the top offer and converts "
                "with baseline + its true uplift\n(shown, accepted, purchased) or declines it "
                "with probability 0.3; a holdout\ncustomer converts with the baseline "
                "(purchased, no offer). Posting outcomes needs a\nstaff key unless the server "
                "runs with NBA_DEV_MODE=1.",
    "export-training": "examples:\n  nba export-training --out data/exposures_log.parquet\n"
                       "  nba export-training --out week.parquet --since 2026-12-01T00:00:00Z\n"
                       "  nba export-training --out log.parquet --state-url "
                       "postgresql://nba@db/nba\n\nOne row per logged decision in the "
                       "exposures.parquet contract: the top offer\nserved is the treatment "
                       "(holdouts and decisions that served nothing are\ncontrol), converted "
                       "= any purchase after the decision, with the logged\npropensity. "
                       "With --append-to data/exposures.parquet, --out holds the\noriginal "
                       "exposures and the log: `nba train` on it retrains (make retrain).",
    "outcomes": "examples:\n  nba outcomes load outcomes.csv\n  nba outcomes load "
                "outcomes.parquet --state-url postgresql://nba@db/nba\n\nColumns: "
                "decision_id, offer_id (empty for a purchase not tied to an offer),\nevent "
                "(shown, accepted, declined or purchased), revenue. Every row is checked\n"
                "before any is recorded; an event already recorded counts as a duplicate.",
}
OUTCOME_COLUMNS = ("decision_id", "offer_id", "event", "revenue")


def add_loop_parsers(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Define simulate, export-training and outcomes with `command(name, help)` (nba.cli's)."""
    p = command("simulate", "Play the demo retailer's customers against a running `nba serve`: "
                            "ask for decisions, answer with the TRUE uplift, post outcomes.")
    _examples(p, "simulate")
    p.add_argument("--url", default="http://127.0.0.1:8000",
                   help="base URL of the service (default %(default)s)")
    p.add_argument("--customers", type=int, default=2000,
                   help="decisions to ask for, one per sampled customer (default %(default)s)")
    p.add_argument("--channel", default="web", help="decision channel (default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the customer sample and their answers (default %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("NBA_API_KEY"),
                   help="a staff (or admin) API key: decisions and outcomes are both posted "
                        "(env NBA_API_KEY; none for a server in NBA_DEV_MODE)")
    _data_flag(p, "customers.parquet and true_uplift.parquet")

    p = command("export-training", "Write the decision log as training data (exposures.parquet "
                                   "contract), ready to append to the exposures and retrain.")
    _examples(p, "export-training")
    p.add_argument("--out", type=Path, required=True, help="parquet file to write")
    p.add_argument("--since", default=None,
                   help="only decisions made at or after this ISO 8601 time (UTC when no "
                        "zone is given)")
    p.add_argument("--append-to", type=Path, default=None,
                   help="an exposures.parquet to write in front of the log (e.g. the original "
                        "training data): --out then holds both, ready for `nba train`")
    _state_flag(p)
    _data_flag(p, "offers.yaml (for the control label)")

    p = command("outcomes", "Record customers' outcomes of logged decisions from a file "
                            "(what POST /v1/outcomes does, in bulk).")
    _examples(p, "outcomes")
    actions = p.add_subparsers(dest="outcomes_action", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="record every row of a parquet or CSV file",
                              description="Record every row of a parquet or CSV file of "
                                          "outcomes: decision_id, offer_id, event, revenue.",
                              epilog=EXAMPLES["outcomes"],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("file", type=Path, help="outcomes as .parquet or .csv")
    _state_flag(load)


def run_loop_command(args: argparse.Namespace) -> int:
    """Run the subcommand `args` names; raises CliError for anything the user can fix."""
    handlers = {"simulate": _simulate, "export-training": _export_training,
                "outcomes": _outcomes}
    return handlers[args.command](args)


def _examples(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = EXAMPLES[name]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _state_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-url", default=os.environ.get("NBA_STATE_URL") or
                        "sqlite:///state.db",
                        help="state store holding the decision log (env NBA_STATE_URL; "
                             "default %(default)s)")


def _data_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("NBA_DATA_DIR", "data")),
                        help=f"folder with {what} (env NBA_DATA_DIR; default %(default)s)")


def _open_state(url: str) -> StateStore:
    from state import StateStoreError, open_store

    try:
        return open_store(url)
    except StateStoreError as exc:
        raise CliError(str(exc)) from None


# ---------------------------------------------------------------- nba simulate


def http_post(base_url: str, api_key: str | None = None, timeout: float = 30.0
              ) -> Callable[[str, dict], tuple[int, dict]]:
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
            try:
                return error.code, json.loads(error.read())
            except ValueError:
                return error.code, {}
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach {base} ({reason}); is `nba serve` running "
                           "there?") from None

    return post


def _simulate(args: argparse.Namespace) -> int:
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


# ---------------------------------------------------------------- nba export-training


def parse_since(text: str | None) -> datetime | None:
    """--since as an aware UTC datetime (naive = UTC); CliError when unreadable."""
    from reports import parse_since as parse

    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None


def _export_training(args: argparse.Namespace) -> int:
    import pandas as pd

    from features import io
    from features.errors import ContractError
    from training.export import export_training

    since = parse_since(args.since)
    catalog = io.read_catalog(args.data_dir / io.OFFERS)
    with _open_state(args.state_url) as store:
        decisions = store.log.decisions_frame(since)
        outcomes = store.log.outcomes_frame(since)
        url = store.url
    if decisions.empty:
        raise CliError(f"no decisions logged in {url}"
                       + (f" since {since.isoformat()}" if since else "") + "; nothing to export")
    try:
        frame = export_training(decisions, outcomes, catalog.control_label)
    except ValueError as exc:
        raise CliError(f"cannot export the log of {url}: {exc}") from None
    if args.append_to is not None:
        base = io.read_exposures(args.append_to, catalog)
        missing = sorted(set(frame.columns) - set(base.columns))
        if missing:
            raise CliError(f"{args.append_to} lacks the logged feature column(s) {missing}")
        frame = pd.concat([base, frame[[c for c in base.columns if c in frame.columns]]],
                          ignore_index=True)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    # validated under its own name beside the target, then renamed: a file that breaks the
    # contract never replaces a good one
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        io.write_parquet(frame, staged)
        try:
            checked = io.read_exposures(staged, catalog)
        except ContractError as exc:
            raise CliError(f"the exported log breaks the data contract, {out} not written: "
                           f"{exc}") from None
        os.replace(staged, out)
    treated = int((checked["treatment"] != catalog.control_label).sum())
    print(f"wrote {len(checked):,} rows to {out} ({treated:,} treated, "
          f"{len(checked) - treated:,} control; {int(checked['converted'].sum()):,} converted) "
          f"from {url}" + (f" since {since.isoformat()}" if since else ""))
    return 0


# ---------------------------------------------------------------- nba outcomes load


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


def _cell(value: Any) -> Any:
    """A file cell as JSON would carry it: None for nulls, plain Python scalars."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _outcomes(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from service.outcomes import UnknownDecision, record_outcome
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
    with _open_state(args.state_url) as store:
        # every row is checked against the log before the first is recorded: a bad file
        # records nothing
        for number, request in enumerate(requests, start=1):
            problem = _log_problem(store, request)
            if problem is not None:
                column, message = problem
                raise CliError(f"{path.name}: row {number}, column '{column}': {message} "
                               "(nothing recorded)")
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


def _log_problem(store: StateStore, request: Any) -> tuple[str, str] | None:
    """(column, problem) when the outcome does not fit the logged decision; else None."""
    record = store.log.get(request.decision_id)
    if record is None:
        return "decision_id", f"unknown decision_id '{request.decision_id}'"
    if request.offer_id is None:
        if request.event != "purchased":
            return "offer_id", (f"event '{request.event}' needs an offer_id (only a purchase "
                                "may come without one)")
        return None
    if request.offer_id not in record.offer_ids:
        shown = ", ".join(record.offer_ids) or "nothing"
        return "offer_id", (f"offer '{request.offer_id}' was not shown in decision "
                            f"'{request.decision_id}' (shown: {shown})")
    return None
