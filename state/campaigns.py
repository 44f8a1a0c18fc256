"""Campaigns as logged decisions: the consistent state a campaign decides against, and its
idempotent log write.

A campaign reads stock, launch holds and every customer's contact counts in ONE read
transaction (one snapshot), decides, and logs one decision per customer under a decision id
fixed by (campaign, customer). Logging again under the same ids inserts nothing and counts no
contact twice, so re-running a campaign (or finishing one that failed half-way) is safe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from state.database import Database
from state.inventory import _none, _version
from state.log import DecisionRecord, _row
from state.records import StockRow, StockSnapshot, utc
from state.schema import (
    CONFIRMED,
    RESERVED,
    contacts,
    decisions,
    declines,
    inventory,
    reservations,
)

_IDS_PER_QUERY = 500  # bound parameters per IN (...) list: far below every backend's limit


@dataclass(frozen=True)
class CampaignState:
    """What a campaign decides against, read at one snapshot.

    `held`: launch units held or sold per offer; `contacts`: offers made per customer on the
    channel since the cap window opened; `declines`: per customer, declines per offer.
    """

    stock: StockSnapshot
    held: dict[str, int]
    contacts: dict[str, int]
    declines: dict[str, dict[str, int]]


def read_state(db: Database, *, channel: str, now: datetime,
               contacts_since: datetime | None, declines_since: datetime | None
               ) -> CampaignState:
    """Stock, launch holds and contact history for a campaign, in one consistent read."""
    now = utc(now)
    with db.read("read campaign state", consistent=True) as conn:
        version = _version(conn)
        stock = tuple(StockRow(sku, _none(size), _none(color), _none(location), on_hand)
                      for sku, size, color, location, on_hand in conn.execute(
                          select(inventory.c.sku, inventory.c.size, inventory.c.color,
                                 inventory.c.location, inventory.c.on_hand)))
        held: dict[str, int] = dict(conn.execute(
            select(reservations.c.offer_id, func.count())
            .where(or_(reservations.c.status == CONFIRMED,
                       (reservations.c.status == RESERVED) & (reservations.c.expires_at > now)))
            .group_by(reservations.c.offer_id)).all())
        counted: dict[str, int] = {}
        if contacts_since is not None:
            counted = dict(conn.execute(
                select(contacts.c.customer_id, func.count())
                .where(contacts.c.channel == channel,
                       contacts.c.contacted_at >= utc(contacts_since))
                .group_by(contacts.c.customer_id)).all())
        declined: dict[str, dict[str, int]] = defaultdict(dict)
        if declines_since is not None:
            for customer_id, offer_id, n in conn.execute(
                    select(declines.c.customer_id, declines.c.offer_id, func.count())
                    .where(declines.c.declined_at >= utc(declines_since))
                    .group_by(declines.c.customer_id, declines.c.offer_id)):
                declined[customer_id][offer_id] = int(n)
    return CampaignState(StockSnapshot(stock, version), {k: int(v) for k, v in held.items()},
                         {k: int(v) for k, v in counted.items()}, dict(declined))


def log_decisions(db: Database, records: Sequence[DecisionRecord], *,
                  count_contacts: bool) -> int:
    """Log the decisions not logged yet (by decision id) and count their offers as contacts,
    in one transaction; returns how many were new."""
    if not records:
        return 0
    with db.write("log campaign decisions") as conn:
        ids = [r.decision_id for r in records]
        seen: set[str] = set()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start:start + _IDS_PER_QUERY]
            seen.update(conn.execute(select(decisions.c.decision_id)
                                     .where(decisions.c.decision_id.in_(chunk))).scalars())
        new = [r for r in records if r.decision_id not in seen]
        if new:
            conn.execute(db.insert(decisions).on_conflict_do_nothing(), [_row(r) for r in new])
        touched = [{"customer_id": r.customer_id, "channel": r.channel, "offer_id": offer_id,
                    "contacted_at": r.decided_at}
                   for r in new if count_contacts for offer_id in r.offer_ids]
        if touched:
            conn.execute(contacts.insert(), touched)
    return len(new)
