"""`StateStore`: one object for a worker's shared state, over one database and its repositories.

A thin facade: each method hands over to the repository that owns it (`state.inventory`,
`state.launches`, `state.contacts`, `state.log`, `state.profiles`), all on one
`state.database.Database`. Every public method is one transaction, so gunicorn workers (and
hosts) never see half a change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from state import campaigns
from state.budget import Timeouts
from state.campaigns import CampaignState
from state.contacts import Contacts
from state.database import Database
from state.inventory import Inventory
from state.launches import Launches
from state.log import DecisionLog, DecisionRecord
from state.profiles import Profiles
from state.records import DecisionState, LaunchCounts, Reservation, StockRow, StockSnapshot
from state.urls import DEFAULT_URL


class StateStore:
    """Shared state for every worker: inventory, launch reservations, contact history, the log.

    Build one with `open_store(url)`; after gunicorn forks, call `after_fork()` in the worker.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inventory = Inventory(db)
        self.launches = Launches(db)
        self.contacts = Contacts(db)
        #: the decision and outcome log kept in this store
        self.log = DecisionLog(db)
        #: customer profiles (what decisions read about a customer)
        self.profiles = Profiles(db)

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return self.db.url

    @property
    def backend(self) -> str:
        """"sqlite" or "postgresql"."""
        return self.db.backend

    def __repr__(self) -> str:
        return f"StateStore({self.url!r})"

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def after_fork(self) -> None:
        """Drop connections inherited from the parent process (see Database.after_fork)."""
        self.db.after_fork()

    def close(self) -> None:
        """Close every pooled connection (and this thread's hot-path connection)."""
        self.db.close()

    # ------------------------------------------------------------ inventory

    def replace_inventory(self, rows: Iterable[StockRow], *, now: datetime) -> int:
        """Atomically replace all inventory with `rows`; returns the count (Inventory.replace)."""
        return self.inventory.replace(rows, now=now)

    def upsert_inventory(self, rows: Iterable[StockRow], *, now: datetime) -> int:
        """Set on_hand per key of `rows`, adding new keys; atomic (Inventory.upsert)."""
        return self.inventory.upsert(rows, now=now)

    def inventory_version(self) -> int:
        """The inventory version: moves forward whenever inventory changes."""
        return self.inventory.version()

    def stock_snapshot(self) -> StockSnapshot:
        """All inventory rows and the version they were read at."""
        return self.inventory.snapshot()

    # ------------------------------------------------------------ launches

    def reserve(self, *, offer_id: str, supply: int, customer_id: str, decision_id: str,
                hold_seconds: int, now: datetime) -> Reservation | None:
        """Hold one unit of a launch for a customer; None when sold out (Launches.reserve)."""
        return self.launches.reserve(offer_id=offer_id, supply=supply, customer_id=customer_id,
                                     decision_id=decision_id, hold_seconds=hold_seconds,
                                     now=now)

    def confirm(self, *, decision_id: str, offer_id: str, now: datetime) -> Reservation | None:
        """Turn a live hold into a sale; idempotent (Launches.confirm)."""
        return self.launches.confirm(decision_id=decision_id, offer_id=offer_id, now=now)

    def release(self, *, decision_id: str, offer_id: str, now: datetime) -> Reservation | None:
        """Give a held unit back; idempotent (Launches.release)."""
        return self.launches.release(decision_id=decision_id, offer_id=offer_id, now=now)

    def expire_holds(self, *, now: datetime) -> int:
        """Expire every overdue hold of every launch; returns how many."""
        return self.launches.expire_holds(now=now)

    def launch_counts(self, offer_id: str, *, now: datetime) -> LaunchCounts | None:
        """Supply, live holds and sales of a launch; None if it was never reserved."""
        return self.launches.counts(offer_id, now=now)

    def all_launch_counts(self, *, now: datetime) -> dict[str, LaunchCounts]:
        """Counts of every launch that has had a reservation, by offer id."""
        return self.launches.all_counts(now=now)

    def reservations(self, offer_id: str) -> list[Reservation]:
        """Every reservation of a launch, oldest first, whatever its status."""
        return self.launches.reservations(offer_id)

    # ------------------------------------------------------------ contact policy

    def record_contacts(self, *, customer_id: str, channel: str, offer_ids: Sequence[str],
                        now: datetime) -> None:
        """Record that `offer_ids` were shown to a customer on a channel."""
        self.contacts.record(customer_id=customer_id, channel=channel, offer_ids=offer_ids,
                             now=now)

    def contacts_since(self, *, customer_id: str, channel: str, since: datetime) -> int:
        """Offers shown to a customer on a channel at or after `since`."""
        return self.contacts.since(customer_id=customer_id, channel=channel, since=since)

    def record_decline(self, *, customer_id: str, offer_id: str, now: datetime) -> None:
        """Record that a customer declined an offer."""
        self.contacts.record_decline(customer_id=customer_id, offer_id=offer_id, now=now)

    def declines_since(self, *, customer_id: str, since: datetime) -> dict[str, int]:
        """Declines per offer of a customer at or after `since`."""
        return self.contacts.declines_since(customer_id=customer_id, since=since)

    # ------------------------------------------------------------ campaigns

    def campaign_state(self, *, channel: str, now: datetime, contacts_since: datetime | None,
                       declines_since: datetime | None) -> CampaignState:
        """Stock, launch holds and every customer's contact history at one snapshot."""
        return campaigns.read_state(self.db, channel=channel, now=now,
                                    contacts_since=contacts_since, declines_since=declines_since)

    def log_campaign(self, records: Sequence[DecisionRecord], *, count_contacts: bool) -> int:
        """Log a campaign's decisions not logged yet (and count their contacts); how many."""
        return campaigns.log_decisions(self.db, records, count_contacts=count_contacts)

    # ------------------------------------------------------------ the hot path

    def decision_state(self, *, launch_ids: Sequence[str] = (), customer_id: str = "",
                       channel: str = "", contacts_since: datetime | None = None,
                       declines_since: datetime | None = None,
                       now: datetime | None = None, with_profile: bool = False
                       ) -> DecisionState:
        """Everything one decision reads, in one statement (Database.decision_state)."""
        return self.db.decision_state(launch_ids=launch_ids, customer_id=customer_id,
                                      channel=channel, contacts_since=contacts_since,
                                      declines_since=declines_since, now=now,
                                      with_profile=with_profile)


def open_store(url: str = DEFAULT_URL, *, timeouts: Timeouts | None = None) -> StateStore:
    """Open (and create if needed) the state store at `url` (see Database.open; `timeouts`:
    the service's time budgets, state.budget).

    Raises StateStoreError naming the URL (password masked) when it is malformed or the
    database cannot be reached or set up.
    """
    return StateStore(Database.open(url, timeouts=timeouts))
