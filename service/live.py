"""The state store as one worker sees it: live stock, launch status, contact caps, holds.

Everything that must hold across gunicorn workers and hosts (stock, launch reservations,
contacts and declines) lives in the state store; this module reads it into the plain
`StateSnapshot` of the decision core (`decisioning.core.decide`) and takes the launch units a
decision shows. Stock is cached per worker and re-read whenever the store's
inventory version moves, so the next decision after `PUT /v1/inventory` sees the change. With
customers kept in the store (NBA_CUSTOMERS_FROM=store), the customer's profile is read in the
same statement; a customer without one is decided from the offers for new customers.
"""

from __future__ import annotations

import math
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context

from decisioning.caps import enforce_cap
from decisioning.decision import Decision, DecisionContext, DecisionSettings
from decisioning.launch import ValueDistribution, launch_statuses, open_launches
from decisioning.reasons import OFFER
from decisioning.snapshot import ContactHistory, LaunchStatus, StateSnapshot
from features.catalog import Catalog
from features.customers import CustomerTable
from service.breaker import CircuitBreaker
from service.newcomers import (
    ANONYMOUS,
    BY_FIRST_VISIT,
    BY_PRIORS,
    NO_NEW_OFFERS,
    UNKNOWN_ID,
    first_visit_decision,
    new_customer_decision,
    new_customer_uplifts,
)
from state import Reservation, StateStore, StateStoreError, StockSnapshot, mask_url, open_store
from state.budget import Timeouts
from state.log import NEW_CUSTOMER_SEGMENT, CapWrite, DecisionRecord
from training.decision_log import decision_record

if TYPE_CHECKING:
    from service.model_store import LoadedModel


@dataclass(frozen=True)
class Hold:
    """A launch unit a decision took: which offer, and the reservation in the store."""

    offer_id: str
    reservation: Reservation


class LiveState:
    """One worker's view of the state store (thread-safe; one instance per process)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._stock: StockSnapshot | None = None

    def stock(self, version: int | None = None) -> StockSnapshot:
        """Live stock: the cached snapshot while the store's inventory version is unchanged."""
        version = self.store.inventory_version() if version is None else version
        snapshot = self._stock
        if snapshot is None or snapshot.version != version:
            with self._lock:
                snapshot = self._stock
                if snapshot is None or snapshot.version != version:
                    snapshot = self._stock = self.store.stock_snapshot()
        return snapshot

    def read(self, catalog: Catalog, distributions: dict[str, ValueDistribution],
             customer_id: str, channel: str, now: datetime) -> StateSnapshot:
        """Stock, launch status and contact history for one decision: one store transaction."""
        return self.read_with_profile(catalog, distributions, customer_id, channel, now,
                                      with_profile=False)[0]

    def read_with_profile(self, catalog: Catalog, distributions: dict[str, ValueDistribution],
                          customer_id: str, channel: str, now: datetime, *,
                          with_profile: bool = True
                          ) -> tuple[StateSnapshot, dict[str, Any] | None]:
        """`read`, and with `with_profile` the customer's stored profile (None: no such
        customer, or not asked) in the same statement."""
        caps = catalog.contact_policy
        state = self.store.decision_state(
            launch_ids=[o.offer_id for o in open_launches(catalog, now)],
            customer_id=customer_id, channel=channel, now=now,
            contacts_since=now - timedelta(hours=caps.window_hours) if caps else None,
            declines_since=now - timedelta(days=caps.decline_days) if caps else None,
            with_profile=with_profile)
        held = {offer_id: counts.reserved + counts.confirmed
                for offer_id, counts in state.launches.items()}
        contacts = ContactHistory(state.contacts, state.declines) if caps else None
        return StateSnapshot(self.stock(state.inventory_version),
                             launch_statuses(catalog, held, distributions, now),
                             contacts), state.profile

    def hold_launch_units(self, catalog: Catalog, decision: Decision, customer_id: str,
                          decision_id: str, now: datetime) -> tuple[list[Hold], list[str]]:
        """Reserve one unit for each launch offer the decision shows.

        Returns the holds taken and the offers whose launch sold out in the meantime (another
        worker took the last unit between reading the status and reserving): the caller decides
        again with those launches marked sold out.
        """
        holds: list[Hold] = []
        sold_out: list[str] = []
        for shown in decision.offers:
            offer = catalog.get(shown.offer_id)
            if offer is None or offer.launch is None or shown.action != OFFER:
                continue
            reservation = self.store.reserve(
                offer_id=offer.offer_id, supply=offer.launch.supply, customer_id=customer_id,
                decision_id=decision_id, hold_seconds=offer.launch.hold_seconds, now=now)
            if reservation is None:
                sold_out.append(offer.offer_id)
            else:
                holds.append(Hold(offer.offer_id, reservation))
        return holds, sold_out

    def release_holds(self, holds: list[Hold], decision_id: str, now: datetime) -> None:
        """Give back units held by a decision that is being redone."""
        for hold in holds:
            self.store.release(decision_id=decision_id, offer_id=hold.offer_id, now=now)


