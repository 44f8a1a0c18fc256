"""The registered policy: one pyfunc with everything, reachable by alias, with its evidence."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import mlflow
import pytest

from decisioning.decision import DecisionContext
from features import io
from training import registry
from training.package import DECISION_COLUMNS

pytestmark = pytest.mark.slow  # the real trained registry


@pytest.fixture(scope="module")
def client(trained):
    return registry.configure(trained.tracking_uri)


def test_champion_alias_points_at_the_trained_version_with_plots_and_metrics(client, trained):
    ref = registry.get_alias(client, trained.model_name)
    assert ref is not None and ref.version == trained.version
    artifacts = {a.path for a in client.list_artifacts(ref.run_id, "evaluation")}
    assert {"evaluation/qini_curves.png", "evaluation/uplift_by_decile.png",
            "evaluation/features.json", "evaluation/policy_values.csv"} <= artifacts
    run = client.get_run(ref.run_id)
    assert "qini_collab_sneaker_early_access" in run.data.metrics
    assert "response_auc" in run.data.metrics
    assert any(key.startswith("data.exposures.parquet.sha256") for key in run.data.tags)


def test_generic_pyfunc_predict_runs_the_same_decision_code(trained, loaded):
    model = mlflow.pyfunc.load_model(registry.model_uri(trained.model_name))
    assert model.metadata.signature is not None
    customers = io.read_customers(trained.data_dir / io.CUSTOMERS).head(20)
    rows = model.predict(customers, params={"channel": "web", "limit": 2})
    assert list(rows.columns) == DECISION_COLUMNS
    assert not rows["stock_checked"].any()  # no inventory given: it says so on every row
    context = DecisionContext("web", datetime.now(UTC), limit=2)
    for customer_id, group in rows.groupby("customer_id"):
        decision = loaded.policy.decide_row(loaded.customers, loaded.customers.row(customer_id),
                                            context)
        expected = [o.offer_id for o in decision.offers]
        got = group.sort_values("rank")["offer_id"].dropna().tolist()  # null = nothing to send
        assert got == expected


def test_loading_a_policy_leaves_the_import_path_alone(trained):
    before = list(sys.path)
    policy = registry.load_policy(registry.model_uri(trained.model_name))
    assert sys.path == before  # MLflow had put the model's code copy in front
    assert len(policy.catalog.offers) > 0
    mlflow.pyfunc.load_model(registry.model_uri(trained.model_name))
    assert sys.path != before  # what load_policy protects against
    sys.path[:] = before


def test_set_alias_refuses_a_missing_version(client, trained):
    with pytest.raises(registry.RegistryError, match="no version 999"):
        registry.set_alias(client, trained.model_name, "999", "challenger")
