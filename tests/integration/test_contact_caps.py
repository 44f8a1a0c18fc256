"""A contact cap holds across workers: 4 gunicorn workers, 40 concurrent requests for each of
a few customers, each backend. The contacts counted in the store, and the offers the clients
were sent, never exceed the cap.

A small policy on demo data whose catalog caps contacts at 3 offers a day per channel; every
request asks for 3 offers, so without the atomic check two workers would both pass the cap.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from features import io
from features.catalog import ContactPolicy
from state import open_store
from state.rows import stock_rows
from tests.conftest import ONE_CANDIDATE
from tests.integration.servers import call, gunicorn

pytestmark = pytest.mark.slow  # trains a policy and starts gunicorn per backend

CAP = 3
CUSTOMERS = 5
ASKS_EACH = 40


@pytest.fixture(scope="module")
def capped_registry(tmp_path_factory: pytest.TempPathFactory):
    """Demo data whose catalog caps contacts at 3 a day; a small trained champion."""
    from nba import demo
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    root = tmp_path_factory.mktemp("caps")
    data = demo.generate(4_000, 16_000, 7)
    catalog = data.catalog.model_copy(update={"contact_policy": ContactPolicy(
        max_offers=CAP, window_hours=24, max_declines=2, decline_days=30)})
    demo.write(replace(data, catalog=catalog), root / "data")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    train(TrainSettings(data_dir=root / "data", tracking_uri=uri, artifact_root=root / "mlruns",
                        params=replace(BoosterParams(), n_estimators=30, n_jobs=1),
                        **ONE_CANDIDATE))
    return root, uri


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_four_workers_never_let_a_customer_past_the_contact_cap(capped_registry, store_url,
                                                                tmp_path: Path):
    root, uri = capped_registry
    data = root / "data"
    with open_store(store_url) as store:
        store.replace_inventory(stock_rows(io.read_inventory(data / io.INVENTORY)),
                                now=datetime.now(UTC))
    customers = io.read_customers(data / io.CUSTOMERS)
    ids = customers.loc[customers["contactable"], "customer_id"].head(CUSTOMERS).tolist()
    env = os.environ | {"MLFLOW_TRACKING_URI": uri, "NBA_DATA_DIR": str(data),
                        "NBA_ACCESS_LOG": "", "NBA_STATE_URL": store_url,
                        "NBA_POLL_SECONDS": "0", "NBA_HOLDOUT_SHARE": "0",
                        "NBA_EXPLORATION": "0"}
    asks = [cid for _ in range(ASKS_EACH) for cid in ids]
    with (gunicorn(env, tmp_path / "server.log", workers=4) as base,
          ThreadPoolExecutor(40) as pool):
        answers = list(pool.map(lambda cid: call(f"{base}/v1/decisions", {
            "customer_id": cid, "channel": "web", "limit": CAP}), asks))

    assert [status for status, _ in answers] == [200] * len(asks), answers[:3]
    sent = {cid: 0 for cid in ids}
    for _, body in answers:
        sent[body["customer_id"]] += len(body["offers"])
    since = datetime.now(UTC) - timedelta(hours=24)
    with open_store(store_url) as store:
        counted = {cid: store.contacts_since(customer_id=cid, channel="web", since=since)
                   for cid in ids}
    assert counted == sent  # every offer sent is a contact, and nothing else is
    assert all(n <= CAP for n in counted.values()), counted
    assert max(counted.values()) == CAP  # the cap was reached, so it was tested
    capped = [s for _, body in answers for s in body["suppressed"] if s["reason"] == "contact_cap"]
    assert capped and all(s["details"]["limit"] == CAP for s in capped)
