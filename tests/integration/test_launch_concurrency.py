"""A launch never oversells: 4 gunicorn workers, 200 concurrent clients, 100 units, each backend.

A small policy is trained on demo data whose catalog has a 100-unit launch with a large margin
(so the model recommends it widely) and no value floor; 400 distinct customers ask at once.
Reserved units must be exactly min(100, asks that carried the launch), never more, and every
unit a client was promised must be in the store, and vice versa.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from features import io
from features.catalog import Launch
from state import open_store
from state.store import StockRow
from tests.conftest import ONE_CANDIDATE
from tests.integration.servers import call, gunicorn

pytestmark = pytest.mark.slow

LAUNCH = "collab_sneaker_early_access"
SUPPLY = 100
CLIENTS = 200
ASKS = 400


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory: pytest.TempPathFactory):
    """Demo data with a 100-unit, high-margin launch open to all; a small trained champion."""
    from nba import demo
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    root = tmp_path_factory.mktemp("launch")
    data = demo.generate(6_000, 24_000, 5)
    now = datetime.now(UTC)
    offers = tuple(
        o if o.offer_id != LAUNCH else o.model_copy(update={
            "margin": 400.0, "loyalty_tiers": None, "fallback": None,
            "launch": Launch(supply=SUPPLY, min_customer_value=0.0,
                             starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=7),
                             hold_seconds=3600)})
        for o in data.catalog.offers)
    catalog = data.catalog.model_copy(update={"offers": offers, "contact_policy": None})
    demo.write(replace(data, catalog=catalog), root / "data")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    train(TrainSettings(data_dir=root / "data", tracking_uri=uri, artifact_root=root / "mlruns",
                        params=replace(BoosterParams(), n_estimators=40, n_jobs=1),
                        **ONE_CANDIDATE))
    return root, uri


def ask(base: str, customer_id: str) -> tuple[int, dict]:
    return call(f"{base}/v1/decisions", {"customer_id": customer_id, "channel": "web",
                                         "limit": 3})


@pytest.mark.solo
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_four_workers_and_200_clients_never_oversell_a_launch(small_registry, store_url,
                                                             tmp_path: Path):
    root, uri = small_registry
    with open_store(store_url) as store:  # stock for every size: only supply limits
        store.replace_inventory([StockRow("SNK-COLLAB-01", None, None, None, 10_000)],
                                now=datetime.now(UTC))
    customers = io.read_customers(root / "data" / io.CUSTOMERS)
    ids = customers.loc[customers["contactable"], "customer_id"].head(ASKS).tolist()
    env = os.environ | {"MLFLOW_TRACKING_URI": uri, "NBA_DATA_DIR": str(root / "data"),
                        "NBA_ACCESS_LOG": "", "NBA_STATE_URL": store_url,
                        "NBA_POLL_SECONDS": "0"}
    with (gunicorn(env, tmp_path / "server.log", workers=4) as base,
          ThreadPoolExecutor(CLIENTS) as pool):
        answers = list(pool.map(lambda cid: ask(base, cid), ids))

    assert [status for status, _ in answers] == [200] * len(ids), answers[:3]
    promised = {}
    for _, body in answers:
        for offer in body["offers"]:
            if offer["offer_id"] == LAUNCH and offer["action"] == "offer":
                promised[body["customer_id"]] = offer["reservation"]["reservation_id"]
    sold_out = sum(1 for _, body in answers for s in body["suppressed"]
                   if s["offer_id"] == LAUNCH and "sold out" in s["message"])
    with open_store(store_url) as store:
        held = {r.customer_id: r.reservation_id for r in store.reservations(LAUNCH)
                if r.status == "reserved"}
        counts = store.launch_counts(LAUNCH, now=datetime.now(UTC))
    assert len(held) <= SUPPLY and counts.reserved + counts.confirmed <= SUPPLY
    assert held == promised  # none lost, none invented: every promise is a unit in the store
    assert len(promised) == SUPPLY, (len(promised), sold_out)  # demand exceeded supply
    assert sold_out > 0
