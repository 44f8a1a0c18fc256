"""The `nba` subcommands: one module each, holding its parser definition and its handler.

Each module has `add_parser(add, settings)`, which defines the subcommand with defaults taken
from the settings and sets `handler`, the function `nba` runs for it.
"""

from __future__ import annotations

from types import ModuleType

from nba.commands import (
    batch_score,
    compare,
    customers,
    decide,
    demo_data,
    events,
    export_training,
    inventory,
    model,
    outcomes,
    promote,
    report,
    serve,
    simulate,
    state,
    train,
)

#: in `nba --help` order
COMMANDS: tuple[ModuleType, ...] = (demo_data, train, promote, compare, model, serve,
                                    batch_score, decide, inventory, customers, events, state,
                                    report, simulate, export_training, outcomes)
