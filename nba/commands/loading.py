"""The shape `nba customers` and `nba inventory` share: `load FILE [--if-empty]` into the
shared state store, or `show` what it holds. Each command says only what is its own."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nba.commands.common import AddCommand, CliError, add_state_flag, open_state
from nba.settings import CliSettings

if TYPE_CHECKING:
    from state import StateStore


@dataclass(frozen=True)
class StoreTable:
    """One table of the state store a file is loaded into."""

    #: the command's name, and what its FILE is ("an inventory parquet")
    command: str
    file_kind: str
    #: what the store already holds, in words for "already holds ...", or None when empty
    held: Callable[[StateStore], str | None]
    #: validate and load the file (all or nothing); the line to print
    load: Callable[[StateStore, Path], str]
    #: print what the store holds
    show: Callable[[StateStore], None]


def add_load_parser(add: AddCommand, settings: CliSettings, table: StoreTable, summary: str,
                    examples: str, what: str, held: str) -> None:
    """Define `nba <command> {load,show} [FILE] [--if-empty]` (`what`: the file's contents,
    `held`: what --if-empty looks for)."""
    p = add(table.command, summary, examples)
    p.add_argument("action", choices=("load", "show"), help=f"load a file, or {what}")
    p.add_argument("file", nargs="?", type=Path, default=None,
                   help=f"{table.file_kind.split(' ', 1)[1]} in the data contract (for load)")
    p.add_argument("--if-empty", action="store_true",
                   help=f"load only when the store holds no {held} yet (make run uses this)")
    add_state_flag(p, settings)
    p.set_defaults(handler=lambda args: run_load(args, table))


def run_load(args: argparse.Namespace, table: StoreTable) -> int:
    """Load the file (unless --if-empty finds the table filled), or show the table."""
    with open_state(args.state_url) as store:
        if args.action == "show":
            table.show(store)
            return 0
        if args.file is None:
            raise CliError(f"nba {table.command} load needs a FILE ({table.file_kind})")
        if args.if_empty and (held := table.held(store)) is not None:
            print(f"{store.url} already holds {held}; not loading {args.file}")
            return 0
        print(table.load(store, args.file))
    return 0
