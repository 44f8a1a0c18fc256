"""The request's context reaches the model and the decision log: a context column the request
omits is null (the documented default, never a 500), and the log keeps the values each decision
saw, so `nba export-training` writes them back as the contract's context columns."""

from __future__ import annotations

import pyarrow as pa

from features import io
from features.schema import feature_columns
from training.export import export_training

CUSTOMER = "C0000001"


def decide(client, context: dict | None = None, **who) -> dict:
    body = {"channel": "web", **(who or {"customer_id": CUSTOMER})}
    if context is not None:
        body["context"] = context
    response = client.post("/v1/decisions", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_log_keeps_the_context_each_decision_saw(client, state, loaded) -> None:
    assert loaded.policy.has_context  # the demo's exposures record device, page, cart value
    given = decide(client, {"device": "mobile", "page": "footwear", "cart_value": 30.0})
    omitted = decide(client)
    anonymous = decide(client, {"page": "beauty"}, session_id="s-42")

    seen = {d["decision_id"]: state.log.get(d["decision_id"]).features
            for d in (given, omitted, anonymous)}
    assert {k: seen[given["decision_id"]][k] for k in ("device", "page", "cart_value")} == {
        "device": "mobile", "page": "footwear", "cart_value": 30.0}
    assert {k: seen[omitted["decision_id"]][k] for k in ("device", "page", "cart_value")} == {
        "device": None, "page": None, "cart_value": None}
    assert seen[anonymous["decision_id"]]["page"] == "beauty"
    # the customer's own features are logged beside the context, as before
    assert seen[given["decision_id"]]["recency_days"] == seen[omitted["decision_id"]][
        "recency_days"]


def test_export_training_writes_the_context_columns_as_the_contract_types_them(
        client, state, loaded) -> None:
    decide(client, {"cart_value": 12.5})
    decide(client)  # no device or page in any request: still string columns
    frame = export_training(state.log.decisions_frame(), state.log.outcomes_frame(),
                            loaded.policy.catalog.control_label)
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    kinds = dict(feature_columns(schema, io.EXPOSURES))
    assert kinds["device"] == kinds["page"] == "categorical"
    assert kinds["cart_value"] == "numeric"
    assert sorted(frame["cart_value"].dropna().tolist()) == [12.5]
