"""`nba report ...`: incrementality, funnel and balance reports read from the decision log."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nba.commands.common import (
    AddCommand,
    CliError,
    add_state_flag,
    parse_since,
    subparser_factory,
)
from nba.settings import CliSettings

if TYPE_CHECKING:
    import pandas as pd

    from features.catalog import Catalog

EXAMPLES = {
    "report": "examples:\n  nba report incrementality --by offer\n  nba report funnel "
              "--since 2025-03-01\n  nba report balance\n\nEach report has its own --help.",
    "incrementality": "examples:\n  nba report incrementality                       # by offer, "
                      "whole log\n  nba report incrementality --by channel --since 2025-03-01\n"
                      "  nba report incrementality --out lift.csv --html lift.html\n"
                      "  nba report incrementality --state-url postgresql://nba@db/nba "
                      "--holdout-share 0.1\n\n"
                      "Treated decisions against the randomized holdout (intent-to-treat by the "
                      "offer the\npolicy picked): conversion and revenue-per-decision lift with "
                      "95% intervals\n(Newcombe score / Welch; relative lift by the delta "
                      "method), incremental\nrevenue and margin, contact cost and ROI. A "
                      "sample-ratio mismatch of the holdout\n(chi-square p < 0.001) is printed "
                      "first: when it shows, fix assignment before\nreading the lifts.",
    "funnel": "examples:\n  nba report funnel\n  nba report funnel --since 2025-03-01T00:00:00Z "
              "--out funnel.csv\n\neligible -> recommended -> shown -> accepted -> purchased, "
              "in decisions; names the\nstage with the largest relative drop.",
    "balance": "examples:\n  nba report balance\n  nba report balance --out balance.parquet\n\n"
               "Standardized mean difference of every logged feature between holdout and "
               "treated\ncustomers (one row per customer); |SMD| > 0.1 is flagged.",
}
BY_CHOICES = "offer|channel|segment"
LOG_STORE = "state store holding the decision log"


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba report` and its reports."""
    report = add("report", "Reports from the decision log: incrementality against the "
                           "holdout, the funnel, holdout balance.", EXAMPLES["report"])
    sub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    add_report = subparser_factory(sub.add_parser)

    p = add_report("incrementality", "Did the campaign add revenue, and how much? Lift of "
                                     "treated decisions over the randomized holdout.",
                   EXAMPLES["incrementality"])
    _log_flags(p, settings)
    p.add_argument("--by", default="offer", metavar=BY_CHOICES,
                   help="group rows by offer, channel or segment (default %(default)s)")
    p.add_argument("--html", type=Path, default=None,
                   help="also write a self-contained HTML report with plots")
    p.add_argument("--holdout-share", default=f"{settings.holdout_share:g}",
                   help="configured holdout share, for the sample-ratio check "
                        "(env NBA_HOLDOUT_SHARE; default %(default)s)")
    p.add_argument("--catalog", type=Path, default=settings.data_dir / "offers.yaml",
                   help="offers.yaml with margins and costs (default <NBA_DATA_DIR>/offers.yaml"
                        ": %(default)s)")
    p.set_defaults(handler=_incrementality)

    for name, help_text, handler in (
            ("funnel", "Decisions per stage, eligible to purchased, and the stage losing the "
                       "most.", _funnel),
            ("balance", "Are holdout and treated customers alike? Standardized mean differences "
                        "of the logged features.", _balance)):
        p = add_report(name, help_text, EXAMPLES[name])
        _log_flags(p, settings)
        p.set_defaults(handler=handler)


