"""What every subcommand shares: the user's-error exception, common flags, opening the store."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nba.settings import CliSettings

if TYPE_CHECKING:
    from state import StateStore

#: `add(name, help, examples)`: a subparser of `nba` with a teaching --help
AddCommand = Callable[[str, str, str], argparse.ArgumentParser]


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def subparser_factory(add_parser: Callable[..., argparse.ArgumentParser]) -> AddCommand:
    """An AddCommand over a subparsers action's `add_parser`: help, description and examples."""
    def add(name: str, help_text: str, examples: str) -> argparse.ArgumentParser:
        return add_parser(name, help=help_text, description=help_text, epilog=examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)

    return add


def add_registry_flags(parser: argparse.ArgumentParser, settings: CliSettings) -> None:
    """--tracking-uri and --model-name."""
    parser.add_argument("--tracking-uri", default=settings.tracking_uri,
                        help="MLflow tracking + registry store (env MLFLOW_TRACKING_URI; "
                             "default %(default)s)")
    parser.add_argument("--model-name", default=settings.model_name,
                        help="registered model name (env NBA_MODEL_NAME; default %(default)s)")


def add_data_flag(parser: argparse.ArgumentParser, settings: CliSettings,
                  what: str = "exposures/customers/inventory parquet and offers.yaml") -> None:
    """--data-dir: the folder of the data contract's files (`what` says which are read)."""
    parser.add_argument("--data-dir", type=Path, default=settings.data_dir,
                        help=f"folder with {what} (env NBA_DATA_DIR; default %(default)s)")


def add_state_flag(parser: argparse.ArgumentParser, settings: CliSettings,
                   what: str = "state store") -> None:
    """--state-url: which state store (`what` says what the command uses it for)."""
    from state.urls import mask_url  # the default may hold a password: never show it

    parser.add_argument("--state-url", default=settings.state_url,
                        help=f"{what}: sqlite:///state.db (one host) or postgresql://user@host/db"
                             f" (env NBA_STATE_URL; default {mask_url(settings.state_url)})")


def open_state(url: str) -> StateStore:
    """The state store at `url`; CliError naming the URL (password masked) when it won't open."""
    from state import StateStoreError, open_store

    try:
        return open_store(url)
    except StateStoreError as exc:
        raise CliError(str(exc)) from None


def add_at_flag(parser: argparse.ArgumentParser) -> None:
    """--at: the clock a decision reads (replaying or previewing a moment)."""
    parser.add_argument("--at", default=None, metavar="WHEN",
                        help="decide as of this ISO 8601 time (naive = UTC; default now; "
                             "years 1970 to 9000): launch windows and contact-cap windows "
                             "are read at it")


#: the years --at accepts
AT_RANGE = (1970, 9000)


def parse_at(text: str | None) -> datetime:
    """--at as an aware UTC datetime, the wall clock when absent; CliError when unreadable."""
    from datetime import UTC

    from reports import parse_since as parse

    if text is None:
        return datetime.now(UTC)
    try:
        at = parse(text)
    except ValueError as exc:
        raise CliError(f"--at: {exc}") from None
    # cap and launch windows reach days either side of the clock: near year 1 or 9999 that
    # arithmetic overflows (a traceback), and no decision is made there anyway
    if not AT_RANGE[0] <= at.year <= AT_RANGE[1]:
        raise CliError(f"--at: '{text}' is outside years {AT_RANGE[0]} to {AT_RANGE[1]}")
    return at


def parse_since(text: str | None) -> datetime | None:
    """--since as an aware UTC datetime (naive = UTC); CliError when unreadable."""
    from reports import parse_since as parse

    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None
