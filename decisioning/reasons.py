"""Reasons as data: a stable code, a sentence for people, and the details the sentence says.

The API returns all three; the staff page and any other reader render from `details` (units
left, location, floor, customer value, cap window...), never by parsing `message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Suppression reason codes: stable API values.
NOT_CONTACTABLE = "not_contactable"
NOT_ELIGIBLE = "not_eligible"
BELOW_VALUE_THRESHOLD = "below_value_threshold"
OUT_OF_STOCK = "out_of_stock"
NO_MODEL = "no_model"
NO_INCREMENTAL_VALUE = "no_incremental_value"
OUTRANKED = "outranked"
CONTACT_CAP = "contact_cap"
HOLDOUT = "holdout"

# Reason codes of a shown offer.
INCREMENTAL_VALUE = "incremental_value"
TIER_ELIGIBLE = "tier_eligible"
LAUNCH = "launch"
IN_STOCK = "in_stock"
EXPLORATION = "exploration"

# What a shown offer asks the customer to do: take it now, or join the re-stock list / pre-order.
OFFER = "offer"
WAITLIST = "waitlist"
PREORDER = "preorder"

@dataclass(frozen=True, slots=True)
class Reason:
    """Why an offer is shown: a stable code, a sentence for people, and its facts as data."""

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Suppression:
    """An offer not made: its reason code, a sentence, and the facts behind it as data."""

    offer_id: str
    reason: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)
