"""`nba train`: fit, evaluate, log and register a policy."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nba.commands.common import AddCommand, CliError, add_data_flag, add_registry_flags
from nba.settings import CliSettings

if TYPE_CHECKING:
    from training.settings import TrainSettings

EXAMPLES = ("examples:\n  nba train                          # train on ./data, register a new "
            "version\n  nba train --promote                # ... and make it the champion\n"
            "  nba train --trees 300 --seed 7\n"
            "  nba train --learner s --capacity base --rule full   # a one-candidate menu\n\n"
            "The menu: every learner x capacity x rule is scored by the doubly robust (DR)\n"
            "incremental profit of the policy it induces, on out-of-fold predictions (K folds\n"
            "by customer), with a 95% interval clustered by customer; the best (ties to the\n"
            "simplest, --tolerance widens the tie) is refit on all rows and registered. Below\n"
            "the table, the nested estimate of choosing from the menu (each fold served the\n"
            "choice made without it) against the best single offer; with --nested-z a\n"
            "targeting choice that does not beat it is replaced by the best single offer, and\n"
            "the output says why. The table is printed and logged to MLflow (selection.txt;\n"
            "select_nested_* metrics). The contact guard (--contact-z) serves a policy that\n"
            "contacts customers only when its DR value is above z standard errors: else the\n"
            "best single offer if its value is, else nobody (sending nothing is worth exactly\n"
            "0, while the best of many noisy estimates is optimistic).\n"
            "  learners:   s = S-learner, t = T-learner (causalml classifiers on LightGBM),\n"
            "              x = X-learner (causalml, given the logged propensities)\n"
            "  capacities: low (3 leaves, 200 min. leaf rows, half the trees), base (--trees,\n"
            "              15 leaves, 100 min. leaf rows), high (31 leaves, 40 min. leaf rows),\n"
            "              small (opt-in: 7 leaves, min. leaf rows capped at rows per arm / 8),\n"
            "              low_smooth, low_et, low_slow, low_l2, low_ps300, low_l2_100 (opt-in:\n"
            "              low with LightGBM's path_smooth 100, extra_trees, half the learning\n"
            "              rate and twice the trees, L2 20, path_smooth 300, L2 100)\n"
            "  rules:      nobody (opt-in: send nothing), best_single (everyone gets the\n"
            "              best average offer), confident\n"
            "              (deviate only where the lower bound of the gain is positive),\n"
            "              shrink_<s> (uplift pulled towards the offer's average by 1 - s),\n"
            "              gated (opt-in: per offer, its targeted uplift only where it predicts\n"
            "              the DR effect beyond noise, else its average), calibrated (opt-in:\n"
            "              per offer, shrunk to its average by the slope of the DR effect on\n"
            "              its uplift), screened (opt-in: per offer, its uplift only where the\n"
            "              customers it ranks high respond more by DR, else its average),\n"
            "              full (per-customer uplift as estimated)\n\n"
            "The first model ever registered becomes champion automatically; later ones wait\n"
            "for `nba promote`. Open `make mlflow-ui` to see runs, metrics and plots.")


def _z_text(z: float | None) -> str:
    return "off" if z is None else f"{z:g}"


def _workers(text: str) -> int | None:
    """--crossfit-workers: 'auto' (None: one per available core) or a whole number >= 1."""
    if text.strip().lower() == "auto":
        return None
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise CliError(f"--crossfit-workers must be 'auto' or a whole number >= 1, not {text!r}")
    return workers


def _contact_z(text: str) -> float | None:
    """--contact-z: 'off' or a number of standard errors >= 0."""
    if text.strip().lower() == "off":
        return None
    try:
        z = float(text)
    except ValueError:
        z = -1.0
    if not z >= 0.0:  # also NaN
        raise CliError(f"--contact-z must be 'off' or a number >= 0, not {text!r}")
    return z


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba train`."""
    from training.settings import TrainSettings

    defaults = TrainSettings()
    p = add("train", "Choose an uplift policy from a menu by cross-fitted doubly robust value "
                     "(S-, T- and X-learners on LightGBM by causalml), refit it on all rows "
                     "with its response and value models; log and register the policy.",
            EXAMPLES)
    add_data_flag(p, settings)
    add_registry_flags(p, settings)
    p.add_argument("--experiment", default=settings.experiment,
                   help="MLflow experiment (env NBA_EXPERIMENT; default %(default)s)")
    p.add_argument("--artifact-root", type=Path, default=settings.artifact_root,
                   help="where new experiments keep artifacts (env NBA_ARTIFACT_ROOT; default "
                        "%(default)s)")
    p.add_argument("--test-size", type=float, default=0.3,
                   help="share of customers `nba compare`/`nba promote` evaluate on "
                        "(default %(default)s)")
    p.add_argument("--seed", type=int, default=42,
                   help="fold and model seed (default %(default)s)")
    p.add_argument("--trees", type=int, default=150,
                   help="LightGBM trees per base learner at capacity base (default %(default)s)")
    p.add_argument("--learner", default=settings.learner,
                   help="meta-learners of the menu, comma-separated: s, t, x "
                        "(S-learner, T-learner, X-learner: about twice the training time; "
                        "env NBA_LEARNER; default %(default)s)")
    p.add_argument("--capacity", default=",".join(defaults.capacities),
                   help="LightGBM capacities of the menu: low, base, high, small, low_smooth, "
                        "low_et, low_slow, low_l2, low_ps300, low_l2_100 (see above; default "
                        "%(default)s)")
    p.add_argument("--rule", default=",".join(defaults.rules),
                   help="rules of the menu: best_single, confident, shrink_<0..1>, gated, "
                        "calibrated, screened, full (default %(default)s)")
    p.add_argument("--folds", type=int, default=defaults.folds,
                   help="K of the cross-fitting, folds grouped by customer (default "
                        "%(default)s)")
    p.add_argument("--crossfit-workers", default="auto",
                   help="cross-fitting fits run this many at a time, one LightGBM thread each "
                        "(auto: one per core this process may use, at most 8; 1: one after "
                        "another, each with LightGBM's threads; the refit on all rows always "
                        "uses them; not with --engine dask; default %(default)s)")
    p.add_argument("--tolerance", type=float, default=defaults.tolerance,
                   help="choose the simplest candidate within this many standard errors of "
                        "the best DR value (default %(default)s: the best, ties to the "
                        "simplest; 1: the one-SE rule)")
    p.add_argument("--contact-z", default=_z_text(defaults.contact_z),
                   help="serve a policy that contacts customers only when its cross-fitted DR "
                        "value is above this many standard errors (sending nothing is worth "
                        "exactly 0); else the best single offer if its value is, else nobody. "
                        "'off' disables the guard (default %(default)s)")
    p.add_argument("--nested-z", type=float, default=defaults.nested_z,
                   help="opt-in: serve a targeting choice only when choosing from the menu "
                        "beats the best single offer out of sample (nested) by more than this "
                        "many standard errors (0: a positive estimate); else keep the best "
                        "single offer. Default: report the nested estimate, serve the choice")
    p.add_argument("--select-rows", type=int, default=defaults.select_rows,
                   help="score the menu on at most max(this, --select-rows-per-arm x arms) "
                        "rows, whole customers (default %(default)s); the chosen candidate is "
                        "refit on all rows")
    p.add_argument("--select-rows-per-arm", type=int, default=defaults.select_rows_per_arm,
                   help="the selection cap's rows per arm, control included (default "
                        "%(default)s: the demo's 13 arms stay at --select-rows)")
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
    from training.select import menu
    from training.settings import BoosterParams, TrainSettings

    if not 0 < args.test_size < 1:
        raise CliError("--test-size must lie strictly between 0 and 1")
    if (args.folds < 2 or args.select_rows < 100 or args.select_rows_per_arm < 0
            or args.trees < 1 or args.tolerance < 0
            or (args.nested_z is not None and args.nested_z < 0)):
        raise CliError("--folds must be at least 2, --select-rows at least 100, "
                       "--select-rows-per-arm at least 0, --trees at least 1, --tolerance "
                       "and --nested-z at least 0")
    workers = _workers(args.crossfit_workers)
    learners, capacities, rules = _names(args.learner), _names(args.capacity), _names(args.rule)
    try:
        menu(learners, capacities, rules)
    except ValueError as e:
        raise CliError(str(e)) from None
    settings = TrainSettings(data_dir=args.data_dir, tracking_uri=args.tracking_uri,
                             artifact_root=args.artifact_root, model_name=args.model_name,
                             experiment=args.experiment, test_size=args.test_size,
                             seed=args.seed, promote=args.promote, learners=learners,
                             capacities=capacities, rules=rules, folds=args.folds,
                             select_rows=args.select_rows,
                             select_rows_per_arm=args.select_rows_per_arm,
                             tolerance=args.tolerance, nested_z=args.nested_z,
                             contact_z=_contact_z(args.contact_z), crossfit_workers=workers,
                             params=replace(BoosterParams(), n_estimators=args.trees))
    if args.engine == "dask":
        return _train_on_dask(args, settings, capacities)
    result = train(settings)
    m = result.metrics
    print("\nmenu: cross-fitted DR incremental profit per row (95% CI clustered by customer)")
    print(result.menu)
    if result.offers:
        print("\noffers: DR net value per row of sending each to everyone vs nothing (95% CI "
              "clustered by customer; report only, no choice reads it)")
        print(result.offers)
    print(f"\nregistered {args.model_name} version {result.version} (run {result.run_id})"
          + ("; champion" if result.promoted else ""))
    key = "dr_incremental_profit_learned_uplift_policy"
    print(f"DR incremental profit per row {m[key]:.4f} [{m[key + '_ci_low']:.4f}, "
          f"{m[key + '_ci_high']:.4f}]; vs best single offer "
          f"{m['profit_gain_vs_best_single']:+.4f} [{m['profit_gain_vs_best_single_ci_low']:+.4f}"
          f", {m['profit_gain_vs_best_single_ci_high']:+.4f}] (out of fold)")
    print("out-of-fold policy value, revenue per customer (IPW):")
    for key in ("learned_uplift_policy", "best_single_offer", "treat_nobody", "random_offer",
                "propensity_ranking"):
        print(f"  {key:<24} {m.get('policy_value_' + key, float('nan')):8.3f}")
    print(f"response AUC {m.get('response_auc', float('nan')):.3f}")
    return 0


