"""`nba promote`: point an alias at a version; a new champion is gated on the current one."""

from __future__ import annotations

import argparse
import sys

from nba.commands.common import AddCommand, CliError, add_data_flag, add_registry_flags
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba promote --version 3            # gated: compared with the "
            "champion first\n  nba promote --version 3 --force    # promote even if "
            "worse beyond noise\n  nba promote --rollback             # put the previous "
            "champion back\n"
            "  nba promote --version 4 --alias challenger   # other aliases: no gate\n\n"
            "A champion promotion evaluates the version and the current champion on the "
            "same\nholdout rows (nba compare) and refuses, exit status 1, when the 95% "
            "interval of\nthe paired policy-value difference lies entirely below 0. The "
            "outcome is recorded\nas tags on the model version (validation_status, "
            "compared_to, ...).")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba promote`."""
    p = add("promote", "Point an alias (default: champion) at a registered model version; "
                       "a new champion must not be worse than the current one.", EXAMPLES)
    add_data_flag(p, settings)
    add_registry_flags(p, settings)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--version",
                       help="model version to promote, or `latest` (the newest registered)")
    which.add_argument("--rollback", action="store_true",
                       help="put the previous champion back (from the champion history)")
    p.add_argument("--alias", default="champion", help="alias to set (default %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="promote to champion even when worse than the champion beyond noise")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Promote or roll back; exit status 1 when the gate refuses."""
    from training import registry

    client = registry.configure(args.tracking_uri)
    name, version = args.model_name, args.version
    try:
        if version == "latest":
            version = registry.latest_version(client, name)
        if args.rollback:
            if args.alias != registry.CHAMPION:
                raise CliError("--rollback applies to the champion alias only")
            demoted, restored = registry.rollback(client, name)
            print(f"{name}@champion -> version {restored} (rolled back from version {demoted})")
            return 0
        registry.require_artifacts(client, name, version)  # one clear line, not a traceback
        if args.alias != registry.CHAMPION:
            registry.set_alias(client, name, version, args.alias)
            print(f"{name}@{args.alias} -> version {version}")
            return 0
    except registry.RegistryError as exc:
        raise CliError(str(exc)) from None
    from training import compare  # heavy (models, evaluation): only for the gated path

    try:
        result = compare.promote_champion(client, name, version, args.data_dir, args.force)
    except (registry.RegistryError, compare.CompareError) as exc:
        raise CliError(str(exc)) from None
    if result.comparison is not None:
        print(compare.report(result.comparison))
    if result.evidence:
        print(result.evidence)
    if result.status == compare.FAILED:
        assert result.comparison is not None  # a refusal always compared
        print(f"nba promote: refused: version {version} is worse than champion version "
              f"{result.previous} beyond noise: {compare.evidence_line(result.comparison.paired)}"
              f"; champion stays version {result.previous} (--force overrides)", file=sys.stderr)
        return 1
    print(f"{name}@champion is already version {version}" if result.status == compare.ALREADY
          else f"{name}@champion -> version {version} (validation_status={result.status})")
    return 0
