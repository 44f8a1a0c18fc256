"""`nba train`: fit, evaluate, log and register a policy."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nba.commands.common import AddCommand, CliError, add_data_flag, add_registry_flags
from nba.settings import CliSettings

if TYPE_CHECKING:
    from training.pipeline import TrainResult
    from training.settings import TrainSettings

EXAMPLES = ("examples:\n  nba train                          # train on ./data, register a new "
            "version\n  nba train --promote                # ... and make it the champion\n"
            "  nba train --trees 300 --seed 7\n\nThe first model ever registered becomes "
            "champion automatically; later ones wait\nfor `nba promote`. Open `make mlflow-ui` "
            "to see runs, metrics and plots.")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba train`."""
    p = add("train", "Fit uplift (causalml's S-learner on LightGBM by default), response and "
                     "value models; evaluate on a holdout split; log and register the policy.",
            EXAMPLES)
    add_data_flag(p, settings)
    add_registry_flags(p, settings)
    p.add_argument("--experiment", default=settings.experiment,
                   help="MLflow experiment (env NBA_EXPERIMENT; default %(default)s)")
    p.add_argument("--artifact-root", type=Path, default=settings.artifact_root,
                   help="where new experiments keep artifacts (env NBA_ARTIFACT_ROOT; default "
                        "%(default)s)")
    p.add_argument("--test-size", type=float, default=0.3,
                   help="holdout share of customers for evaluation (default %(default)s)")
    p.add_argument("--seed", type=int, default=42,
                   help="split and model seed (default %(default)s)")
    p.add_argument("--trees", type=int, default=150,
                   help="LightGBM trees per base learner (default %(default)s)")
    p.add_argument("--learner", choices=("t", "s"), default=settings.learner,
                   help="causalml meta-learner: s (S-learner) or t (T-learner) "
                        "(env NBA_LEARNER; default %(default)s; see docs/measurement.md)")
    p.add_argument("--promote", action="store_true",
                   help="make the new version champion even if one exists")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: this machine; dask: lightgbm.dask on a Dask cluster, fitting "
                        "ONE fixed candidate (the S-learner with --trees, full targeting or "
                        "--shrinkage), no learner menu (default %(default)s; docs/scale.md)")
    p.add_argument("--scheduler", default=None,
                   help="with --engine dask: the scheduler's address, e.g. tcp://10.0.0.5:8786 "
                        "(default: a LocalCluster of --dask-workers processes here)")
    p.add_argument("--dask-workers", type=int, default=2,
                   help="workers of the LocalCluster started without --scheduler "
                        "(default %(default)s)")
    p.add_argument("--shrinkage", type=float, default=None,
                   help="with --engine dask: pull per-customer uplift towards each offer's "
                        "average by this share (1.0, the default there: full targeting)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Train, register (and maybe promote); print the holdout policy values."""
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    if not 0 < args.test_size < 1:
        raise CliError("--test-size must lie strictly between 0 and 1")
    settings = TrainSettings(data_dir=args.data_dir, tracking_uri=args.tracking_uri,
                             artifact_root=args.artifact_root, model_name=args.model_name,
                             experiment=args.experiment, test_size=args.test_size,
                             seed=args.seed, promote=args.promote, learner=args.learner,
                             params=replace(BoosterParams(), n_estimators=args.trees))
    result = _train_on_dask(args, settings) if args.engine == "dask" else train(settings)
    m = result.metrics
    print(f"\nregistered {args.model_name} version {result.version} (run {result.run_id})"
          + ("; champion" if result.promoted else ""))
    print("holdout policy value, revenue per customer (IPW):")
    for key in ("learned_uplift_policy", "best_single_offer", "treat_nobody", "random_offer",
                "propensity_ranking"):
        print(f"  {key:<24} {m.get('policy_value_' + key, float('nan')):8.3f}")
    print(f"response AUC {m.get('response_auc', float('nan')):.3f}")
    return 0


def _train_on_dask(args: argparse.Namespace, settings: TrainSettings) -> TrainResult:
    """`--engine dask`: the fixed S-learner candidate fitted by lightgbm.dask."""
    if args.shrinkage is not None and not 0.0 <= args.shrinkage <= 1.0:
        raise CliError("--shrinkage must lie between 0 and 1")
    if args.dask_workers < 1:
        raise CliError("--dask-workers must be at least 1")
    try:
        from training.dask_train import DaskSettings, train
    except ImportError:
        raise CliError("--engine dask needs the scale extra: pip install "
                       "'nba-decisioning[scale]'") from None
    settings = replace(settings, learner="s",
                       shrinkage=1.0 if args.shrinkage is None else args.shrinkage)
    try:
        return train(settings, DaskSettings(scheduler=args.scheduler, workers=args.dask_workers))
    except OSError as exc:  # an unreachable scheduler: distributed raises OSError on timeout
        raise CliError(f"dask scheduler {args.scheduler}: {exc}") from None
