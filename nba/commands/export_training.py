"""`nba export-training`: the decision log as training data (the exposures.parquet contract)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from nba.commands.common import (
    AddCommand,
    CliError,
    add_data_flag,
    add_state_flag,
    open_state,
    parse_since,
)
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba export-training --out data/exposures_log.parquet\n"
            "  nba export-training --out week.parquet --since 2026-12-01T00:00:00Z\n"
            "  nba export-training --out log.parquet --state-url "
            "postgresql://nba@db/nba\n\nOne row per logged decision in the "
            "exposures.parquet contract: the top offer\nserved is the treatment "
            "(holdouts and decisions that served nothing are\ncontrol), converted "
            "= any purchase after the decision, with the logged\npropensity. "
            "With --append-to data/exposures.parquet, --out holds the\noriginal "
            "exposures and the log: `nba train` on it retrains (make retrain).")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba export-training`."""
    p = add("export-training", "Write the decision log as training data (exposures.parquet "
                               "contract), ready to append to the exposures and retrain.",
            EXAMPLES)
    p.add_argument("--out", type=Path, required=True, help="parquet file to write")
    p.add_argument("--since", default=None,
                   help="only decisions made at or after this ISO 8601 time (UTC when no "
                        "zone is given)")
    p.add_argument("--append-to", type=Path, default=None,
                   help="an exposures.parquet to write in front of the log (e.g. the original "
                        "training data): --out then holds both, ready for `nba train`")
    add_state_flag(p, settings, "state store holding the decision log")
    add_data_flag(p, settings, "offers.yaml (for the control label)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export the log; the file is written only when it passes the data contract."""
    import pandas as pd

    from features import io
    from features.errors import ContractError
    from features.schema import NEW_CUSTOMER
    from state.log import NEW_CUSTOMER_SEGMENT
    from training.export import export_training

    since = parse_since(args.since)
    if args.out.is_dir():
        raise CliError(f"--out {args.out}: is a directory; give the output parquet file's path")
    catalog = io.read_catalog(args.data_dir / io.OFFERS)
    with open_state(args.state_url) as store:
        decisions = store.log.decisions_frame(since)
        outcomes = store.log.outcomes_frame(since)
        url = store.url
    if decisions.empty:
        raise CliError(f"no decisions logged in {url}"
                       + (f" since {since.isoformat()}" if since else "") + "; nothing to export")
    # decisions for customers without a profile: exposures of new customers (the contract's
    # `new_customer`), with the request context they were decided from; the first-visit
    # policy learns from them, the customer policy does not
    newcomers = decisions["segment"].eq(NEW_CUSTOMER_SEGMENT).to_numpy()
    try:
        frame = export_training(decisions, outcomes, catalog.control_label)
    except ValueError as exc:
        raise CliError(f"cannot export the log of {url}: {exc}") from None
    if newcomers.any():
        frame[NEW_CUSTOMER] = newcomers
        print(f"{int(newcomers.sum()):,} decisions for customers without a profile marked "
              f"{NEW_CUSTOMER}")
    if args.append_to is not None:
        base = io.read_exposures(args.append_to, catalog)
        if NEW_CUSTOMER in frame and NEW_CUSTOMER not in base:
            base[NEW_CUSTOMER] = False
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
        io.write_parquet(frame, staged, private=True)  # customer-level: 0600
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
