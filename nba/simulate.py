"""Customers who answer the service as the demo retailer's TRUE model says they would.

The demo generator knows every customer's baseline conversion and the true uplift of every
offer (`true_uplift.parquet`). `Simulator` plays those customers against a running service
(or a Flask test client): it asks for a decision, lets the customer react to the top offer
and posts what they did, so the decision log fills exactly as in production, but with a known
ground truth. `true_policy_value` scores a trained policy against that truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from decisioning.decision import DecisionContext
    from features.catalog import Catalog
    from features.customers import CustomerTable
    from training.package import Policy

log = logging.getLogger(__name__)

#: P(a customer who did not convert says "no" to the offer they saw)
DECLINE_SHARE = 0.3
#: spread of order value around the customer's usual spend (as in nba.demo's exposures)
ORDER_VALUE_SIGMA = 0.3

#: a rate-limited request (HTTP 429) is retried after the wait the service asks for, this often
RETRIES = 30
MAX_WAIT_SECONDS = 10.0

#: (status, JSON body) of a POST of a JSON body to a path such as "/v1/decisions"
Post = Callable[[str, dict], tuple[int, dict]]


class SimulationError(Exception):
    """The service refused a decision or an outcome the simulator sent."""


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulated round of traffic did."""

    decisions: int
    holdouts: int
    explored: int
    served: int  # decisions that served at least one offer
    conversions: int
    revenue: float
    outcomes: int  # outcome events posted
    duplicates: int  # outcome events the service had already recorded
    seconds: float
    throttled: int = 0  # requests the service rate-limited (429) and the simulator retried


