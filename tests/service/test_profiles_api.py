"""Decisions from customer profiles kept in the state store (NBA_CUSTOMERS_FROM=store), on
SQLite and PostgreSQL: the same decisions as the in-memory table, and a changed profile is
seen by the very next decision."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask import Flask

from features import io
from features.customers import profile_documents
from service import create_app
from service.model_store import LoadedModel, ModelNotReady, ModelStore, load_from_registry
from service.settings import ServiceSettings
from state import StateStore, open_store
from state.profiles import encode
from state.rows import stock_rows
from tests.conftest import ADMIN_TOKEN, Trained

NOW = datetime.now(UTC)


@dataclass
class Served:
    """An app deciding from the store, and the store under it."""

    app: Flask
    store: StateStore
    model: LoadedModel

    def decide(self, customer_id: str) -> tuple[int, dict]:
        client = self.app.test_client()
        response = client.post("/v1/decisions", json={"customer_id": customer_id, "channel": "web"},
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        return response.status_code, response.get_json()


def _settings(trained: Trained, url: str, source: str) -> ServiceSettings:
    return ServiceSettings(tracking_uri=trained.tracking_uri, data_dir=trained.data_dir,
                           state_url=url, customers_from=source, admin_token=ADMIN_TOKEN,
                           holdout_share=0.0, exploration=0.0, rate_limit=0.0)


@pytest.fixture
def served(trained: Trained, store_url: str) -> Iterator[Served]:
    """The champion deciding from profiles loaded into a fresh store of each backend."""
    store = open_store(store_url)
    store.replace_inventory(stock_rows(io.read_inventory(trained.data_dir / io.INVENTORY)),
                            now=NOW)
    store.profiles.replace(profile_documents(io.read_customers(trained.data_dir
                                                               / io.CUSTOMERS)), now=NOW)
    settings = _settings(trained, store_url, "store")
    model = load_from_registry(settings)
    models = ModelStore(lambda: model)
    models.try_load()
    yield Served(create_app(settings, store=models, state=store), store, model)
    store.close()


def test_the_store_decides_as_the_in_memory_table_did(served: Served, client) -> None:
    ids = [cid for cid, _ in served.store.profiles.sample(40)]
    assert served.model.from_store

    for customer_id in ids:
        status, body = served.decide(customer_id)
        expected = client.post("/v1/decisions", json={"customer_id": customer_id,
                                                      "channel": "web"}).get_json()
        assert status == 200, body
        assert ([(o["offer_id"], o["uplift"]) for o in body["offers"]]
                == [(o["offer_id"], o["uplift"]) for o in expected["offers"]]), customer_id
        assert body["suppressed"] == expected["suppressed"]


def test_a_changed_profile_reaches_the_very_next_decision(served: Served) -> None:
    customer_id, profile = next((cid, p) for cid, p in served.store.profiles.sample(200)
                                if p.get("contactable") is not False)
    status, before = served.decide(customer_id)
    assert status == 200 and before["offers"]

    served.store.profiles.replace([[(customer_id, encode({**profile, "contactable": False}))]],
                                  now=NOW)
    status, after = served.decide(customer_id)

    assert status == 200
    assert [o for o in after["offers"] if o["action"] == "offer"] == []
    assert {s["reason"] for s in after["suppressed"]} >= {"not_contactable"}


def test_a_customer_without_a_profile_is_a_404(served: Served) -> None:
    status, body = served.decide("nobody-here")
    assert status == 404 and body["error"]["code"] == "unknown_customer"


def test_an_empty_store_says_how_to_fill_it(trained: Trained, store_url: str) -> None:
    with pytest.raises(ModelNotReady, match="nba customers load"):
        load_from_registry(_settings(trained, store_url, "store"))


def test_the_staff_lookup_reads_the_stored_profile(served: Served) -> None:
    customer_id, profile = served.store.profiles.sample(1)[0]
    client = served.app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    found = client.get(f"/v1/customers/{customer_id}", headers=auth)
    missing = client.get("/v1/customers/nobody-here", headers=auth)

    assert found.status_code == 200
    assert found.get_json()["customer_id"] == customer_id
    assert found.get_json()["loyalty_tier"] == profile.get("loyalty_tier")
    assert missing.status_code == 404
