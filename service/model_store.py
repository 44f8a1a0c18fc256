"""The loaded champion: an immutable bundle, swapped atomically; reloaded when the alias moves.

A request takes one reference to the current bundle (`ModelStore.current()`) and uses only it,
so a reload never mixes two models inside one decision. Loads (at start, by the poller, by the
admin endpoint) are serialized by a lock that requests never wait on: a new bundle is built and
smoke-tested on the side, then swapped in with one reference assignment. A version that fails
to load or to decide is rejected, logged and remembered, and the old bundle keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from decisioning.core import OFFLINE
from decisioning.decision import DecisionContext
from decisioning.launch import ValueDistribution, launch_distributions
from features import io
from features.customers import CustomerTable
from features.events import as_of
from service import observability
from service.domain import DomainError
from service.registry_access import RegistryAccess, RegistryUnavailable
from service.settings import AUTO, ServiceSettings
from state import open_store
from training import registry
from training.package import Policy

log = logging.getLogger(__name__)

#: stored profiles a model load reads to summarize the customer base (launch value floors):
#: bounded, so a worker's memory does not grow with the customer base
PROFILE_SAMPLE = 20_000

# ReloadResult.status values
RELOADED = "reloaded"        # a new version now serves
UNCHANGED = "unchanged"      # the alias points at the version already serving
SKIPPED = "skipped"          # the alias points at a version already rejected
REJECTED = "rejected"        # the new version failed to load or to decide; the old one serves
BUSY = "busy"                # another load is running in this process
UNAVAILABLE = "unavailable"  # no version behind the alias, or the registry did not answer


class ModelNotReady(DomainError):
    """No champion is loaded yet (or the registry has none)."""


class UnknownCustomer(DomainError):
    """No such customer in the loaded model's online feature table."""


class ReloadFailed(DomainError):
    """A requested model reload did not swap in a new model; the old one keeps serving."""


@dataclass(frozen=True)
class LoadedModel:
    """Everything one decision needs, consistent with one model version."""

    policy: Policy
    name: str
    version: str
    alias: str
    run_id: str | None
    metrics: dict[str, float]
    customers: CustomerTable
    #: per launch with a derived floor: the values of its eligible customers
    launch_values: dict[str, ValueDistribution] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    #: customers come from the state store's profiles, read with each decision; `customers`
    #: then holds only a sample (the smoke decision, launch value distributions)
    from_store: bool = False

    def customer_row(self, customer_id: str) -> int:
        """The customer's row in the in-memory table; UnknownCustomer when there is none."""
        row = None if self.from_store else self.customers.row(customer_id)
        if row is None:
            raise _unknown(customer_id)
        return row

    def customer(self, customer_id: str, profile: Mapping[str, Any] | None,
                 now: datetime | None = None) -> tuple[CustomerTable, int]:
        """The customer's feature row: from the stored `profile` (store mode, built with the
        model's spec by the feature code training uses; days-since features as of `now`) or
        the in-memory table.

        UnknownCustomer when the customer has no profile / row.
        """
        if not self.from_store:
            return self.customers, self.customer_row(customer_id)
        if profile is None:
            raise _unknown(customer_id)
        if now is not None:
            profile = as_of(profile, now)
        return self.policy.customer_from_profile(customer_id, profile), 0


def _unknown(customer_id: str) -> UnknownCustomer:
    return UnknownCustomer(f"unknown customer_id '{customer_id}'", {"customer_id": customer_id})


@dataclass(frozen=True)
class ReloadError:
    """A rejected load: the version (None if unknown), why, and when (epoch seconds)."""

    version: str | None
    error: str
    at: float

    def as_dict(self) -> dict:
        """JSON-ready form, with the time also in ISO 8601."""
        return asdict(self) | {"at_iso": datetime.fromtimestamp(self.at, UTC).isoformat()}


@dataclass(frozen=True)
class ReloadResult:
    """What one reload check did (status: one of the module's status constants)."""

    status: str
    version: str | None
    error: str | None = None


def load_from_registry(settings: ServiceSettings,
                       access: RegistryAccess | None = None) -> LoadedModel:
    """Load the version behind `<name>@<alias>` and build the online tables with its spec.

    With `access` (the service), the registry is checked first and never created, its calls
    are bounded, and a failure makes the next load reconnect (service.registry_access).
    """
    if access is not None:
        return access.call(lambda client: _load(settings, client))
    return _load(settings, registry.configure(settings.tracking_uri))


