"""Contact history: offers shown per customer and channel, and declines, for the contact caps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert

from state.database import Database
from state.records import utc
from state.schema import contacts, declines


class Contacts:
    """The contact and decline repository of one state database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, *, customer_id: str, channel: str, offer_ids: Sequence[str],
               now: datetime) -> None:
        """Record that `offer_ids` were shown to a customer on a channel (one row per offer)."""
        now = utc(now)
        if not offer_ids:
            return
        self._db.ensure_partitions(contact_rows=[{"contacted_at": now}])
        with self._db.write("record contacts") as conn:
            conn.execute(insert(contacts), [
                {"customer_id": customer_id, "channel": channel, "offer_id": offer_id,
                 "contacted_at": now} for offer_id in offer_ids])

    def since(self, *, customer_id: str, channel: str, since: datetime) -> int:
        """Offers shown to a customer on a channel at or after `since`."""
        return self._db.decision_state(customer_id=customer_id, channel=channel,
                                       contacts_since=since).contacts

    def record_decline(self, *, customer_id: str, offer_id: str, now: datetime) -> None:
        """Record that a customer declined an offer."""
        now = utc(now)
        with self._db.write("record decline") as conn:
            conn.execute(insert(declines).values(customer_id=customer_id, offer_id=offer_id,
                                                 declined_at=now))

    def declines_since(self, *, customer_id: str, since: datetime) -> dict[str, int]:
        """Declines per offer of a customer at or after `since`."""
        return self._db.decision_state(customer_id=customer_id, declines_since=since).declines
