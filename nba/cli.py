"""`nba`: one command line for data, training, the registry, the service and the loop.

`main()` reads the settings once (NBA_* variables and MLFLOW_TRACKING_URI, see nba.settings),
builds the parser with those as defaults, and runs the subcommand's handler (one module per
subcommand in nba.commands). Flags override the environment. Errors the user can fix print one
clear line and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from nba.commands import COMMANDS
from nba.commands.common import CliError, subparser_factory
from nba.settings import CliSettings, SettingsError, load_settings

__all__ = ["CliError", "build_parser", "main"]

#: libraries that log at INFO about their own internals on every run
_QUIET_LOGGERS = ("causalml", "alembic", "mlflow.store.db.utils", "numba")


def build_parser(settings: CliSettings) -> argparse.ArgumentParser:
    """The argument parser, with a teaching --help for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="nba",
        description="Next-best-action decisioning: rank offers by causal uplift, serve them, "
                    "and retrain through the MLflow registry.",
        epilog="typical loop:  nba demo-data && nba train && nba serve\n"
               "each subcommand has its own --help with examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = subparser_factory(sub.add_parser)
    for command in COMMANDS:
        command.add_parser(add, settings)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; its exit status (CliError propagates)."""
    return args.handler(args) or 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nba` console script."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"nba: error: environment: {exc}", file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in _QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from features.errors import ContractError

    try:
        return run(args)
    except (CliError, ContractError) as exc:
        print(f"nba {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # the state store's errors (its URL masked), e.g. PostgreSQL refusing a NUL in a
        # file's text; state.errors is only loaded (with SQLAlchemy) by commands that use it
        store_errors = sys.modules.get("state.errors")
        if store_errors is None or not isinstance(exc, store_errors.StateStoreError):
            raise
        print(f"nba {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
