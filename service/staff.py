"""The store-staff tablet page and the staff-only lookups behind it.

`GET /staff` is a public, server-rendered page: it holds no customer data itself. Its vanilla
JavaScript fetches everything from the APIs below and from the storefront's own
`POST /v1/decisions` / `POST /v1/outcomes`, all of which need a staff key (the page asks once and
keeps it in sessionStorage; not at all in development mode).

Routes: `GET /v1/customers/<ref>` (by customer_id, else by loyalty card number: any stored
profile's card with NBA_CUSTOMERS_FROM=store, customers.parquet's `loyalty_card` column in file
mode), `GET /v1/stock?sku=&store_id=` (units per
size/colour in a store and online) and `POST /v1/staff/explain` (offer names and one plain
sentence per offer, built by the pure `plain_reasons`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from flask import Blueprint, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from decisioning.decision import DecisionSettings
from decisioning.experiment import in_holdout
from decisioning.reasons import (
    IN_STOCK,
    INCREMENTAL_VALUE,
    LAUNCH,
    OFFER,
    PREORDER,
    TIER_ELIGIBLE,
    WAITLIST,
)
from features import io
from features.catalog import Offer
from features.customers import CustomerTable
from features.errors import ContractError
from service.api import parse_json
from service.auth import require
from service.model_store import LoadedModel, ModelStore, UnknownCustomer
from service.schemas import (
    MAX_LIMIT,
    CustomerEventIn,
    InvalidRequest,
    OfferOut,
    Text32,
    Text64,
    Text128,
    printable,
)
from state import StateStoreError, StockRow

log = logging.getLogger(__name__)
bp = Blueprint("staff", __name__)

#: the optional customers.parquet column the page can look customers up by
LOYALTY_CARD = "loyalty_card"
#: value bands: (lowest percentile of the band, its label), highest band first
VALUE_BANDS: tuple[tuple[float, str], ...] = (
    (0.90, "top 10%"), (0.75, "upper"), (0.25, "middle"), (0.0, "lower"))


# ---------------------------------------------------------------- pure helpers


def value_band(percentile: float) -> str:
    """The band of a customer-value percentile in [0, 1]: top 10%, upper, middle or lower."""
    return next(label for low, label in VALUE_BANDS if percentile >= low)


def normalize_card(text: str) -> str:
    """A loyalty card number as printed or typed: spaces and dashes dropped, upper case."""
    return re.sub(r"[\s-]+", "", text).upper()


def stock_json(rows: Iterable[StockRow], sku: str, store_id: str | None) -> dict:
    """Units of `sku` per size/colour in `store_id` (None: no store chosen) and online."""
    variants: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for row in rows:
        if row.sku != sku or (row.location is not None and row.location != store_id):
            continue
        variant = variants.setdefault((row.size, row.color), {
            "size": row.size, "color": row.color,
            "store": 0 if store_id is not None else None, "online": 0})
        variant["online" if row.location is None else "store"] += row.on_hand

    def order(key: tuple[str | None, str | None]) -> tuple:
        size, color = key
        numeric = size is not None and size.replace(".", "", 1).isdigit()
        return (size is not None, not numeric, float(size) if size and numeric else 0.0,
                size or "", color or "")

    listed = [variants[key] for key in sorted(variants, key=order)]
    return {"sku": sku, "store_id": store_id, "variants": listed,
            "totals": {"store": None if store_id is None else sum(v["store"] for v in listed),
                       "online": sum(v["online"] for v in listed)}}


#: how a card ends for each action: what the staff member should offer
_ACTIONS = {WAITLIST: "offer the re-stock waiting list", PREORDER: "offer pre-order"}


def _where(store: str | None, store_id: str | None) -> str:
    if store is None:
        return "online"
    return "in this store" if store == store_id else f"in {store}"


def _variant(details: Mapping[str, Any]) -> str:
    """The customer's size and colour in words, or '' when the decision named none."""
    size, color = details.get("size"), details.get("color")
    return " ".join(p for p in (f"size {size}" if size else "", color or "") if p)


def _in_stock_phrase(details: Mapping[str, Any], store_id: str | None, unit: str) -> str:
    variant = _variant(details)
    where = _where(details.get("location"), store_id)
    return f"{details['units']} {unit} {where}" + (f" in {variant}" if variant else "")


