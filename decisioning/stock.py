"""Stock matching: is the customer's size and colour on hand where the decision is made?"""

from __future__ import annotations

from decisioning.decision import CustomerFacts, DecisionContext
from decisioning.reasons import IN_STOCK, OUT_OF_STOCK, PREORDER, WAITLIST, Reason, Suppression
from decisioning.snapshot import StockLookup
from features.catalog import Offer


def _variant(size: str | None, color: str | None, sku: str) -> str:
    parts = [f"size {size}" if size else "", color or ""]
    return " ".join(p for p in parts if p) or sku


def stock_check(offer: Offer, customer: CustomerFacts, context: DecisionContext,
                stock: StockLookup | None) -> tuple[Suppression | None, Reason | None]:
    """Out-of-stock suppression, or a reason naming the stock that backs the offer.

    Details: sku, size and colour (each None when the SKU's stock there does not come in
    sizes, colours, e.g. an unsized SKU, or when none is in stock at all: the words then name
    the SKU rather than a variant it does not have), location (a store id, None = online),
    units; a sell-out in a store also gives online_units.
    """
    if offer.sku is None or stock is None:
        return None, None
    size, color = customer.preferred_size, customer.preferred_color
    in_store = context.channel == "store" and context.store_id is not None
    where = context.store_id if in_store else None
    units = stock.units(offer.sku, size, color, where)
    # name the customer's size (colour) only when the SKU's stock there comes in sizes
    # (colours): an unsized box is not "for size 43", and with nothing in stock at all the
    # SKU itself is sold out
    sized, coloured = stock.variants(offer.sku, where)
    named_size, named_color = (size if sized else None), (color if coloured else None)
    variant = _variant(named_size, named_color, offer.sku)
    details: dict = {"sku": offer.sku, "size": named_size, "color": named_color, "location": where,
                     "units": units}
    if units > 0:
        place = f"in {context.store_id}" if in_store else "online"
        return None, Reason(IN_STOCK, f"{units} left {place} for {variant}", details)
    if in_store:
        online = stock.units(offer.sku, size, color, None)
        details["online_units"] = online
        extra = f"; {online} online" if online else "; none online either"
        message = f"{variant} sold out in {context.store_id}{extra}"
    else:
        message = f"{variant} sold out online"
    return Suppression(offer.offer_id, OUT_OF_STOCK, message, details), None


def fallback_reason(offer: Offer, sold_out: Suppression) -> Reason:
    """The reason a sold-out offer is replaced by its re-stock waiting list or pre-order."""
    if offer.fallback == WAITLIST:
        return Reason(WAITLIST, f"{sold_out.message}: join the re-stock waiting list",
                      sold_out.details)
    return Reason(PREORDER, f"{sold_out.message}: offer a pre-order", sold_out.details)
