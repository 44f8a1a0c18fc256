"""The state store as one worker sees it: live stock, launch status, contact caps, holds.

Everything that must hold across gunicorn workers and hosts (stock, launch reservations,
contacts and declines) lives in the state store; this module turns it into the plain inputs of
the pure `decide` (a stock lookup, `LaunchStatus` per launch, a `ContactHistory`) and takes the
launch units a decision shows. Stock is cached per worker and re-read whenever the store's
inventory version moves, so the next decision after `PUT /v1/inventory` sees the change.
"""

from __future__ import annotations

import math
import os
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from flask import g, has_request_context

from features.catalog import Catalog, Offer
from features.customers import CustomerTable
from service import decide as d
from service.allocation import ValueDistribution, demand_arrived, value_floor, window_elapsed
from service.breaker import CircuitBreaker
from service.experiment import eligible_offers, explore, held_out
from service.newcomers import ANONYMOUS, NO_NEW_OFFERS, UNKNOWN_ID, new_customer_decision
from state import Reservation, StateStore, StateStoreError, StockSnapshot, mask_url, open_store
from state.budget import Timeouts
from state.log import NEW_CUSTOMER_SEGMENT, Candidate, DecisionRecord

if TYPE_CHECKING:
    from service.model_store import LoadedModel


def launch_distributions(catalog: Catalog, customers: CustomerTable, population: int = 0
                         ) -> dict[str, ValueDistribution]:
    """Per launch offer, the values of the customers who may get it (contactable, right tier).

    Built once per model load: the derived value floor reads it on every request. `customers`
    may be a sample of `population` customers (0: it is all of them).
    """
    weight = population / len(customers) if population and len(customers) else 1.0
    result: dict[str, ValueDistribution] = {}
    for offer in catalog.offers:
        if offer.launch is None or offer.launch.min_customer_value is not None:
            continue
        eligible = customers.contactable.astype(bool)
        if offer.loyalty_tiers is not None:
            eligible &= np.isin(customers.loyalty_tier.astype(str), offer.loyalty_tiers)
        result[offer.offer_id] = ValueDistribution.from_values(customers.value[eligible],
                                                               weight)
    return result