def _sold_out_phrase(details: Mapping[str, Any], store_id: str | None, unit: str) -> str:
    if details.get("launch"):
        return f"launch sold out, all {details.get('supply')} held or sold"
    variant = _variant(details)
    subject = f"{variant} sold out" if variant else "sold out"
    if details.get("location") is None:
        return f"{subject} online"
    where = _where(details["location"], store_id)
    online = details.get("online_units") or 0
    if not online:
        return f"{subject} {where} and online"
    return f"{subject} {where}, {online} {unit} online"


def _launch_phrase(details: Mapping[str, Any]) -> str:
    remaining, supply = details.get("remaining"), details.get("supply")
    pieces = [f"limited launch, {remaining} of {supply} left" if remaining is not None
              else f"limited launch of {supply}"]
    if details.get("floor") is not None:
        pieces.append("qualifies for a launch unit")
    if details.get("early_access"):
        pieces.append(f"{str(details['early_access']).capitalize()} early access")
    return ", ".join(pieces)


#: phrase builders by reason code, reading only the reason's details
_PHRASES: dict[str, Callable[[Mapping[str, Any], str | None, str], str]] = {
    LAUNCH: lambda details, store_id, unit: _launch_phrase(details),
    IN_STOCK: _in_stock_phrase,
    WAITLIST: _sold_out_phrase,
    PREORDER: _sold_out_phrase,
}


def _uplift_phrase(uplift: float) -> str:
    points = uplift * 100
    # whole points from 1 up, tenths below; :g drops a trailing .0 (0.96 rounds to "1")
    shown = f"{round(points, 0 if points >= 1 else 1):g}"
    return f"makes buying about {shown} {'point' if shown == '1' else 'points'} more likely"


def plain_reasons(offer_json: Mapping[str, Any], customer: Mapping[str, Any], *,
                  store_id: str | None = None, offer: Offer | None = None) -> str:
    """One sentence a store assistant can say out loud, from a decision's offer document.

    `offer_json` is one element of a decision's `offers`; `customer` the customer lookup
    document (its `loyalty_tier`); `store_id` the store the page stands in ("in this store");
    `offer` the catalog entry (its category: footwear counts pairs). Built from each reason's
    `details`, never by reading its message; a reason the function does not know (or one
    without details) is passed through as its message. Example:
    "Gold member; size 42 sold out in this store, 3 pairs online — offer pre-order".
    """
    unit = "pairs" if offer is not None and offer.category == "footwear" else "units"
    tier = customer.get("loyalty_tier")
    parts = [f"{str(tier).capitalize()} member"] if tier else []
    for reason in offer_json.get("reasons", ()):
        code, message = reason.get("code"), str(reason.get("message", ""))
        details = reason.get("details") or {}
        if code == INCREMENTAL_VALUE:
            continue  # said once, in words, at the end
        if code == TIER_ELIGIBLE:
            if not tier:
                said = f"{details['tier']} member" if details.get("tier") else message
                parts.insert(0, f"{said[:1].upper()}{said[1:]}")
        elif code in _PHRASES and details:
            parts.append(_PHRASES[code](details, store_id, unit))
        elif message:
            parts.append(message)
    action = offer_json.get("action", OFFER)
    uplift = float(offer_json.get("uplift") or 0.0)
    ending = _ACTIONS.get(action) or (_uplift_phrase(uplift) if uplift > 0 else "")
    sentence = "; ".join(p for p in parts if p)
    if sentence and ending:
        sentence = f"{sentence} — {ending}"
    sentence = sentence or ending or "Recommended for this customer"
    return sentence[:1].upper() + sentence[1:]


# ---------------------------------------------------------------- the per-model lookup index


@dataclass(frozen=True)
class CustomerIndex:
    """What lookups need beyond the CustomerTable, built once per loaded model."""

    #: sorted customer values: a customer's percentile is one binary search
    sorted_values: np.ndarray
    #: normalized loyalty card number -> row (empty when customers.parquet has no such column)
    cards: Mapping[str, int]
    #: row -> card number as stored
    card_of: Mapping[int, str]
    has_cards: bool

    def percentile(self, value: float) -> float:
        """Share of customers valued at or below `value`."""
        n = len(self.sorted_values)
        return 0.0 if n == 0 else float(np.searchsorted(self.sorted_values, value,
                                                         side="right")) / n


