"""`nba serve`: the decision service under gunicorn, serving the champion."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nba.commands.common import (
    AddCommand,
    CliError,
    add_data_flag,
    add_registry_flags,
    add_state_flag,
    open_state,
)
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba serve                          # 127.0.0.1:8000, 2 workers\n"
            "  nba serve --port 9000 --workers 4\n\nThen: curl -s localhost:8000/v1/decisions "
            "-H 'Content-Type: application/json' \\\n  -d '{\"customer_id\": \"C0000001\", "
            "\"channel\": \"web\"}'")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba serve`."""
    p = add("serve", "Serve decisions over HTTP under gunicorn (loads the champion).", EXAMPLES)
    add_data_flag(p, settings)
    add_registry_flags(p, settings)
    p.add_argument("--host", default=settings.host,
                   help="bind address (env NBA_HOST; default %(default)s)")
    p.add_argument("--port", type=int, default=settings.port,
                   help="port (env NBA_PORT; default %(default)s)")
    p.add_argument("--workers", type=int, default=settings.workers,
                   help="gunicorn worker processes (env NBA_WORKERS; default %(default)s)")
    p.add_argument("--customers-from", choices=("auto", "file", "store"),
                   default=settings.customers_from,
                   help="where a decision reads the customer: 'store' (profiles loaded by `nba "
                        "customers load`, read with each decision; memory does not grow with "
                        "customers), 'file' (DATA_DIR/customers.parquet held in every worker) "
                        "or 'auto' (store when the state store holds profiles, else file) (env "
                        "NBA_CUSTOMERS_FROM; default %(default)s)")
    add_state_flag(p, settings)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check the state store, then replace this process with gunicorn (never returns)."""
    import service

    with open_state(args.state_url) as store:  # a bad URL fails here, not in every worker
        print(f"state store: {store.url} (inventory version {store.inventory_version()})")
        profiles = store.profiles.estimated_count()
        if args.customers_from == "store" and not profiles:
            raise CliError(f"{store.url} holds no customer profiles; load them with `nba "
                           "customers load DATA_DIR/customers.parquet` or serve with "
                           "--customers-from file")
        if args.customers_from == "auto":
            print(f"customers: from the state store ({profiles:,} profiles)" if profiles else
                  f"customers: from {args.data_dir / 'customers.parquet'} (the state store "
                  "holds no profiles)")
    # gunicorn and the workers read their settings from the environment (service.settings)
    env = dict(os.environ)
    env.update({"NBA_HOST": args.host, "NBA_PORT": str(args.port),
                "NBA_WORKERS": str(args.workers), "NBA_DATA_DIR": str(args.data_dir),
                "MLFLOW_TRACKING_URI": args.tracking_uri, "NBA_MODEL_NAME": args.model_name,
                "NBA_STATE_URL": args.state_url, "NBA_CUSTOMERS_FROM": args.customers_from,
                "OMP_NUM_THREADS": "1"})
    config = Path(service.__file__).with_name("gunicorn.conf.py")
    print(f"serving {args.model_name}@champion on http://{args.host}:{args.port} "
          f"({args.workers} workers). Try:\n"
          f"  curl -s http://{args.host}:{args.port}/v1/decisions -H 'Content-Type: "
          f"application/json' -d '{{\"customer_id\": \"C0000001\", \"channel\": \"web\"}}'",
          flush=True)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(config), "service.wsgi:app"]
    os.execvpe(sys.executable, argv, env)