class Simulator:
    """Demo customers reacting to decisions with their TRUE conversion probabilities.

    `customers` needs customer_id and monetary (order values scale with it); `truth` is
    true_uplift.parquet: customer_id, baseline_conversion and one column of true uplift per
    offer. Raises ValueError when a column is missing or a customer has no truth.
    """

    def __init__(self, customers: pd.DataFrame, truth: pd.DataFrame, seed: int = 0) -> None:
        for frame, what, columns in ((customers, "customers", ("customer_id", "monetary")),
                                     (truth, "truth", ("customer_id", "baseline_conversion"))):
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise ValueError(f"{what} frame lacks column(s) {missing}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        ids = truth["customer_id"].astype(str).tolist()
        self._row = {customer_id: i for i, customer_id in enumerate(ids)}
        self._baseline = truth["baseline_conversion"].to_numpy(dtype=np.float64)
        self.offer_ids = [c for c in truth.columns
                          if c not in ("customer_id", "baseline_conversion")]
        self._offer = {offer_id: k for k, offer_id in enumerate(self.offer_ids)}
        self._uplift = truth[self.offer_ids].to_numpy(dtype=np.float64)
        monetary = customers.set_index(customers["customer_id"].astype(str))["monetary"]
        aligned = monetary.reindex(ids)
        if aligned.isna().any():
            unknown = aligned.index[aligned.isna()][:3].tolist()
            raise ValueError(f"customers without monetary for truth rows, e.g. {unknown}")
        self._monetary = aligned.to_numpy(dtype=np.float64)

    @property
    def customer_ids(self) -> list[str]:
        """Every customer the simulator knows, in truth order."""
        return list(self._row)

    def conversion_probability(self, customer_id: str, offer_id: str | None) -> float:
        """TRUE P(convert) of a customer shown `offer_id` (None: shown nothing)."""
        i = self._index(customer_id)
        base = float(self._baseline[i])
        if offer_id is None:
            return base
        k = self._offer.get(offer_id)
        if k is None:
            raise ValueError(f"offer '{offer_id}' has no true uplift in the truth table")
        return float(np.clip(base + self._uplift[i, k], 0.0, 1.0))

    def respond(self, decision: dict[str, Any]) -> list[dict[str, Any]]:
        """The outcome bodies (POST /v1/outcomes) of a customer answering one decision.

        With offers served, the customer sees the top one (`shown`) and converts with
        baseline + its true uplift: a converter `accepted` and `purchased` it, a non-converter
        `declined` it with probability DECLINE_SHARE. A holdout (or a decision that served
        nothing) converts with the baseline and reports a `purchased` with offer_id null.
        """
        customer_id, decision_id = decision["customer_id"], decision["decision_id"]
        offers = decision.get("offers") or []
        top = None if decision.get("holdout") or not offers else offers[0]["offer_id"]
        converts = self._rng.random() < self.conversion_probability(customer_id, top)
        if top is None:
            return ([self._outcome(decision_id, None, "purchased",
                                   self._order_value(customer_id))] if converts else [])
        bodies = [self._outcome(decision_id, top, "shown")]
        if converts:
            bodies.append(self._outcome(decision_id, top, "accepted"))
            bodies.append(self._outcome(decision_id, top, "purchased",
                                        self._order_value(customer_id)))
        elif self._rng.random() < DECLINE_SHARE:
            bodies.append(self._outcome(decision_id, top, "declined"))
        return bodies

    def run(self, post: Post, customer_ids: Iterable[str], channel: str = "web",
            progress: Callable[[int, int], None] | None = None) -> SimulationSummary:
        """Ask for one decision per customer, answer it, post the outcomes; summarize.

        `post(path, body) -> (status, body)` talks to the service (a Flask test client or HTTP).
        `progress(done, total)` is called after every decision. A rate-limited request (429)
        is retried after the wait the service asks for (nothing happened on the server: both
        endpoints refuse before acting). Raises SimulationError naming the request when the
        service answers anything else but 200.
        """
        ids: Sequence[str] = list(customer_ids)
        started = time.perf_counter()
        holdouts = explored = served = conversions = outcomes = duplicates = 0
        revenue = 0.0
        throttled = [0]

        def send(path: str, body: dict, what: str) -> dict:
            for _ in range(RETRIES):
                status, answer = post(path, body)
                if status != 429:
                    return _expect((status, answer), what)
                throttled[0] += 1
                time.sleep(_retry_after(answer))
            return _expect((status, answer), f"{what} (still rate-limited after {RETRIES} "
                                             "tries)")

        for done, customer_id in enumerate(ids, start=1):
            body = send("/v1/decisions", {"customer_id": customer_id, "channel": channel},
                        f"POST /v1/decisions for customer '{customer_id}'")
            holdouts += bool(body.get("holdout"))
            explored += bool(body.get("explored"))
            served += bool(body.get("offers"))
            for outcome in self.respond(body):
                answer = send("/v1/outcomes", outcome,
                              f"POST /v1/outcomes {outcome['event']} of decision "
                              f"'{outcome['decision_id']}'")
                outcomes += 1
                duplicates += answer.get("recorded") is False
                if outcome["event"] == "purchased":
                    conversions += 1
                    revenue += outcome["revenue"]
            if progress is not None:
                progress(done, len(ids))
        summary = SimulationSummary(len(ids), holdouts, explored, served, conversions,
                                    round(revenue, 2), outcomes, duplicates,
                                    time.perf_counter() - started, throttled[0])
        log.info("simulated %d decisions in %.1fs: %d holdouts, %d explored, %d conversions",
                 summary.decisions, summary.seconds, holdouts, explored, conversions)
        return summary

    def _index(self, customer_id: str) -> int:
        i = self._row.get(customer_id)
        if i is None:
            raise ValueError(f"customer '{customer_id}' is not in the truth table")
        return i

    def _order_value(self, customer_id: str) -> float:
        value = self._monetary[self._index(customer_id)] * self._rng.lognormal(
            0.0, ORDER_VALUE_SIGMA)
        return round(float(value), 2)

    @staticmethod
    def _outcome(decision_id: str, offer_id: str | None, event: str,
                 revenue: float = 0.0) -> dict[str, Any]:
        return {"decision_id": decision_id, "offer_id": offer_id, "event": event,
                "revenue": revenue}


def _retry_after(body: Any) -> float:
    """Seconds a 429 answer asks to wait (its error details), within [0.01, MAX_WAIT_SECONDS]."""
    try:
        wait = float(body["error"]["details"]["retry_after_seconds"])
    except (KeyError, TypeError, ValueError):
        wait = 1.0
    return min(max(wait, 0.01), MAX_WAIT_SECONDS)


def _expect(answer: tuple[int, dict], what: str) -> dict:
    """The body of a 200 answer; SimulationError with the service's error otherwise."""
    status, body = answer
    if status != 200:
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        detail = f"{error.get('code')}: {error.get('message')}" if error else str(body)[:200]
        raise SimulationError(f"{what}: HTTP {status} ({detail})")
    return body


def true_policy_value(policy: Policy, table: CustomerTable, truth: pd.DataFrame,
                      catalog: Catalog, context: DecisionContext | None = None) -> float:
    """TRUE expected incremental profit per customer of the policy's top choice.

    Scores every customer of `table` at once with `policy.score`, decides each with
    `policy.decide_scored` and no live state (no stock, launch or contact-cap state; web
    channel unless `context` says otherwise), and averages true uplift x margin - cost of the
    offer ranked first (0 for a customer who gets nothing). Margins and costs come from
    `catalog`. Raises ValueError when a customer of the table has no truth.
    """
    from decisioning.core import OFFLINE
    from decisioning.decision import DecisionContext, OfferScores

    context = context or DecisionContext("web", datetime.now(UTC), limit=1)
    aligned = truth.set_index(truth["customer_id"].astype(str)).reindex(table.ids)
    if aligned["baseline_conversion"].isna().any():
        unknown = aligned.index[aligned["baseline_conversion"].isna()][:3].tolist()
        raise ValueError(f"customers without truth, e.g. {unknown}")
    lifts = aligned[list(catalog.offer_ids)].to_numpy(dtype=np.float64)
    profit = (lifts * np.array([o.margin for o in catalog.offers])
              - np.array([o.cost for o in catalog.offers]))
    column = {offer_id: k for k, offer_id in enumerate(catalog.offer_ids)}
    uplift, p_treated, p_control = policy.score(table.matrix)
    total = 0.0
    for row in range(len(table)):
        scores = OfferScores(uplift[row], p_treated[row], float(p_control[row]))
        decision = policy.decide_scored(table, row, scores, context, settings=OFFLINE)
        if decision.offers:
            total += profit[row, column[decision.offers[0].offer_id]]
    return total / max(len(table), 1)
