"""The state tables: one MetaData, created idempotently when a store is opened.

Optional key parts (size, colour, location) are stored as '' rather than NULL because a
PostgreSQL primary key cannot hold NULL; the store maps '' back to None.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

RESERVED = "reserved"
CONFIRMED = "confirmed"
RELEASED = "released"
EXPIRED = "expired"
STATUSES = (RESERVED, CONFIRMED, RELEASED, EXPIRED)
ACTIVE = (RESERVED, CONFIRMED)  # statuses that hold a unit of supply


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and read back timezone-aware, alike on both backends.

    SQLite has no time zones (it would hand back naive values) and PostgreSQL returns the
    session's zone; callers always get UTC and must always pass aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; naive on SQLite so stored strings compare in time order."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: state timestamps must be timezone-aware (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach or convert to UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

#: the tables as SQLite (and a PostgreSQL store made before partitioning) hold them
metadata = MetaData()

inventory = Table(
    "inventory",
    metadata,
    Column("sku", String, primary_key=True),
    Column("size", String, primary_key=True),  # '' = fits any size
    Column("color", String, primary_key=True),  # '' = fits any colour
    Column("location", String, primary_key=True),  # '' = online, else a store id
    Column("on_hand", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("on_hand >= 0", name="ck_inventory_on_hand"),
)

# One row (id = 1): bumped in the same transaction as every inventory write, so readers can
# poll it cheaply and reload only when it moved.
inventory_meta = Table(
    "inventory_meta",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime),
)

# `held` counts reservations in an active status (reserved or confirmed); every write path
# changes it in the same transaction as the reservation rows.
launches = Table(
    "launches",
    metadata,
    Column("offer_id", String, primary_key=True),
    Column("supply", Integer, nullable=False),
    Column("held", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("supply >= 0", name="ck_launches_supply"),
    CheckConstraint("held >= 0", name="ck_launches_held"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("reservation_id", String, primary_key=True),
    Column("offer_id", String, ForeignKey("launches.offer_id"), nullable=False),
    Column("customer_id", String, nullable=False),
    Column("decision_id", String, nullable=False),
    Column("status", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(
        "status IN ('reserved', 'confirmed', 'released', 'expired')",
        name="ck_reservations_status",
    ),
)
Index("ix_reservations_offer_customer", reservations.c.offer_id, reservations.c.customer_id)
Index("ix_reservations_decision_offer", reservations.c.decision_id, reservations.c.offer_id)
Index("ix_reservations_offer_status_expires", reservations.c.offer_id, reservations.c.status,
      reservations.c.expires_at)
Index("ix_reservations_status_expires", reservations.c.status, reservations.c.expires_at)
# The database itself refuses a second active unit for one customer of one launch.
_active = reservations.c.status.in_(ACTIVE)
Index("ux_reservations_active_customer", reservations.c.offer_id, reservations.c.customer_id,
      unique=True, sqlite_where=_active, postgresql_where=_active)

def _contacts(meta: MetaData, *, partitioned: bool) -> Table:
    """Offers made per customer and channel (the contact caps count them)."""
    table = Table(
        "contacts",
        meta,
        Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        Column("customer_id", String, nullable=False),
        Column("channel", String, nullable=False),
        Column("offer_id", String, nullable=False),
        # a partitioned table's key must hold its partition key
        Column("contacted_at", UtcDateTime, nullable=False, primary_key=partitioned),
        postgresql_partition_by=_range("contacted_at", partitioned),
    )
    Index("ix_contacts_customer_channel_time", table.c.customer_id, table.c.channel,
          table.c.contacted_at)
    return table


def _range(column: str, partitioned: bool) -> str | None:
    return f"RANGE ({column})" if partitioned else None


contacts = _contacts(metadata, partitioned=False)

declines = Table(
    "declines",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("customer_id", String, nullable=False),
    Column("offer_id", String, nullable=False),
    Column("declined_at", UtcDateTime, nullable=False),
)
Index("ix_declines_customer_time", declines.c.customer_id, declines.c.declined_at)

def _decisions(meta: MetaData, *, partitioned: bool) -> Table:
    """The decision log: every decision as served (or held out)."""
    table = Table(
        "decisions",
        meta,
        Column("decision_id", String, primary_key=True),
        Column("decided_at", UtcDateTime, nullable=False, primary_key=partitioned),
        Column("customer_id", String, nullable=False),
        Column("channel", String, nullable=False),
        Column("model_version", String, nullable=False),
        Column("holdout", Boolean, nullable=False),
        Column("explored", Boolean, nullable=False),
        # the offer the customer got (top of `offer_ids`), or for a holdout the one they would
        # have got; null when nothing was worth sending
        Column("chosen_offer", String),
        Column("propensity", Float, nullable=False),  # P(what was served | customer)
        Column("offer_ids", Text, nullable=False),  # JSON list of offers served, rank order
        Column("candidates", Text, nullable=False),  # JSON [{offer_id, value, uplift}] eligible
        Column("suppressed", Text, nullable=False),  # JSON {offer_id: reason}
        Column("features", Text, nullable=False),  # JSON of the customer's row the decision saw
        Column("segment", String),  # loyalty tier (reports by segment)
        postgresql_partition_by=_range("decided_at", partitioned),
    )
    Index("ix_decisions_decided_at", table.c.decided_at)
    Index("ix_decisions_customer", table.c.customer_id, table.c.decided_at)
    return table


def _outcomes(meta: MetaData, *, partitioned: bool) -> Table:
    """What customers did after a decision.

    No foreign key once decisions are partitioned: PostgreSQL can only reference a key that
    holds the partition key. The service checks the decision exists (service.outcomes).
    """
    decision_id = (Column("decision_id", String, primary_key=True) if partitioned else
                   Column("decision_id", String, ForeignKey("decisions.decision_id"),
                          primary_key=True))
    table = Table(
        "outcomes",
        meta,
        decision_id,
        Column("offer_id", String, primary_key=True),  # '' = not tied to an offer (organic)
        Column("event", String, primary_key=True),  # shown | accepted | declined | purchased
        Column("revenue", Float, nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
    )
    Index("ix_outcomes_occurred_at", table.c.occurred_at)
    return table


decisions = _decisions(metadata, partitioned=False)
outcomes = _outcomes(metadata, partitioned=False)

# Customer profiles: one row per customer, the customers.parquet columns as one JSON document
# (the contract lets a retailer add feature columns; the row follows it without a migration).
# Read on the hot path in the same statement as the decision's live state (state.hotpath).
profiles = Table(
    "profiles",
    metadata,
    Column("customer_id", String, primary_key=True),
    Column("data", Text, nullable=False),  # JSON {column: value} of the customer's row
    Column("updated_at", UtcDateTime, nullable=False),
)

#: The table a bulk load fills before it replaces `profiles` in one transaction.
PROFILES_STAGING = "profiles_staging"

#: A profile's loyalty card number as the staff page normalizes what is typed (whitespace and
#: dashes dropped, upper case; service.staff.normalize_card), computed from the JSON document
#: so a bulk load and an event need no extra column or write: the lookup by card is an
#: expression index, partial (only profiles that have a card).
CARD_KEY = {
    "postgresql": r"upper(regexp_replace(data::json ->> 'loyalty_card', '[\s-]+', '', 'g'))",
    "sqlite": ("upper(replace(replace(replace(replace(json_extract(data, '$.loyalty_card'), "
               "' ', ''), '-', ''), char(9), ''), char(10), ''))"),
}
HAS_CARD = {"postgresql": "(data::json ->> 'loyalty_card') IS NOT NULL",
            "sqlite": "json_extract(data, '$.loyalty_card') IS NOT NULL"}


def card_index_ddl(backend: str) -> str:
    """CREATE INDEX (idempotent) of the profiles' normalized loyalty card numbers."""
    return (f"CREATE INDEX IF NOT EXISTS ix_profiles_card ON profiles (({CARD_KEY[backend]})) "
            f"WHERE {HAS_CARD[backend]}")

# Every customer event applied to a profile, once: the primary key makes a repeated event a
# no-op (idempotent per event id), and the log says what each profile has seen.
profile_events = Table(
    "profile_events",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("customer_id", String, nullable=False),
    Column("type", String, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("payload", Text, nullable=False),  # JSON of the event as received
)
Index("ix_profile_events_customer", profile_events.c.customer_id, profile_events.c.occurred_at)

#: PostgreSQL's shape: the same tables, the decision log and contacts RANGE-partitioned by
#: time (one partition per month, state.partitions), so pruning drops whole partitions.
#: SQLite keeps `metadata`.
partitioned_metadata = MetaData()
PARTITIONED = {"decisions": "decided_at", "contacts": "contacted_at"}  # table -> time column
for _table in metadata.tables.values():
    if _table.name not in {*PARTITIONED, "outcomes"}:
        _table.to_metadata(partitioned_metadata)
_decisions(partitioned_metadata, partitioned=True)
_contacts(partitioned_metadata, partitioned=True)
_outcomes(partitioned_metadata, partitioned=True)