@dataclass(frozen=True)
class LiveDecision:
    """A decision as served (holdout, exploration and propensity in it), with its holds."""

    decision: Decision
    holds: list[Hold]
    #: the uplifts the decision ranked by (aligned with the catalog it was decided from)
    uplifts: list[float]
    #: the customer's feature row the decision saw (row `row` of `table`)
    table: CustomerTable
    row: int
    #: False: no profile (unknown id or anonymous session), decided for a new customer
    customer_known: bool = True
    customer_known_reason: str | None = None


def decide_live(live: LiveState, model: LoadedModel, customer_id: str,
                context: DecisionContext, decision_id: str, settings: DecisionSettings,
                rng: random.Random | None = None, *, anonymous: bool = False) -> LiveDecision:
    """One customer's decision against live state; holds a unit of every launch it shows.

    Reads the live state (and, when customers are kept in the store, the customer's profile in
    the same statement), scores once, then calls the decision core (holdout and exploration
    included). A customer without a profile (an unknown id, or `anonymous`: a session id) is
    decided from the catalog's offers for new customers (service.newcomers). When a launch
    sold out between reading its status and reserving (another worker took the last unit),
    decides again with that launch marked sold out, so a decision never shows a launch unit it
    does not hold. The caller logs the decision (`log_record`), which also counts its offers
    for the contact caps.
    """
    policy = model.policy
    catalog, now = policy.catalog, context.now
    in_memory = (not (anonymous or model.from_store)
                 and model.customers.row(customer_id) is not None)
    snapshot, profile = live.read_with_profile(
        catalog, model.launch_values, customer_id, context.channel, now,
        with_profile=model.from_store and not anonymous)
    if anonymous or not (in_memory or profile is not None):
        return _new_customer(model, customer_id, context, snapshot,
                             ANONYMOUS if anonymous else UNKNOWN_ID, settings, rng)
    table, row = policy.situate(*model.customer(customer_id, profile, now), context)
    scores = policy.score_row(table, row)
    holds: dict[str, Hold] = {}
    for _ in range(len(snapshot.launches) + 1):
        decision = policy.decide_scored(table, row, scores, context, snapshot, settings, rng)
        if decision.holdout:
            break
        taken, sold_out = live.hold_launch_units(catalog, decision, customer_id, decision_id,
                                                 now)
        holds.update((hold.offer_id, hold) for hold in taken)
        if not sold_out:
            break
        snapshot = replace(snapshot, launches={
            **snapshot.launches, **{offer_id: LaunchStatus(0, math.inf) for offer_id in sold_out}})
    shown = {o.offer_id for o in decision.offers if o.action == OFFER}
    live.release_holds([h for h in holds.values() if h.offer_id not in shown], decision_id, now)
    return LiveDecision(decision, [h for h in holds.values() if h.offer_id in shown],
                        scores.uplift.tolist(), table, row)


def _new_customer(model: LoadedModel, customer_ref: str, context: DecisionContext,
                  snapshot: StateSnapshot, who: str, settings: DecisionSettings,
                  rng: random.Random | None) -> LiveDecision:
    """The decision of a customer without a profile, by the first-visit policy when the model
    has one (scored from the request's context), else by the offers' prior uplifts. The same
    holdout and exploration as a known customer's, keyed by `customer_ref` (the session id or
    card number): the log gets control rows and propensities to retrain the first-visit
    policy from."""
    catalog = model.policy.catalog
    first = model.policy.first_visit
    if first is not None:
        decision, uplifts, table = first_visit_decision(first, customer_ref, context, snapshot,
                                                      settings, rng)
        why = who + BY_FIRST_VISIT.format(rows=first.meta.get("first_visit_rows", 0))
        return LiveDecision(decision, [], uplifts, table, 0, customer_known=False,
                            customer_known_reason=why)
    decision = new_customer_decision(catalog, customer_ref, context, snapshot, settings, rng)
    why = who + BY_PRIORS + ("" if catalog.for_new_customers() is not None else NO_NEW_OFFERS)
    table, _ = model.policy.situate(model.policy.customer_from_profile(customer_ref, {}), 0,
                                    context)
    return LiveDecision(decision, [], new_customer_uplifts(catalog), table, 0,
                        customer_known=False, customer_known_reason=why)


