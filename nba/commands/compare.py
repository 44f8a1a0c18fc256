"""`nba compare`: a candidate version and the champion on the same holdout rows."""

from __future__ import annotations

import argparse

from nba.commands.common import AddCommand, CliError, add_data_flag, add_registry_flags
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba compare --candidate 4                  # version 4 vs the "
            "champion\n  nba compare --candidate 4 --champion 2\n\nBoth versions are "
            "evaluated on the candidate run's holdout split of\nexposures.parquet: doubly "
            "robust (DR) policy value with 95% intervals clustered\nby customer, the paired "
            "difference (and its IPW estimate), response AUC and\nQini per offer.")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba compare`."""
    p = add("compare", "Evaluate a candidate version and the champion on the same holdout "
                       "rows and print them side by side.", EXAMPLES)
    add_data_flag(p, settings)
    add_registry_flags(p, settings)
    p.add_argument("--candidate", required=True, help="model version to evaluate")
    p.add_argument("--champion", default=None,
                   help="version to compare against (default: the current champion)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Compare and print the side-by-side report."""
    from training import registry

    client = registry.configure(args.tracking_uri)
    champion = args.champion
    if champion is None:
        ref = registry.get_alias(client, args.model_name)
        if ref is None:
            raise CliError(f"model '{args.model_name}' has no champion; pass --champion VERSION")
        champion = ref.version
    try:
        for version in (args.candidate, champion):
            registry.get_version(client, args.model_name, version)
    except registry.RegistryError as exc:
        raise CliError(str(exc)) from None
    from training import compare  # heavy (models, evaluation): only once the versions exist

    try:
        comparison = compare.compare_versions(client, args.model_name, args.candidate, champion,
                                              args.data_dir)
    except (registry.RegistryError, compare.CompareError) as exc:
        raise CliError(str(exc)) from None
    print(compare.report(comparison))
    return 0