@dataclass(frozen=True)
class LiveView:
    """The live inputs of one decision, read together."""

    stock: StockSnapshot
    launches: dict[str, d.LaunchStatus]
    contacts: d.ContactHistory | None
    #: the customer's stored profile, when asked for (None: not asked, or no such customer)
    profile: dict[str, Any] | None = None


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
             customer_id: str, channel: str, now: datetime, with_profile: bool = False
             ) -> LiveView:
        """Stock, launch status and contact history (and with `with_profile` the customer's
        stored profile) for one decision: one store statement."""
        caps = catalog.contact_policy
        open_launches = [o for o in catalog.offers if o.launch is not None
                         and not (o.launch.ends_at and now > o.launch.ends_at)]
        state = self.store.decision_state(
            launch_ids=[o.offer_id for o in open_launches], customer_id=customer_id,
            channel=channel, now=now,
            contacts_since=now - timedelta(hours=caps.window_hours) if caps else None,
            declines_since=now - timedelta(days=caps.decline_days) if caps else None,
            with_profile=with_profile)
        statuses: dict[str, d.LaunchStatus] = {}
        for offer in open_launches:
            launch = offer.launch
            assert launch is not None
            counts = state.launches.get(offer.offer_id)
            remaining = launch.supply if counts is None else max(
                0, launch.supply - counts.reserved - counts.confirmed)
            floor = launch.min_customer_value
            if floor is None:
                distribution = distributions.get(offer.offer_id)
                floor = 0.0 if distribution is None else value_floor(
                    remaining=remaining, supply=launch.supply, distribution=distribution,
                    reach=launch.expected_reach,
                    elapsed=demand_arrived(window_elapsed(now, launch.starts_at,
                                                          launch.ends_at),
                                           launch.arrival_shape))
            statuses[offer.offer_id] = d.LaunchStatus(remaining, floor)
        contacts = d.ContactHistory(state.contacts, state.declines) if caps else None
        return LiveView(self.stock(state.inventory_version), statuses, contacts, state.profile)

    def hold_launch_units(self, catalog: Catalog, decision: d.Decision, customer_id: str,
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
            if offer is None or offer.launch is None or shown.action != d.OFFER:
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
    """A decision as served, with what the log needs to make it causal."""

    decision: d.Decision
    holds: list[Hold]
    scores: d.OfferScores
    holdout: bool
    explored: bool
    #: P(what was served | customer) under the logging policy, holdout included
    propensity: float
    #: the offer served first, or for a holdout the one it would have been
    chosen_offer: str | None
    #: the customer's feature row the decision saw (row `row` of `table`)
    table: CustomerTable
    row: int
    #: False: no profile (unknown id or anonymous session), decided for a new customer
    customer_known: bool = True
    customer_known_reason: str | None = None


def decide_live(live: LiveState, model: LoadedModel, customer_id: str,
                context: d.DecisionContext, decision_id: str, *, holdout_share: float = 0.0,
                exploration: float = 0.0, rng: random.Random | None = None,
                anonymous: bool = False) -> LiveDecision:
    """One customer's decision against live state; holds a unit of every launch it shows.

    Reads the live state (and, when customers are kept in the store, the customer's profile in
    the same statement), scores once, then decides with the live stock, launch status and
    contact history. A customer without a profile (an unknown id, or `anonymous`: a session
    id) is decided from the catalog's offers for new customers (service.newcomers). A customer
    in the global holdout gets nothing (the decision they would have had is kept for the log).
    Otherwise, with probability `exploration`, a random eligible offer goes first. When a
    launch sold out between reading its status and reserving (another worker took the last
    unit), decides again with that launch marked sold out, so a decision never shows a launch
    unit it does not hold. The caller logs the decision (`log_record`), which also counts its
    offers for the contact caps.
    """
    policy = model.policy
    catalog, now = policy.catalog, context.now
    in_memory = (not (anonymous or model.from_store)
                 and model.customers.row(customer_id) is not None)
    view = live.read(catalog, model.launch_values, customer_id, context.channel, now,
                     with_profile=model.from_store and not anonymous)
    if anonymous or not (in_memory or view.profile is not None):
        return _new_customer(model, customer_id, context, view,
                             ANONYMOUS if anonymous else UNKNOWN_ID)
    table, row = model.customer(customer_id, view.profile, now)
    scores = policy.score_row(table, row)
    stock, launches, contacts = view.stock, view.launches, view.contacts
    if model.held_out(table, row):
        would = policy.decide_scored(table, row, scores, context, stock, launches, contacts)
        chosen = would.offers[0].offer_id if would.offers else None
        # P(nothing served | not held out): exploration serves something whenever it can
        p_nothing = 0.0 if chosen is not None else (
            1.0 - exploration if eligible_offers(would) else 1.0)
        return LiveDecision(held_out(would, holdout_share), [], scores, True, False,
                            holdout_share + (1 - holdout_share) * p_nothing, chosen, table, row)
    rng = rng or random.Random()
    holds: dict[str, Hold] = {}
    for _ in range(len(launches) + 1):
        decision = policy.decide_scored(table, row, scores, context, stock, launches, contacts)
        served = explore(decision, catalog, scores, exploration, rng)
        decision = served.decision
        taken, sold_out = live.hold_launch_units(catalog, decision, customer_id, decision_id,
                                                 now)
        holds.update((hold.offer_id, hold) for hold in taken)
        if not sold_out:
            break
        launches = {**launches, **{offer_id: d.LaunchStatus(0, math.inf)
                                   for offer_id in sold_out}}
    shown = {o.offer_id for o in decision.offers if o.action == d.OFFER}
    live.release_holds([h for h in holds.values() if h.offer_id not in shown], decision_id, now)
    chosen = decision.offers[0].offer_id if decision.offers else None
    p_served = (1 - holdout_share) * served.propensity
    if chosen is None:  # "nothing" is also what the holdout gets
        p_served += holdout_share
    return LiveDecision(decision, [h for h in holds.values() if h.offer_id in shown], scores,
                        False, served.explored, p_served, chosen, table, row)


def _new_customer(model: LoadedModel, customer_ref: str, context: d.DecisionContext,
                  view: LiveView, why: str) -> LiveDecision:
    """The decision of a customer without a profile: no model, no holdout, no exploration
    (the log records propensity 1: it is the only decision such a customer can get)."""
    catalog = model.policy.catalog
    decision = new_customer_decision(catalog, customer_ref, context, view.stock,
                                     view.launches, view.contacts)
    offers = catalog.for_new_customers()
    if offers is None:
        why += NO_NEW_OFFERS
    # the priors the decision ranked by, for the log's candidates (service.newcomers)
    uplift = np.array([o.prior_uplift or 0.0 for o in offers.offers] if offers else [])
    table = model.policy.customer_from_profile(customer_ref, {})
    chosen = decision.offers[0].offer_id if decision.offers else None
    return LiveDecision(decision, [], d.OfferScores(uplift, uplift, 0.0), False, False, 1.0,
                        chosen, table, 0, customer_known=False, customer_known_reason=why)


def _scored_offers(catalog: Catalog, result: LiveDecision) -> tuple[Offer, ...]:
    """The offers `result.scores` are aligned with: the catalog's, or the new customers'."""
    if result.customer_known:
        return catalog.offers
    offers = catalog.for_new_customers()
    return () if offers is None else offers.offers


def log_record(result: LiveDecision, model: LoadedModel, context: d.DecisionContext,
               decision_id: str) -> DecisionRecord:
    """The decision-log entry of a served decision."""
    catalog = model.policy.catalog
    eligible = set(eligible_offers(result.decision)) | {o.offer_id for o in
                                                         result.decision.offers}
    uplifts: list[float] = result.scores.uplift.tolist()  # floats, not NumPy scalars
    candidates = tuple(
        Candidate(offer.offer_id, round(uplift * offer.margin - offer.cost, 6),
                  round(uplift, 6))
        for offer, uplift in zip(_scored_offers(catalog, result), uplifts, strict=True)
        if offer.offer_id in eligible and not math.isnan(uplift))
    table, row = result.table, result.row
    return DecisionRecord(
        decision_id=decision_id, decided_at=context.now, customer_id=table.ids[row],
        channel=context.channel, model_version=model.version,
        offer_ids=tuple(o.offer_id for o in result.decision.offers), holdout=result.holdout,
        explored=result.explored, chosen_offer=result.chosen_offer,
        propensity=result.propensity, candidates=candidates,
        suppressed={s.offer_id: s.reason for s in result.decision.suppressed},
        features=table.feature_row(row),
        segment=table.loyalty_tier[row] if result.customer_known else NEW_CUSTOMER_SEGMENT)


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