def log_record(result: LiveDecision, model: LoadedModel, context: DecisionContext,
               decision_id: str) -> DecisionRecord:
    """The decision-log entry of a served decision (a new customer's: decided from the offers
    for new customers, in the new-customer segment)."""
    catalog = model.policy.catalog
    if result.customer_known:
        return decision_record(result.decision, result.uplifts, catalog, result.table,
                               result.row, context, decision_id, model.version)
    decided_from = catalog.for_new_customers() or catalog.model_copy(update={"offers": ()})
    record = decision_record(result.decision, result.uplifts, decided_from, result.table,
                             result.row, context, decision_id, model.version)
    return replace(record, segment=NEW_CUSTOMER_SEGMENT)


@dataclass(frozen=True)
class Served:
    """A live decision not logged yet, with what its log record needs."""

    result: LiveDecision
    context: DecisionContext
    decision_id: str


def log_decisions(live: LiveState, model: LoadedModel, served: list[Served]
                  ) -> list[LiveDecision]:
    """Log decisions (one transaction) and return them as sent.

    When the catalog caps contacts, each customer's contacts are counted again as the decision
    is written, atomically with the write (state.log.DecisionLog.record_capped): offers past the
    cap (another worker or host served the customer meanwhile) are cut from the decision, the
    cut is what is logged and answered, and launch units held for cut offers are given back.
    """
    caps = model.policy.catalog.contact_policy
    if caps is None:
        live.store.log.record_many([log_record(s.result, model, s.context, s.decision_id)
                                    for s in served])
        return [s.result for s in served]
    finals: list[LiveDecision] = [s.result for s in served]

    def builder(i: int, s: Served) -> Callable[[int], DecisionRecord]:
        def build(counted: int) -> DecisionRecord:
            finals[i] = replace(s.result, decision=enforce_cap(s.result.decision, counted, caps,
                                                               s.context))
            return log_record(finals[i], model, s.context, s.decision_id)
        return build

    window = timedelta(hours=caps.window_hours)
    live.store.log.record_capped([
        CapWrite(s.result.table.ids[s.result.row], s.context.channel, s.context.now - window,
                 builder(i, s)) for i, s in enumerate(served)])
    sent: list[LiveDecision] = []
    for s, final in zip(served, finals, strict=True):
        kept = {o.offer_id for o in final.decision.offers}
        cut = [h for h in final.holds if h.offer_id not in kept]
        if cut:
            live.release_holds(cut, s.decision_id, s.context.now)
            final = replace(final, holds=[h for h in final.holds if h.offer_id in kept])
        sent.append(final)
    return sent


class LiveStateHandle:
    """Opens the state store lazily, in the process that uses it.

    gunicorn forks workers: a connection pool made before the fork must not be shared, so each
    process opens its own on first use (and re-opens if it finds itself in a new process).
    With a circuit breaker, a store that failed repeatedly (frozen, down) is not asked again
    until a probe succeeds: requests get their 503 at once instead of waiting out the budget.
    """

    def __init__(self, url: str, store: StateStore | None = None,
                 timeouts: Timeouts | None = None, breaker: CircuitBreaker | None = None
                 ) -> None:
        self.url = url
        self._timeouts = timeouts
        self.breaker = breaker
        self._lock = threading.Lock()
        self._live = LiveState(store) if store is not None else None
        self._pid = os.getpid()

    def get(self) -> LiveState:
        """This process's LiveState; raises StateStoreError when the store cannot be opened,
        or when the breaker is open."""
        if self.breaker is not None and not self.breaker.allow():
            skipped = StateStoreError(mask_url(self.url), "not asked: it failed repeatedly; "
                                      f"asking again within {self.breaker.seconds:g} s")
            skipped.breaker_open = True  # type: ignore[attr-defined]  # not a failure of its own
            raise skipped
        if has_request_context():
            g.state_used = True  # service.limits tells the breaker when the request succeeded
        live = self._live
        if live is not None and self._pid == os.getpid():
            return live
        with self._lock:
            if self._live is None or self._pid != os.getpid():
                if self._live is not None:
                    self._live.store.after_fork()
                else:
                    self._live = LiveState(open_store(self.url, timeouts=self._timeouts))
                self._pid = os.getpid()
            return self._live
