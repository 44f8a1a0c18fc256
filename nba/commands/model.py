"""`nba model`: which version an alias points at, with its headline metrics."""

from __future__ import annotations

import argparse
import json
import sys

from nba.commands.common import AddCommand, add_registry_flags
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba model                          # which version is champion?\n"
            "  nba model --alias challenger\n\nExit status 3 when the alias does not exist.")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba model`."""
    p = add("model", "Show the model version behind an alias, with its headline metrics.",
            EXAMPLES)
    add_registry_flags(p, settings)
    p.add_argument("--alias", default="champion", help="alias to look up (default %(default)s)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the version as JSON; exit status 3 when the alias points at none."""
    from training import registry

    client = registry.configure(args.tracking_uri)
    ref = registry.get_alias(client, args.model_name, args.alias)
    if ref is None:
        print(f"no version of '{args.model_name}' has alias '{args.alias}'", file=sys.stderr)
        return 3
    metrics = client.get_run(ref.run_id).data.metrics if ref.run_id else {}
    print(json.dumps({"name": ref.name, "version": ref.version, "alias": ref.alias,
                      "run_id": ref.run_id, "metrics": {
                          k: round(v, 5) for k, v in sorted(metrics.items())
                          if k.startswith(("policy_value", "response_auc"))}}, indent=2))
    return 0