def _card_text(value: object) -> str | None:
    if value is None or pd.isna(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def build_index(model: LoadedModel, data_dir: Path) -> CustomerIndex:
    """Value distribution and loyalty-card index of the model's customers.

    The card column is optional in the data contract and the CustomerTable does not keep it,
    so it is read here from the customers.parquet the model was loaded from. A card shared by
    two customers is left out (a lookup must never open the wrong customer).
    """
    table = model.customers
    cards: dict[str, int] = {}
    card_of: dict[int, str] = {}
    has_cards = False
    if model.from_store:  # `table` is a sample: percentiles from it, no card index (yet)
        return CustomerIndex(np.sort(table.value), cards, card_of, has_cards)
    try:
        frame = io.read_customers(data_dir / io.CUSTOMERS)
    except ContractError as exc:
        log.warning("no loyalty-card lookup: %s", exc)
        frame = None
    if frame is not None and LOYALTY_CARD in frame:
        has_cards = True
        shared: set[str] = set()
        for customer_id, raw in zip(frame["customer_id"].astype(str), frame[LOYALTY_CARD],
                                    strict=True):
            card, row = _card_text(raw), table.row(customer_id)
            if card is None or row is None:
                continue
            key = normalize_card(card)
            if key in cards and cards[key] != row:
                shared.add(key)
            cards[key] = row
            card_of[row] = card
        for key in shared:
            del cards[key]
        if shared:
            log.warning("%d loyalty card numbers belong to several customers; they are not "
                        "searchable", len(shared))
    return CustomerIndex(np.sort(table.value), cards, card_of, has_cards)


class _IndexCache:
    """One CustomerIndex for the model serving now; rebuilt when another model is swapped in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._index: CustomerIndex | None = None

    def get(self, model: LoadedModel, data_dir: Path) -> CustomerIndex:
        """The index of `model` (built on first use, outside any request's hot path after)."""
        with self._lock:
            if self._model is not model or self._index is None:
                self._index = build_index(model, data_dir)
                self._model = model
            return self._index


def _model() -> LoadedModel:
    store: ModelStore = current_app.extensions["nba.model_store"]
    return store.current()


def _decision_settings() -> DecisionSettings:
    return current_app.extensions["nba.settings"].decision_settings()


def _index(model: LoadedModel) -> CustomerIndex:
    cache: _IndexCache = current_app.extensions.setdefault("nba.staff_index", _IndexCache())
    return cache.get(model, current_app.extensions["nba.settings"].data_dir)


class ProfileReader(Protocol):
    """The stored profiles as the lookups read them (state.profiles.Profiles)."""

    def get(self, customer_id: str) -> dict[str, Any] | None: ...

    def by_card(self, card: str) -> list[tuple[str, dict[str, Any]]]: ...


@dataclass(frozen=True)
class Found:
    """A looked-up customer: their feature row, how they matched, their card as stored."""

    table: CustomerTable
    row: int
    #: "customer_id" or "loyalty_card"
    matched_by: str
    loyalty_card: str | None


def customer_json(found: Found, index: CustomerIndex, settings: DecisionSettings) -> dict:
    """The lookup document of a found customer: who they are to an assistant."""
    table, row = found.table, found.row
    value = float(table.value[row])
    percentile = index.percentile(value)
    return {
        "customer_id": table.ids[row],
        "loyalty_card": found.loyalty_card,
        "loyalty_tier": table.loyalty_tier[row],
        "value": round(value, 2),
        "value_band": value_band(percentile),
        "value_percentile": round(percentile, 4),
        "preferred_size": table.preferred_size[row],
        "preferred_color": table.preferred_color[row],
        "contactable": bool(table.contactable[row]),
        "holdout": in_holdout(table.ids[row], settings.holdout_share, settings.salt),
    }


def find_customer(model: LoadedModel, index: CustomerIndex, ref: str,
                  profiles: ProfileReader | None = None) -> Found:
    """The customer whose id, or else whose loyalty card number, is `ref`.

    `profiles`: the stored profiles (customers kept in the state store), where a card is any
    profile's `loyalty_card` (loaded from customers.parquet or registered on this page). A
    card two customers share matches nobody: a lookup must never open the wrong customer.
    UnknownCustomer when nothing matches.
    """
    ref = ref.strip()
    if model.from_store and profiles is not None and ref:
        found = profiles.get(ref)
        if found is not None:
            return Found(*model.customer(ref, found), "customer_id", _card_text(
                found.get(LOYALTY_CARD)))
        card = normalize_card(ref)
        matches = profiles.by_card(card) if card else []
        if len(matches) == 1:
            customer_id, found = matches[0]
            return Found(*model.customer(customer_id, found), LOYALTY_CARD,
                         _card_text(found.get(LOYALTY_CARD)))
        if matches:
            log.warning("loyalty card lookup: the card is shared by several customers")
    row = None if model.from_store else model.customers.row(ref)
    if row is not None:
        return Found(model.customers, row, "customer_id", index.card_of.get(row))
    row = index.cards.get(normalize_card(ref)) if ref else None
    if row is not None:
        return Found(model.customers, row, LOYALTY_CARD, index.card_of.get(row))
    what = "customer id or loyalty card" if card_lookup(model, index) else "customer id"
    raise UnknownCustomer(f"no customer with {what} '{ref}'", {"customer_ref": ref})


def card_lookup(model: LoadedModel, index: CustomerIndex) -> bool:
    """Whether customers can be looked up by card: any stored profile's card (store mode), or
    customers.parquet's `loyalty_card` column (file mode)."""
    return model.from_store or index.has_cards


def _stored_profiles(model: LoadedModel) -> ProfileReader | None:
    """This worker's stored profiles (the staff page's one-customer lookups); None when the
    model reads customers from customers.parquet."""
    if not model.from_store:
        return None
    profiles: ProfileReader = current_app.extensions["nba.state"].get().store.profiles
    return profiles


# ---------------------------------------------------------------- routes


def _store_ids() -> list[str]:
    """Stores that hold stock now, for the page's store picker (empty if the store is down)."""
    try:
        rows = current_app.extensions["nba.state"].get().stock().rows
    except StateStoreError as exc:
        log.warning("staff page: no store list (%s)", exc)
        return []
    return sorted({row.location for row in rows if row.location is not None})


#: the page loads only its own script, style and data (its config is a JSON data block, not
#: a script), may not be framed (clickjacking) and its files are never sniffed as another type
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@bp.get("/staff")
def staff_page() -> ResponseReturnValue:
    """The store-staff tablet page (public HTML; its data needs a staff key)."""
    selected = (request.args.get("store_id") or "").strip()[:64] or None
    stores = _store_ids()
    if selected is not None and selected not in stores:
        stores.append(selected)
    store: ModelStore = current_app.extensions["nba.model_store"]
    lookup_cards = False
    if store.ready:
        model = store.current()
        lookup_cards = card_lookup(model, _index(model))
    page = render_template("staff.html", dev_mode=current_app.extensions["nba.keys"].dev_mode,
                           stores=stores, selected_store=selected or (stores[0] if stores
                                                                      else None),
                           card_lookup=lookup_cards, max_offers=MAX_LIMIT)
    return page, 200, PAGE_HEADERS


@bp.get("/v1/customers/<path:customer_ref>")
@require("staff")
def get_customer(customer_ref: str) -> ResponseReturnValue:
    """One customer by customer_id or loyalty card: tier, value band, preferences, holdout.

    `path:` since an id may hold a '/' (the page sends it as %2F, which the server decodes):
    otherwise no route matched, and the page said "The requested URL was not found".
    """
    try:
        printable(customer_ref)
    except ValueError as exc:
        raise InvalidRequest(f"invalid customer id or card: {exc}",
                             {"field": "customer_ref"}) from None
    model = _model()
    index = _index(model)
    found = find_customer(model, index, customer_ref, _stored_profiles(model))
    return jsonify(customer_json(found, index, _decision_settings())
                   | {"matched_by": found.matched_by})


@bp.get("/v1/stock")
@require("staff")
def get_stock() -> ResponseReturnValue:
    """Units of one SKU per size/colour in a store (`store_id`, optional) and online."""
    sku = (request.args.get("sku") or "").strip()
    if not sku:
        raise InvalidRequest("query parameter 'sku' is required", {"field": "sku"})
    store_id = (request.args.get("store_id") or "").strip() or None
    snapshot = current_app.extensions["nba.state"].get().stock()
    return jsonify(stock_json(snapshot.rows, sku, store_id)
                   | {"inventory_version": snapshot.version})


class RegisterRequest(BaseModel):
    """POST /v1/staff/register body: a walk-in's new loyalty card, and what they told."""

    model_config = ConfigDict(extra="forbid")

    card: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z \-]+$")
    preferred_size: Text32 | None = None
    preferred_color: Text64 | None = None
    contactable: bool | None = None


@bp.post("/v1/staff/register")
@require("staff")
def register_card() -> ResponseReturnValue:
    """Register a walk-in's loyalty card: creates their profile by a sign-up event (the events
    path, `features.events`); the card number, normalized, is their customer id, so the next
    lookup by the card finds them and the next decision knows them."""
    from service.events import CardTaken, EventsNotServed, to_profile_event, update

    req = parse_json(RegisterRequest, "card registration")
    if not _model().from_store:
        raise EventsNotServed(
            "registering a card creates a stored profile; this service reads customers from "
            "customers.parquet (NBA_CUSTOMERS_FROM=file)", {"customers_from": "file"})
    customer_id = normalize_card(req.card)
    if not customer_id:
        raise InvalidRequest("card: no digits or letters", {"field": "card"})
    store = current_app.extensions["nba.state"].get().store
    if store.profiles.get(customer_id) is not None:
        raise CardTaken(f"card '{customer_id}' is already registered", {"card": customer_id})
    now = datetime.now(UTC)
    event = CustomerEventIn(event_id=f"register:{customer_id}", customer_id=customer_id,
                            type="sign_up", occurred_at=now, channel="store",
                            loyalty_card=req.card.strip(), preferred_size=req.preferred_size,
                            preferred_color=req.preferred_color, contactable=req.contactable)
    [status] = store.profiles.apply([to_profile_event(event)], update, now=now)
    log.info("staff page: card registered (%s)", status)
    return jsonify({"customer_id": customer_id, "loyalty_card": req.card.strip(),
                    "status": "registered"}), 201


class ExplainRequest(BaseModel):
    """POST /v1/staff/explain body: a decision's offers, for the customer they were made to."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Text128
    store_id: Text64 | None = None
    offers: list[OfferOut] = Field(max_length=MAX_LIMIT)


class _Details(BaseModel):
    """The facts of a reason that `plain_reasons` reads, typed as the decision gives them."""

    model_config = ConfigDict(extra="allow")


class _VariantDetails(_Details):
    size: str | int | None = None
    color: str | None = None
    location: str | None = None


class _InStockDetails(_VariantDetails):
    units: int


class _SoldOutDetails(_VariantDetails):
    launch: bool | None = None
    supply: int | None = None
    online_units: int | None = None


class _LaunchDetails(_Details):
    supply: int | None = None
    remaining: int | None = None
    floor: float | None = None
    early_access: str | None = None


class _TierDetails(_Details):
    tier: str | None = None


#: the details schema of each reason code `plain_reasons` renders from its details
_DETAILS: dict[str, type[_Details]] = {
    IN_STOCK: _InStockDetails, WAITLIST: _SoldOutDetails, PREORDER: _SoldOutDetails,
    LAUNCH: _LaunchDetails, TIER_ELIGIBLE: _TierDetails,
}


def _check_details(offers: list[OfferOut]) -> None:
    """InvalidRequest naming every reason whose details no decision would give its code.

    Checked here, before rendering: an error while rendering is then the server's (a 500,
    logged), not blamed on the client.
    """
    problems = []
    for i, offer in enumerate(offers):
        for j, reason in enumerate(offer.reasons):
            schema = _DETAILS.get(reason.code)
            if schema is None or not reason.details:  # rendered from its message
                continue
            try:
                schema.model_validate(reason.details)
            except ValidationError as exc:
                problems += [{"field": ".".join(str(p) for p in
                                                (f"offers.{i}.reasons.{j}.details", *e["loc"])),
                              "problem": e["msg"]}
                             for e in exc.errors(include_url=False, include_context=False,
                                                 include_input=False)]
    if problems:
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:10])
        raise InvalidRequest(f"invalid explain request: details do not match their codes as a "
                             f"decision gives them: {summary}", problems)


@bp.post("/v1/staff/explain")
@require("staff")
def explain() -> ResponseReturnValue:
    """Offer names, SKUs and one plain-language sentence per offer of a decision."""
    req = parse_json(ExplainRequest, "explain request")
    _check_details(req.offers)
    model = _model()
    index = _index(model)
    try:
        found = find_customer(model, index, req.customer_id, _stored_profiles(model))
        customer = customer_json(found, index, _decision_settings())
    except UnknownCustomer:  # a walk-in or new customer: decided without a profile
        customer = {"customer_id": req.customer_id, "loyalty_tier": None}
    catalog = model.policy.catalog
    explained = []
    for offer_out in req.offers:
        offer = catalog.get(offer_out.offer_id)
        sentence = plain_reasons(offer_out.model_dump(), customer, store_id=req.store_id,
                                 offer=offer)
        explained.append({
            "offer_id": offer_out.offer_id,
            "name": offer.name if offer is not None else offer_out.offer_id,
            "category": offer.category if offer is not None else None,
            "sku": offer.sku if offer is not None else None,
            "action": offer_out.action,
            "sentence": sentence,
        })
    return jsonify({"customer_id": customer["customer_id"], "offers": explained})