def _log_flags(parser: argparse.ArgumentParser, settings: CliSettings) -> None:
    """--since, --out and --state-url: which part of which decision log, written where."""
    parser.add_argument("--since", default=None, metavar="ISO8601",
                        help="only decisions made at or after this date/time (naive = UTC)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="also write the table to FILE (.csv or .parquet)")
    add_state_flag(parser, settings, LOG_STORE)


# ---------------------------------------------------------------- handlers


def _incrementality(args: argparse.Namespace) -> int:
    from reports import render
    from reports.funnel import funnel
    from reports.incrementality import BY_OPTIONS, incrementality
    from state import mask_url

    if args.by not in BY_OPTIONS:
        raise CliError(f"unknown --by '{args.by}'; use one of {list(BY_OPTIONS)}")
    _check_out(args.out)
    _check_writable("--html", args.html)
    share = _holdout_share(args.holdout_share)
    since = parse_since(args.since)
    catalog = _catalog(args.catalog)
    decisions, outcomes = _frames(args.state_url, since)
    report = incrementality(decisions, outcomes, catalog, by=args.by, holdout_share=share)
    print(render.incrementality_text(report))
    _write_out(args.out, report.to_frame())
    if args.html is not None:
        subtitle = f"Decision log {mask_url(args.state_url)}" + (
            f" since {since.isoformat()}." if since else ".")
        page = render.incrementality_html(report, funnel(decisions, outcomes),
                                          subtitle=subtitle)
        try:
            render.write_text(page, args.html)
        except OSError as exc:
            raise CliError(f"cannot write {args.html}: {exc.strerror or exc}") from None
        print(f"wrote {args.html}")
    return 0


def _funnel(args: argparse.Namespace) -> int:
    from reports import render
    from reports.funnel import funnel

    _check_out(args.out)
    decisions, outcomes = _frames(args.state_url, parse_since(args.since))
    report = funnel(decisions, outcomes)
    print(render.funnel_text(report))
    _write_out(args.out, report.to_frame())
    return 0


def _balance(args: argparse.Namespace) -> int:
    from reports import ReportError, render
    from reports.balance import balance

    _check_out(args.out)
    decisions, _ = _frames(args.state_url, parse_since(args.since), outcomes=False)
    try:
        report = balance(decisions)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    print(render.balance_text(report))
    _write_out(args.out, report.to_frame())
    return 0


# ---------------------------------------------------------------- helpers


def _holdout_share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0 <= share < 1:
        raise CliError(f"--holdout-share must be a number in [0, 1), got '{text}'")
    return share


def _catalog(path: Path) -> Catalog:
    from features.errors import ContractError
    from features.io import read_catalog

    try:
        return read_catalog(path)
    except ContractError as exc:
        raise CliError(f"catalog: {exc} (pass --catalog FILE)") from None


def _frames(url: str, since: datetime | None, *, outcomes: bool = True
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decisions (and outcomes) from the store; CliError when unreadable or empty."""
    import pandas as pd
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from state import StateStoreError, mask_url, open_store

    masked = mask_url(url)
    try:  # opening a SQLite URL creates the file: a mistyped path would look like an empty log
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if (parsed is not None and parsed.drivername.startswith("sqlite") and parsed.database
            and parsed.database != ":memory:" and not Path(parsed.database).exists()):
        raise CliError(f"no state store at {masked} (file {parsed.database} does not exist)")
    try:
        with open_store(url) as store:
            decisions = store.log.decisions_frame(since)
            outcome_frame = store.log.outcomes_frame(since) if outcomes else None
    except StateStoreError as exc:
        raise CliError(str(exc)) from None
    if decisions.empty:
        when = f" since {since.isoformat()}" if since else ""
        raise CliError(f"no decisions in the log at {masked}{when}")
    return decisions, outcome_frame if outcome_frame is not None else pd.DataFrame()


def _check_out(path: Path | None) -> None:
    """--out names a writable .csv or .parquet file: checked before the report is computed."""
    from reports.render import check_table_path

    _check_writable("--out", path)
    if path is not None:
        try:
            check_table_path(path)
        except ValueError as exc:
            raise CliError(f"--out: {exc}") from None


def _check_writable(flag: str, path: Path | None) -> None:
    """CliError now, not after the whole report, when `path` cannot be written.

    A directory, or a folder on the way that is a file or that this user cannot write in
    (missing folders are made when the file is written).
    """
    if path is None:
        return
    if path.is_dir():
        raise CliError(f"{flag} {path}: is a directory; give a file name")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise CliError(f"{flag} {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"{flag} {path}: cannot write in {folder} (permission denied)")


def _write_out(path: Path | None, frame: pd.DataFrame) -> None:
    from reports import render

    if path is None:
        return
    try:
        render.write_table(frame, path)
    except ValueError as exc:
        raise CliError(f"--out: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}")