def _load(settings: ServiceSettings, client: MlflowClient) -> LoadedModel:
    ref = registry.get_alias(client, settings.model_name, settings.model_alias)
    if ref is None:
        raise ModelNotReady(
            f"no version of '{settings.model_name}' has alias '{settings.model_alias}' in the "
            "registry; train one with `nba train` or promote with `nba promote`")
    started = time.perf_counter()
    # by version, not by alias: the alias may move meanwhile, and the bundle must say what it is
    policy = registry.load_policy(f"models:/{ref.name}/{ref.version}")
    metrics = client.get_run(ref.run_id).data.metrics if ref.run_id else {}
    if _customers_from(settings) == "store":
        sample, population = _profile_sample(settings.state_url)
        customers = policy.customers(sample)
        log.info("loaded %s version %s (%s), customers from the state store (a sample of %d "
                 "of %d summarized) in %.2fs", ref.name, ref.version, ref.alias,
                 len(customers), population, time.perf_counter() - started)
        return LoadedModel(policy, ref.name, ref.version, ref.alias, ref.run_id, dict(metrics),
                           customers,
                           launch_distributions(policy.catalog, customers, population),
                           from_store=True)
    customers = policy.customers(io.read_customers(settings.data_dir / io.CUSTOMERS, policy.spec))
    log.info("loaded %s version %s (%s) with %d customers in %.2fs", ref.name, ref.version,
             ref.alias, len(customers), time.perf_counter() - started)
    return LoadedModel(policy, ref.name, ref.version, ref.alias, ref.run_id, dict(metrics),
                       customers, launch_distributions(policy.catalog, customers))


def _customers_from(settings: ServiceSettings) -> str:
    """"file" or "store": NBA_CUSTOMERS_FROM, with "auto" resolved by whether the state store
    holds any profile now (a load after `nba customers load` switches to the store)."""
    if settings.customers_from != AUTO:
        return settings.customers_from
    with open_store(settings.state_url) as store:
        source = "store" if store.profiles.sample(1) else "file"
    log.info("NBA_CUSTOMERS_FROM=auto: customers from the %s", "state store's profiles"
             if source == "store" else "file (the state store holds no profiles)")
    return source


def _profile_sample(state_url: str) -> tuple[pd.DataFrame, int]:
    """Up to PROFILE_SAMPLE stored profiles as a customers frame, and how many are stored.

    ModelNotReady when the store holds none.
    """
    with open_store(state_url) as store:
        sample = store.profiles.sample(PROFILE_SAMPLE)
        population = store.profiles.estimated_count()
    if not sample:
        raise ModelNotReady("the state store holds no customer profiles; load them with "
                            "`nba customers load data/customers.parquet`")
    return pd.DataFrame.from_records([{"customer_id": cid, **profile}
                                      for cid, profile in sample]), population


class AliasProbe:
    """The version behind the alias: one registry query, no artifact download."""

    def __init__(self, settings: ServiceSettings, access: RegistryAccess | None = None) -> None:
        self._settings = settings
        # made on first use: in the worker, not at import
        self._access = access or RegistryAccess(settings.tracking_uri)

    def __call__(self) -> str | None:
        """The version the alias points at now, or None when it points at none."""
        ref = self._access.call(lambda client: registry.get_alias(
            client, self._settings.model_name, self._settings.model_alias))
        return None if ref is None else ref.version


def smoke_decision(model: LoadedModel) -> None:
    """Decide for the first customer (no live state: nothing is held); raises if it cannot."""
    if len(model.customers) == 0:
        raise ValueError("the customer table is empty")
    context = DecisionContext(channel="web", now=datetime.now(UTC), limit=3)
    decision = model.policy.decide_row(model.customers, 0, context, settings=OFFLINE)
    accounted = len(decision.offers) + len(decision.suppressed)
    expected = len(model.policy.catalog.offers)
    if accounted != expected:
        raise ValueError(f"the decision accounts for {accounted} of {expected} catalog offers")


