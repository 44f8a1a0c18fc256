"""Contact caps: offers per channel and window, and declines per offer."""

from __future__ import annotations

from dataclasses import replace

from decisioning.decision import Decision, DecisionContext
from decisioning.reasons import CONTACT_CAP, Suppression
from decisioning.snapshot import ContactHistory
from features.catalog import ContactPolicy, Offer


def decline_check(offer: Offer, caps: ContactPolicy | None, contacts: ContactHistory | None
                  ) -> Suppression | None:
    """The decline cap: an offer declined `max_declines` times in the window is not made."""
    if caps is None or contacts is None:
        return None
    declined = contacts.declines.get(offer.offer_id, 0)
    if declined < caps.max_declines:
        return None
    return Suppression(offer.offer_id, CONTACT_CAP,
                       f"declined {declined} times in the last {caps.decline_days:g} days "
                       f"(cap {caps.max_declines})",
                       {"cap": "declines", "declines": declined, "window_days": caps.decline_days,
                        "limit": caps.max_declines})


def offers_allowed(limit: int, caps: ContactPolicy | None, contacts: ContactHistory | None
                   ) -> int:
    """How many offers this decision may show: the limit, less what the window has used."""
    if caps is None or contacts is None:
        return limit
    return max(0, min(limit, caps.max_offers - contacts.offers_in_window))


def capped(offer_id: str, caps: ContactPolicy, contacts: ContactHistory,
           context: DecisionContext) -> Suppression:
    """The suppression of an offer that would have been shown but for the contact cap."""
    return Suppression(offer_id, CONTACT_CAP,
                       f"{contacts.offers_in_window} offers already made on {context.channel} "
                       f"in the last {caps.window_hours:g} h (cap {caps.max_offers})",
                       {"cap": "offers", "offers_in_window": contacts.offers_in_window,
                        "channel": context.channel, "window_hours": caps.window_hours,
                        "limit": caps.max_offers})


def enforce_cap(decision: Decision, counted: int, caps: ContactPolicy,
                context: DecisionContext) -> Decision:
    """The decision cut to what the cap allows, given `counted` offers already made in the
    window as counted when it is written (atomically with the write, state.log): the offers
    past the cap become contact_cap suppressions. Unchanged when it fits."""
    keep = max(0, caps.max_offers - counted)
    if len(decision.offers) <= keep:
        return decision
    history = ContactHistory(counted)
    kept, cut = decision.offers[:keep], decision.offers[keep:]
    return replace(decision, offers=kept,
                   suppressed=(*decision.suppressed,
                               *(capped(o.offer_id, caps, history, context) for o in cut)),
                   chosen_offer=kept[0].offer_id if kept else None)
