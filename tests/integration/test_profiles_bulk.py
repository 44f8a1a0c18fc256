"""200,000 customer profiles bulk-loaded into PostgreSQL and served from the store by real
gunicorn workers (NBA_CUSTOMERS_FROM=store): no worker holds the customer table."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np
import pytest

from features import io
from features.customers import profile_documents
from service.model_store import PROFILE_SAMPLE
from state import open_store
from state.rows import stock_rows
from tests.integration.servers import call, gunicorn

# a real server, a full trained policy and a 200k-row load: slow
pytestmark = pytest.mark.slow

PROFILES = 200_000


@pytest.mark.parametrize("backend", ["postgresql"])
def test_200k_profiles_load_and_are_served_from_the_store(trained, store_url, tmp_path):
    base = io.read_customers(trained.data_dir / io.CUSTOMERS)
    rng = np.random.default_rng(5)
    bulk = base.drop(columns=["customer_id"]).iloc[rng.integers(0, len(base), PROFILES)]
    bulk = bulk.reset_index(drop=True)
    bulk.insert(0, "customer_id", [f"P{i:07d}" for i in range(PROFILES)])
    with open_store(store_url) as store:
        store.replace_inventory(stock_rows(io.read_inventory(trained.data_dir / io.INVENTORY)),
                                now=datetime.now(UTC))
        assert store.profiles.replace(profile_documents(bulk), now=datetime.now(UTC)) \
            == PROFILES

    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri,
                        "NBA_DATA_DIR": str(tmp_path),  # no customers.parquet there at all
                        "NBA_STATE_URL": store_url, "NBA_CUSTOMERS_FROM": "store",
                        "NBA_ACCESS_LOG": "", "NBA_POLL_SECONDS": "0"}
    with gunicorn(env, tmp_path / "server.log") as server:
        status, model = call(f"{server}/v1/model")
        assert status == 200 and model["customers_from"] == "store"
        assert model["customers"] <= PROFILE_SAMPLE  # a sample, never the 200k
        for i in rng.integers(0, PROFILES, 30):
            status, body = call(f"{server}/v1/decisions",
                                {"customer_id": f"P{i:07d}", "channel": "web"})
            assert status == 200, body
            assert body["customer_known"] is True
            assert len(body["offers"]) + len(body["suppressed"]) == 12
