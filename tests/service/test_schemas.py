"""Request schemas: what a client is told about a bad field."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from service.schemas import (
    BatchDecisionRequest,
    CustomerEventIn,
    DecisionRequest,
    InventoryRowIn,
    OutcomeRequest,
)


@pytest.mark.parametrize(("model", "body", "message"), [
    (DecisionRequest, {"customer_id": "", "channel": "web"}, "at least 1 character"),
    (DecisionRequest, {"customer_id": "C" * 129, "channel": "web"}, "at most 128 characters"),
    (DecisionRequest, {"session_id": "s" * 129, "channel": "web"}, "at most 128 characters"),
    (DecisionRequest, {"customer_id": "C1", "context": {"store_id": "s" * 65}},
     "at most 64 characters"),
    (BatchDecisionRequest, {"customer_ids": ["C1", "C" * 129]}, "at most 128 characters"),
    (InventoryRowIn, {"sku": "S", "size": "4" * 33, "on_hand": 1}, "at most 32 characters"),
    (OutcomeRequest, {"decision_id": "d" * 65, "event": "purchased"}, "at most 64 characters"),
    (CustomerEventIn, {"event_id": "", "customer_id": "C1", "type": "consent",
                       "contactable": False, "occurred_at": "2026-03-01T10:05:00Z"},
     "at least 1 character"),
])
def test_a_string_too_short_or_long_is_named_in_characters(model, body, message):
    """It was pydantic's generic "Value should have at most 128 items after validation"."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert message in str(caught.value) and "items" not in str(caught.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("model", "body", "field"), [
    (DecisionRequest, {"session_id": "s1", "channel": "web", "context": {}}, "cart_value"),
    (OutcomeRequest, {"decision_id": "d1", "event": "purchased"}, "revenue"),
    (CustomerEventIn, {"event_id": "e1", "customer_id": "C1", "type": "purchase",
                       "occurred_at": "2026-03-01T10:05:00Z"}, "amount"),
])
def test_nan_and_infinities_are_named_not_numbers(model, body, field, bad):
    """NaN fails every comparison: the bounds alone called it "<= 10000000"."""
    body = body | ({"context": {field: bad}} if field == "cart_value" else {field: bad})
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert [e["msg"] for e in caught.value.errors()] == ["Input should be a finite number"]
