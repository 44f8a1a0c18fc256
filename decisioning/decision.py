"""The shapes of one decision: who for, where and when, the model's scores, and the result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from decisioning.reasons import OFFER, Reason, Suppression

if TYPE_CHECKING:  # the CLI's settings import this module: keep its start free of NumPy
    import numpy as np


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """What the rules need to know about one customer (besides the model's scores)."""

    customer_id: str
    contactable: bool = True
    loyalty_tier: str | None = None
    preferred_size: str | None = None
    preferred_color: str | None = None
    value: float = 0.0


@dataclass(frozen=True)
class DecisionContext:
    """Where and when the decision is made (the clock is `now`).

    store_id, device, page and cart_value are the request's context: model features when the
    training data had them (features.context), None when the request does not say.
    """

    channel: str
    now: datetime
    limit: int = 3
    store_id: str | None = None
    device: str | None = None
    page: str | None = None
    cart_value: float | None = None


#: The service's defaults (NBA_HOLDOUT_SHARE, NBA_EXPERIMENT_SALT): every path starts from them.
DEFAULT_HOLDOUT_SHARE = 0.05
DEFAULT_SALT = "nba-holdout-1"


@dataclass(frozen=True)
class DecisionSettings:
    """The experiment's settings: who is held out (a salted hash) and how often to explore.

    The same settings on every path (service, batch, CLI, pyfunc) give the same holdout group;
    the defaults are the service's, so a caller that forgets them still holds the group out.
    """

    holdout_share: float = DEFAULT_HOLDOUT_SHARE
    salt: str = DEFAULT_SALT
    exploration: float = 0.0


@dataclass(frozen=True)
class OfferScores:
    """Model outputs for one customer, aligned with catalog.offers (NaN = no estimate)."""

    uplift: np.ndarray
    p_treated: np.ndarray
    p_control: float


@dataclass(frozen=True, slots=True)
class RankedOffer:
    """An offer worth making, with its expected incremental value."""

    offer_id: str
    rank: int
    expected_incremental_value: float
    uplift: float
    conversion_probability: float
    reasons: tuple[Reason, ...]
    action: str = OFFER


@dataclass(frozen=True)
class Decision:
    """The ranked offers and every suppression, for one customer, and how it was served.

    `holdout`: the customer is in the global holdout (no offer; `chosen_offer` is the one they
    would have had). `propensity`: P(what was served | customer) under the logging policy.
    `stock_checked`: False when decided without an inventory snapshot.
    """

    offers: tuple[RankedOffer, ...]
    suppressed: tuple[Suppression, ...]
    holdout: bool = False
    explored: bool = False
    propensity: float = 1.0
    chosen_offer: str | None = None
    stock_checked: bool = True