def _train_on_dask(args: argparse.Namespace, settings: TrainSettings,
                   capacities: tuple[str, ...]) -> int:
    """`--engine dask`: the fixed S-learner candidate fitted by lightgbm.dask; prints its
    holdout evaluation."""
    from training.learners import CAPACITIES
    from training.settings import TrainSettings

    if args.shrinkage is not None and not 0.0 <= args.shrinkage <= 1.0:
        raise CliError("--shrinkage must lie between 0 and 1")
    if args.dask_workers < 1:
        raise CliError("--dask-workers must be at least 1")
    if len(capacities) != 1 and args.capacity != ",".join(TrainSettings().capacities):
        raise CliError("--engine dask fits one candidate: give one --capacity")
    if args.crossfit_workers.strip().lower() != "auto":  # no cross-fitting on this engine
        raise CliError("--crossfit-workers is for --engine local: --engine dask does not "
                       "cross-fit (give --dask-workers for the LocalCluster's workers)")
    capacity = capacities[0] if len(capacities) == 1 else "base"
    try:
        from training.dask_train import DaskSettings, train
    except ImportError:
        raise CliError("--engine dask needs the scale extra: pip install "
                       "'nba-decisioning[scale]'") from None
    settings = replace(settings, learners=("s",), capacities=(capacity,),
                       params=CAPACITIES[capacity].apply(settings.params),
                       shrinkage=1.0 if args.shrinkage is None else args.shrinkage)
    try:
        result = train(settings, DaskSettings(scheduler=args.scheduler,
                                              workers=args.dask_workers))
    except OSError as exc:  # an unreachable scheduler: distributed raises OSError on timeout
        raise CliError(f"dask scheduler {args.scheduler}: {exc}") from None
    m = result.metrics
    print(f"\nregistered {args.model_name} version {result.version} (run {result.run_id}; "
          f"S-learner, capacity {capacity}, shrinkage {settings.shrinkage:g}, on Dask)"
          + ("; champion" if result.promoted else ""))
    print("holdout policy value, revenue per customer (IPW):")
    for key in ("learned_uplift_policy", "best_single_offer", "treat_nobody", "random_offer",
                "propensity_ranking"):
        print(f"  {key:<24} {m.get('policy_value_' + key, float('nan')):8.3f}")
    print(f"response AUC {m.get('response_auc', float('nan')):.3f}")
    return 0