def _describe(exc: BaseException) -> str:
    # our own errors are written for people already; others need their type (first line only:
    # a driver's message may carry the whole statement)
    if isinstance(exc, ModelNotReady | RegistryUnavailable):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class ModelStore:
    """Holds the current LoadedModel; `current()` raises ModelNotReady until one has loaded."""

    def __init__(self, loader: Callable[[], LoadedModel], retry_seconds: float = 5.0, *,
                 probe: Callable[[], str | None] | None = None,
                 smoke: Callable[[LoadedModel], None] | None = smoke_decision) -> None:
        self._loader = loader
        self._retry_seconds = retry_seconds
        self._probe = probe
        self._smoke = smoke
        self._lock = threading.Lock()  # serializes loads; requests never wait on it
        self._current: LoadedModel | None = None
        self._last_attempt = 0.0
        self._rejected: ReloadError | None = None
        self.last_error: str | None = None

    @property
    def ready(self) -> bool:
        """True once a model has loaded."""
        return self._current is not None

    @property
    def version(self) -> str | None:
        """The version serving now (None before the first load)."""
        model = self._current
        return None if model is None else model.version

    @property
    def last_reload_error(self) -> dict | None:
        """The last rejected load (version, error, time); None once the alias serves again."""
        rejected = self._rejected
        return None if rejected is None else rejected.as_dict()

    def current(self) -> LoadedModel:
        """The model to decide with; before the first load, retries at most every retry_seconds."""
        model = self._current
        if model is not None:
            return model
        # never wait behind a load in progress: answer "not ready" now instead
        due = time.monotonic() - self._last_attempt >= self._retry_seconds
        if due and self._lock.acquire(blocking=False):
            try:
                self._load_locked(None)
            finally:
                self._lock.release()
            model = self._current
            if model is not None:
                return model
        raise ModelNotReady(self.last_error or "model is loading")

    def try_load(self) -> bool:
        """Load and swap in a new model; on failure keep the old one and record the error."""
        with self._lock:
            return self._load_locked(None)

    def reload_if_changed(self, retry_rejected: bool = False) -> ReloadResult:
        """Load the alias's version when it is not the one serving; one cheap query otherwise.

        A version already rejected is not loaded again (unless `retry_rejected`, or nothing is
        serving and retry_seconds have passed), so a broken champion costs one query per poll.
        """
        if self._probe is None:
            return ReloadResult(UNAVAILABLE, None, "this store has no registry to poll")
        if not self._lock.acquire(blocking=False):
            return ReloadResult(BUSY, None, "another reload is running in this worker")
        try:
            return self._reload_locked(retry_rejected)
        finally:
            self._lock.release()

    def _reload_locked(self, retry_rejected: bool) -> ReloadResult:
        """reload_if_changed with the lock held."""
        assert self._probe is not None
        try:
            version = self._probe()
        except Exception as exc:  # the registry is down: keep serving, try at the next poll
            # and say so: last_reload_error tells the truth until the registry answers again
            error = f"registry unavailable: {_describe(exc)}"
            self._rejected = ReloadError(None, error, time.time())
            if self._current is None:
                self.last_error = error
            return ReloadResult(UNAVAILABLE, None, error)
        if version is None:
            return ReloadResult(UNAVAILABLE, None, "no model version behind the alias (the alias "
                                "is missing or the registry did not answer)")
        if version == self.version:
            self._rejected = self.last_error = None  # the alias is back on what serves: stale
            return ReloadResult(UNCHANGED, version)
        rejected = self._rejected
        if not retry_rejected and rejected is not None and rejected.version == version and (
                self._current is not None
                or time.monotonic() - self._last_attempt < self._retry_seconds):
            return ReloadResult(SKIPPED, version, rejected.error)
        if self._load_locked(version):
            return ReloadResult(RELOADED, self.version)
        return ReloadResult(REJECTED, version, self.last_error)

    def _load_locked(self, version: str | None) -> bool:
        """Build, smoke-test and swap in a bundle (lock held); False when it is rejected."""
        self._last_attempt = time.monotonic()
        try:
            model = self._loader()
        except Exception as exc:  # any failure: keep serving what we have
            self._reject(version, _describe(exc))
            return False
        if self._smoke is not None:
            try:
                self._smoke(model)
            except Exception as exc:
                self._reject(model.version, f"smoke decision failed: {_describe(exc)}")
                return False
        previous = self.version
        self._current = model  # one reference assignment: atomic for readers
        self._rejected = None
        self.last_error = None
        observability.set_model_version(model.name, model.version)
        observability.record_reload(RELOADED, model.version)
        if previous is not None and previous != model.version:
            log.info("pid %d now serves %s version %s (was %s)", os.getpid(), model.name,
                     model.version, previous)
        return True

    def _reject(self, version: str | None, error: str) -> None:
        """Record and log a rejected load; the current model (if any) keeps serving."""
        observability.record_reload(REJECTED, version)
        self._rejected = ReloadError(version, error, time.time())
        self.last_error = error
        log.warning("model version %s rejected, still serving %s: %s", version or "?",
                    self.version or "nothing", error)


class AliasPoller:
    """A daemon thread calling `store.reload_if_changed()` every `interval` seconds.

    Start it inside the process that serves (a gunicorn worker), never before a fork: threads
    do not survive fork.
    """

    def __init__(self, store: ModelStore, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nba-alias-poller", daemon=True)
        self.pid = os.getpid()

    @property
    def alive(self) -> bool:
        """True while the thread runs in this very process."""
        return self.pid == os.getpid() and self._thread.is_alive()

    def start(self) -> AliasPoller:
        """Start polling; returns self."""
        self._thread.start()
        log.info("pid %d polls the model alias every %gs", self.pid, self._interval)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end and wait up to `timeout` seconds for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        unavailable: str | None = None
        while not self._stop.wait(self._interval):
            try:
                result = self._store.reload_if_changed()
            except Exception:  # never let the poller die: the next poll may succeed
                log.exception("model alias poll failed")
                continue
            # say once that the registry is unreachable, not once per poll
            error = result.error if result.status == UNAVAILABLE else None
            if error is not None and error != unavailable:
                log.warning("cannot check the model alias, still serving %s: %s",
                            self._store.version or "nothing", error)
            unavailable = error
