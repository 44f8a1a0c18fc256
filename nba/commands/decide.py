"""`nba decide`: one customer's decision in-process, as a preview (holds and logs nothing)."""

from __future__ import annotations

import argparse
import json

from nba.commands.common import (
    AddCommand,
    CliError,
    add_at_flag,
    add_data_flag,
    add_registry_flags,
    add_state_flag,
    open_state,
    parse_at,
)
from nba.settings import CliSettings

EXAMPLES = ("examples:\n  nba decide C0000001\n  nba decide C0000042 --channel store "
            "--store-id store_002 --limit 5\n\nA preview: reads live stock, launch status "
            "and contact caps from the state store,\nbut holds no launch unit and logs "
            "nothing.")


def add_parser(add: AddCommand, settings: CliSettings) -> None:
    """Define `nba decide`."""
    p = add("decide", "Decide for one customer in-process and print the JSON (debugging).",
            EXAMPLES)
    add_data_flag(p, settings)
    add_registry_flags(p, settings)
    p.add_argument("customer_id", help="a customer_id from customers.parquet")
    p.add_argument("--channel", default="web", help="web, app, store, email or sms (default web)")
    p.add_argument("--limit", type=int, default=3, help="offers to return (default 3)")
    p.add_argument("--store-id", default=None, help="store for channel=store")
    p.add_argument("--device", default=None, help="request context: mobile, tablet, desktop, "
                   "kiosk or other (a model feature when the training data had it)")
    p.add_argument("--page", default=None, help="request context: page or category viewed")
    p.add_argument("--cart-value", type=float, default=None, help="request context: cart value")
    p.add_argument("--alias", default="champion", help="model alias to use (default champion)")
    add_state_flag(p, settings)
    add_at_flag(p)
    p.set_defaults(handler=run, decision_settings=settings.decision_settings())


def run(args: argparse.Namespace) -> int:
    """Load the model behind the alias, decide for the customer, print the response JSON."""
    from pydantic import ValidationError

    from decisioning.decision import DecisionContext
    from service.api import decision_json
    from service.live import LiveState
    from service.model_store import ModelNotReady, load_from_registry
    from service.schemas import DecisionRequest
    from service.settings import ServiceSettings

    try:
        req = DecisionRequest.model_validate({
            "customer_id": args.customer_id, "channel": args.channel, "limit": args.limit,
            "context": {"store_id": args.store_id, "device": args.device, "page": args.page,
                        "cart_value": args.cart_value}})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CliError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    settings = ServiceSettings(tracking_uri=args.tracking_uri, model_name=args.model_name,
                               model_alias=args.alias, data_dir=args.data_dir)
    try:
        model = load_from_registry(settings)
    except ModelNotReady as exc:
        raise CliError(exc.message) from None
    customer_id = args.customer_id
    row = model.customers.row(customer_id)
    if row is None:
        raise CliError(f"unknown customer_id '{req.customer_id}' in "
                       f"{args.data_dir / 'customers.parquet'}")
    context = DecisionContext(req.channel, parse_at(args.at), req.limit, req.context.store_id,
                              req.context.device, req.context.page, req.context.cart_value)
    with open_state(args.state_url) as store:
        snapshot = LiveState(store).read(model.policy.catalog, model.launch_values,
                                         customer_id, req.channel, context.now)
        decision = model.policy.decide_row(model.customers, row, context, snapshot,
                                           args.decision_settings)
    print(json.dumps(decision_json("preview", customer_id, model, decision), indent=2))
    return 0
