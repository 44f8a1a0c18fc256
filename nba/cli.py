"""`nba`: one command line for data, training, the registry and the service.

Every subcommand reads its defaults from the environment (MLFLOW_TRACKING_URI, NBA_DATA_DIR,
NBA_MODEL_NAME, ...) and lets flags override them. Errors print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXAMPLES = {
    "demo-data": "examples:\n  nba demo-data                      # 50,000 customers, 200,000 "
                 "exposures into ./data\n  nba demo-data --customers 5000 --seed 1 --out /tmp/demo",
    "train": "examples:\n  nba train                          # train on ./data, register a new "
             "version\n  nba train --promote                # ... and make it the champion\n"
             "  nba train --trees 300 --seed 7\n\nThe first model ever registered becomes champion "
             "automatically; later ones wait\nfor `nba promote`. Open `make mlflow-ui` to see "
             "runs, metrics and plots.",
    "promote": "examples:\n  nba promote --version 3            # gated: compared with the "
               "champion first\n  nba promote --version 3 --force    # promote even if "
               "worse beyond noise\n  nba promote --rollback             # put the previous "
               "champion back\n"
               "  nba promote --version 4 --alias challenger   # other aliases: no gate\n\n"
               "A champion promotion evaluates the version and the current champion on the "
               "same\nholdout rows (nba compare) and refuses, exit status 1, when the 95% "
               "interval of\nthe paired policy-value difference lies entirely below 0. The "
               "outcome is recorded\nas tags on the model version (validation_status, "
               "compared_to, ...).",
    "compare": "examples:\n  nba compare --candidate 4                  # version 4 vs the "
               "champion\n  nba compare --candidate 4 --champion 2\n\nBoth versions are "
               "evaluated on the candidate run's holdout split of\nexposures.parquet: IPW policy "
               "value with 95% interval, the paired difference,\nresponse AUC and Qini per "
               "offer.",
    "model": "examples:\n  nba model                          # which version is champion?\n"
             "  nba model --alias challenger\n\nExit status 3 when the alias does not exist.",
    "serve": "examples:\n  nba serve                          # 127.0.0.1:8000, 2 workers\n"
             "  nba serve --port 9000 --workers 4\n\nThen: curl -s localhost:8000/v1/decisions "
             "-H 'Content-Type: application/json' \\\n  -d '{\"customer_id\": \"C0000001\", "
             "\"channel\": \"web\"}'",
    "batch-score": "examples:\n  nba batch-score --customers data/customers.parquet --out "
                   "tonight.parquet\n  nba batch-score --customers big.parquet --out out.parquet "
                   "--channel email --limit 1 \\\n      --model-uri models:/nba-policy/3\n\n"
                   "Writes one row per customer and rank: customer_id, rank, offer_id (null when "
                   "nothing\nis worth sending), expected_incremental_value, uplift, reason. "
                   "Streams in chunks,\ndecided by one worker process per core "
                   "(--workers); the output appears only when\nthe whole run succeeded.",
    "decide": "examples:\n  nba decide C0000001\n  nba decide C0000042 --channel store "
              "--store-id store_002 --limit 5\n\nA preview: reads live stock, launch status "
              "and contact caps from the state store,\nbut holds no launch unit and logs "
              "nothing.",
    "state": "examples:\n  nba state prune --older-than 400 --dry-run   # what would go\n"
             "  nba state prune --older-than 400             # delete it, in small batches\n\n"
             "Deletes decisions (with their outcomes), contacts and declines older than the "
             "cut-off,\nand launch holds that ended (released or expired) before it. Sales "
             "stay. Reports\nlook back only as far as what is kept: export first "
             "(nba export-training, nba report).",
    "inventory": "examples:\n  nba inventory load data/inventory.parquet     # replace all stock "
                 "rows\n  nba inventory load new.parquet --if-empty      # only into an empty "
                 "store\n  nba inventory show                           # stock and launch "
                 "holds\n\nLive updates while serving: PUT /v1/inventory (admin token); the "
                 "next decision\nsees them in every worker.",
}


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name, default))


def _add_registry_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI",
                                                                 DEFAULT_TRACKING_URI),
                        help="MLflow tracking + registry store (env MLFLOW_TRACKING_URI; "
                             "default %(default)s)")
    parser.add_argument("--model-name", default=os.environ.get("NBA_MODEL_NAME", "nba-policy"),
                        help="registered model name (env NBA_MODEL_NAME; default %(default)s)")


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=_env_path("NBA_DATA_DIR", "data"),
                        help="folder with exposures/customers/inventory parquet and offers.yaml "
                             "(env NBA_DATA_DIR; default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
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

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text,
                              epilog=EXAMPLES.get(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("demo-data", "Write a synthetic retailer in the data contract, with the TRUE "
                              "uplift of every offer (true_uplift.parquet) for checking models.")
    p.add_argument("--customers", type=int, default=50_000, help="customers (default %(default)s)")
    p.add_argument("--exposures", type=int, default=None,
                   help="exposure rows in the randomized campaign log (default 4 x customers)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default %(default)s)")
    p.add_argument("--out", type=Path, default=_env_path("NBA_DATA_DIR", "data"),
                   help="output folder (env NBA_DATA_DIR; default %(default)s)")

    p = command("train", "Fit uplift (causalml T-learner on LightGBM), response and value "
                         "models; evaluate on a holdout split; log and register the policy.")
    _add_data_flag(p)
    _add_registry_flags(p)
    p.add_argument("--experiment", default=os.environ.get("NBA_EXPERIMENT", "nba-training"),
                   help="MLflow experiment (env NBA_EXPERIMENT; default %(default)s)")
    p.add_argument("--artifact-root", type=Path, default=_env_path("NBA_ARTIFACT_ROOT", "mlruns"),
                   help="where new experiments keep artifacts (default %(default)s)")
    p.add_argument("--test-size", type=float, default=0.3,
                   help="holdout share of customers for evaluation (default %(default)s)")
    p.add_argument("--seed", type=int, default=42,
                   help="split and model seed (default %(default)s)")
    p.add_argument("--trees", type=int, default=150,
                   help="LightGBM trees per base learner (default %(default)s)")
    p.add_argument("--learner", choices=("t", "s"), default=os.environ.get("NBA_LEARNER", "s"),
                   help="causalml meta-learner: t (T-learner) or s (S-learner) "
                        "(env NBA_LEARNER; default %(default)s; see README for the evidence)")
    p.add_argument("--promote", action="store_true",
                   help="make the new version champion even if one exists")

    p = command("promote", "Point an alias (default: champion) at a registered model version; "
                           "a new champion must not be worse than the current one.")
    _add_data_flag(p)
    _add_registry_flags(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--version",
                       help="model version to promote, or `latest` (the newest registered)")
    which.add_argument("--rollback", action="store_true",
                       help="put the previous champion back (from the champion history)")
    p.add_argument("--alias", default="champion", help="alias to set (default %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="promote to champion even when worse than the champion beyond noise")

    p = command("compare", "Evaluate a candidate version and the champion on the same holdout "
                           "rows and print them side by side.")
    _add_data_flag(p)
    _add_registry_flags(p)
    p.add_argument("--candidate", required=True, help="model version to evaluate")
    p.add_argument("--champion", default=None,
                   help="version to compare against (default: the current champion)")

    p = command("model", "Show the model version behind an alias, with its headline metrics.")
    _add_registry_flags(p)
    p.add_argument("--alias", default="champion", help="alias to look up (default %(default)s)")

    p = command("serve", "Serve decisions over HTTP under gunicorn (loads the champion).")
    _add_data_flag(p)
    _add_registry_flags(p)
    p.add_argument("--host", default=os.environ.get("NBA_HOST", "127.0.0.1"),
                   help="bind address (default %(default)s)")
    p.add_argument("--port", type=int, default=int(os.environ.get("NBA_PORT", "8000")),
                   help="port (default %(default)s)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("NBA_WORKERS", "2")),
                   help="gunicorn worker processes (default %(default)s)")
    _add_state_flag(p)

    p = command("batch-score", "Score every customer of a customers.parquet-shaped file with "
                               "the champion (or any model URI), through the service's decision "
                               "code.")
    _add_data_flag(p)
    _add_registry_flags(p)
    p.add_argument("--customers", type=Path, required=True, help="customers-shaped parquet file")
    p.add_argument("--out", type=Path, required=True, help="output parquet file")
    p.add_argument("--model-uri", default=None,
                   help="MLflow model URI (default models:/<model-name>@champion)")
    p.add_argument("--limit", type=int, default=3, help="offers per customer (default 3)")
    p.add_argument("--channel", default="email", help="channel the campaign goes out on "
                                                      "(default email)")
    p.add_argument("--inventory", type=Path, default=None,
                   help="inventory parquet for stock checks (default <data-dir>/inventory.parquet"
                        " if present; 'none' to skip)")
    p.add_argument("--chunk-size", type=int, default=50_000,
                   help="customers per chunk; memory is flat in the file size (default "
                        "%(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes deciding chunks side by side, one LightGBM thread each "
                        "(default: one per core; 1 = all in this process)")

    p = command("decide", "Decide for one customer in-process and print the JSON (debugging).")
    _add_data_flag(p)
    _add_registry_flags(p)
    p.add_argument("customer_id", help="a customer_id from customers.parquet")
    p.add_argument("--channel", default="web", help="web, app, store, email or sms (default web)")
    p.add_argument("--limit", type=int, default=3, help="offers to return (default 3)")
    p.add_argument("--store-id", default=None, help="store for channel=store")
    p.add_argument("--alias", default="champion", help="model alias to use (default champion)")
    _add_state_flag(p)

    p = command("inventory", "Load stock into the shared state store (what the service reads "
                             "live), or show stock and launch holds.")
    p.add_argument("action", choices=("load", "show"), help="load a file, or show the store")
    p.add_argument("file", nargs="?", type=Path, default=None,
                   help="inventory parquet in the data contract (for load)")
    p.add_argument("--if-empty", action="store_true",
                   help="load only when the store holds no stock yet (make run uses this)")
    _add_state_flag(p)

    p = command("state", "Keep the state store bounded: delete decision-log, contact and "
                         "decline history older than a cut-off.")
    p.add_argument("action", choices=("prune",), help="prune: delete old history")
    p.add_argument("--older-than", type=float, required=True, metavar="DAYS",
                   help="delete what is older than this many days; at least the catalog's "
                        "contact-cap windows (offers.yaml in --data-dir)")
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    _add_data_flag(p)
    _add_state_flag(p)

    from reports.cli import add_report_parser

    add_report_parser(sub.add_parser)

    from nba.loop_cli import add_loop_parsers  # imported here: loop_cli imports nba.cli

    add_loop_parsers(command)
    return parser


def _add_state_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-url", default=os.environ.get("NBA_STATE_URL") or
                        "sqlite:///state.db",
                        help="state store: sqlite:///state.db (one host) or "
                             "postgresql://user@host/db (env NBA_STATE_URL; default %(default)s)")


def _demo_data(args: argparse.Namespace) -> None:
    from nba import demo

    if args.customers < 1:
        raise CliError("--customers must be at least 1")
    exposures = args.exposures if args.exposures is not None else 4 * args.customers
    if exposures < 1:
        raise CliError("--exposures must be at least 1")
    started = time.perf_counter()
    data = demo.generate(args.customers, exposures, args.seed)
    paths = demo.write(data, args.out)
    print(f"wrote {args.customers:,} customers, {exposures:,} exposures, "
          f"{len(data.catalog.offers)} offers, {len(data.inventory)} inventory rows to "
          f"{args.out}/ in {time.perf_counter() - started:.1f}s")
    for path in paths.values():
        print(f"  {path}")


def _train(args: argparse.Namespace) -> None:
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    if not 0 < args.test_size < 1:
        raise CliError("--test-size must lie strictly between 0 and 1")
    settings = TrainSettings(data_dir=args.data_dir, tracking_uri=args.tracking_uri,
                             artifact_root=args.artifact_root, model_name=args.model_name,
                             experiment=args.experiment, test_size=args.test_size,
                             seed=args.seed, promote=args.promote, learner=args.learner,
                             params=replace(BoosterParams(), n_estimators=args.trees))
    result = train(settings)
    m = result.metrics
    print(f"\nregistered {args.model_name} version {result.version} (run {result.run_id})"
          + ("; champion" if result.promoted else ""))
    print("holdout policy value, revenue per customer (IPW):")
    for key in ("learned_uplift_policy", "best_single_offer", "treat_nobody", "random_offer",
                "propensity_ranking"):
        print(f"  {key:<24} {m.get('policy_value_' + key, float('nan')):8.3f}")
    print(f"response AUC {m.get('response_auc', float('nan')):.3f}")


def _promote(args: argparse.Namespace) -> int:
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
        registry.get_version(client, name, version)
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
        print(f"nba promote: refused: version {version} is worse than champion version "
              f"{result.previous} beyond noise: {compare.evidence_line(result.comparison.paired)}"
              f"; champion stays version {result.previous} (--force overrides)", file=sys.stderr)
        return 1
    print(f"{name}@champion is already version {version}" if result.status == compare.ALREADY
          else f"{name}@champion -> version {version} (validation_status={result.status})")
    return 0


def _compare(args: argparse.Namespace) -> None:
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


def _model(args: argparse.Namespace) -> int:
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


def _serve(args: argparse.Namespace) -> None:
    with _open_state(args.state_url) as store:  # a bad URL fails here, not in every worker
        print(f"state store: {store.url} (inventory version {store.inventory_version()})")
    env = dict(os.environ)
    env.update({"NBA_HOST": args.host, "NBA_PORT": str(args.port),
                "NBA_WORKERS": str(args.workers), "NBA_DATA_DIR": str(args.data_dir),
                "MLFLOW_TRACKING_URI": args.tracking_uri, "NBA_MODEL_NAME": args.model_name,
                "NBA_STATE_URL": args.state_url, "OMP_NUM_THREADS": "1"})
    config = Path(__file__).resolve().parent.parent / "service" / "gunicorn.conf.py"
    print(f"serving {args.model_name}@champion on http://{args.host}:{args.port} "
          f"({args.workers} workers). Try:\n"
          f"  curl -s http://{args.host}:{args.port}/v1/decisions -H 'Content-Type: "
          f"application/json' -d '{{\"customer_id\": \"C0000001\", \"channel\": \"web\"}}'",
          flush=True)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(config), "service.wsgi:app"]
    os.execvpe(sys.executable, argv, env)


def _batch_score(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from features import io
    from features.catalog import CHANNELS
    from service.decide import DecisionContext
    from state.rows import snapshot_of
    from training import registry
    from training.batch import batch_score, default_workers

    if args.channel not in CHANNELS:
        raise CliError(f"unknown channel '{args.channel}'; use one of {list(CHANNELS)}")
    if not 1 <= args.limit <= 20:
        raise CliError("--limit must lie between 1 and 20")
    if args.chunk_size < 1:
        raise CliError("--chunk-size must be at least 1")
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise CliError("--workers must be at least 1")
    registry.configure(args.tracking_uri)
    uri = args.model_uri or registry.model_uri(args.model_name)
    try:
        policy = registry.load_policy(uri)
    except Exception as exc:
        raise CliError(f"cannot load model {uri}: {str(exc).splitlines()[0]}") from None
    inventory = args.inventory or args.data_dir / io.INVENTORY
    stock = None
    if str(inventory) != "none" and inventory.exists():
        stock = snapshot_of(io.read_inventory(inventory))

    def progress(done: int, total: int, seconds: float) -> None:
        print(f"  scored {done:,} / {total:,} customers ({done / max(total, 1):.0%}), "
              f"{done / max(seconds, 1e-9):,.0f}/s", file=sys.stderr, flush=True)

    context = DecisionContext(args.channel, datetime.now(UTC), args.limit)
    result = batch_score(policy, args.customers, args.out, context, stock, args.chunk_size,
                         progress, workers)
    print(f"wrote {result.rows:,} rows for {result.customers:,} customers to {args.out} in "
          f"{result.seconds:.1f}s ({uri}{', with stock' if stock else ', no stock check'})")


def _decide(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from service.api import decision_json
    from service.decide import DecisionContext
    from service.live import LiveState
    from service.model_store import ModelNotReady, load_from_registry
    from service.schemas import DecisionRequest
    from service.settings import ServiceSettings

    try:
        req = DecisionRequest(customer_id=args.customer_id, channel=args.channel,
                              limit=args.limit, context={"store_id": args.store_id})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CliError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    settings = ServiceSettings(tracking_uri=args.tracking_uri, model_name=args.model_name,
                               model_alias=args.alias, data_dir=args.data_dir)
    try:
        model = load_from_registry(settings)
    except ModelNotReady as exc:
        raise CliError(exc.message) from None
    row = model.customers.row(req.customer_id)
    if row is None:
        raise CliError(f"unknown customer_id '{req.customer_id}' in "
                       f"{args.data_dir / 'customers.parquet'}")
    context = DecisionContext(req.channel, datetime.now(UTC), req.limit, req.context.store_id)
    with _open_state(args.state_url) as store:
        view = LiveState(store).read(model.policy.catalog, model.launch_values,
                                     req.customer_id, req.channel, context.now)
        decision = model.policy.decide_row(model.customers, row, context, view.stock,
                                           launches=view.launches, contacts=view.contacts)
    print(json.dumps(decision_json("preview", req.customer_id, model, decision), indent=2))
    return 0


def _open_state(url: str):
    from state import StateStoreError, open_store

    try:
        return open_store(url)
    except StateStoreError as exc:
        raise CliError(str(exc)) from None


def _inventory(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from features import io
    from state.rows import stock_rows

    with _open_state(args.state_url) as store:
        if args.action == "load":
            if args.file is None:
                raise CliError("nba inventory load needs a FILE (an inventory parquet)")
            if args.if_empty and store.stock_snapshot().rows:
                print(f"{store.url} already holds stock (version "
                      f"{store.inventory_version()}); not loading {args.file}")
                return 0
            rows = stock_rows(io.read_inventory(args.file))
            count = store.replace_inventory(rows, now=datetime.now(UTC))
            print(f"loaded {count:,} stock rows from {args.file} into {store.url} (version "
                  f"{store.inventory_version()})")
            return 0
        snapshot = store.stock_snapshot()
        by_sku: dict[str, list[int]] = {}
        for row in snapshot.rows:
            online_store = by_sku.setdefault(row.sku, [0, 0])
            online_store[row.location is not None] += row.on_hand
        print(f"{store.url}: inventory version {snapshot.version}, {len(snapshot.rows):,} rows")
        for sku, (online, in_stores) in sorted(by_sku.items()):
            print(f"  {sku:<16} online {online:>7,}   in stores {in_stores:>7,}")
        now = datetime.now(UTC)
        for offer_id, counts in store.all_launch_counts(now=now).items():
            print(f"  launch {offer_id}: {counts.reserved} held, {counts.confirmed} sold, "
                  f"{counts.remaining} of {counts.supply} left")
    return 0


def _state(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from features import io
    from state import StateStoreError
    from state.retention import prune

    if not args.older_than > 0:
        raise CliError("--older-than must be a positive number of days")
    offers = args.data_dir / io.OFFERS
    caps = io.read_catalog(offers).contact_policy if offers.exists() else None
    if caps is not None:
        needed = max(caps.window_hours / 24, caps.decline_days)
        if args.older_than < needed:
            raise CliError(f"--older-than {args.older_than:g} would delete history the contact "
                           f"caps in {offers} still count ({needed:g} days); use at least "
                           f"{needed:g}")
    before = datetime.now(UTC) - timedelta(days=args.older_than)

    def progress(table: str, done: int) -> None:
        print(f"  {table}: {done:,} deleted so far", file=sys.stderr, flush=True)

    with _open_state(args.state_url) as store:
        try:
            pruned = prune(store, before=before, dry_run=args.dry_run, progress=progress)
        except StateStoreError as exc:
            raise CliError(str(exc)) from None
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{store.url}: {verb} history older than {before:%Y-%m-%d %H:%M} UTC "
          f"({args.older_than:g} days):")
    for table, rows in pruned.items():
        print(f"  {table:<13} {rows:>10,}")
    return 0


def _loop(args: argparse.Namespace) -> int:
    from nba.loop_cli import run_loop_command

    return run_loop_command(args)


def _report(args: argparse.Namespace) -> int:
    from reports.cli import run_report

    return run_report(args)


HANDLERS = {"demo-data": _demo_data, "train": _train, "promote": _promote, "compare": _compare,
            "model": _model, "serve": _serve, "decide": _decide, "batch-score": _batch_score,
            "inventory": _inventory, "state": _state, "report": _report, "simulate": _loop,
            "export-training": _loop, "outcomes": _loop}



def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nba` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("causalml", "alembic", "mlflow.store.db.utils", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from features.errors import ContractError

    try:
        return HANDLERS[args.command](args) or 0
    except (CliError, ContractError) as exc:
        print(f"nba {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
