"""ModelStore hot reload: atomic swaps, rejected versions, cheap polls (fake bundles, fast)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from decisioning.decision import Decision
from decisioning.reasons import Suppression
from service.model_store import (
    BUSY,
    REJECTED,
    RELOADED,
    SKIPPED,
    UNAVAILABLE,
    UNCHANGED,
    AliasPoller,
    LoadedModel,
    ModelNotReady,
    ModelStore,
    smoke_decision,
)
from service.settings import ServiceSettings


@dataclass
class FakeCatalog:
    offers: tuple[str, ...] = ("a", "b")


@dataclass
class FakePolicy:
    """Decides by suppressing every offer; or raises, like a broken booster would."""

    broken: bool = False
    catalog: FakeCatalog = field(default_factory=FakeCatalog)

    def decide_row(self, table, row, context, snapshot=None, settings=None) -> Decision:
        if self.broken:
            raise RuntimeError("booster exploded")
        return Decision((), tuple(Suppression(o, "outranked", "-") for o in self.catalog.offers))


def fake_model(policy: FakePolicy, version: str, customers: list[str]) -> LoadedModel:
    """A LoadedModel of fakes: only what ModelStore and smoke_decision use."""
    return LoadedModel(cast(Any, policy), "m", version, "champion", None, {},
                       cast(Any, customers))


def bundle(version: str, broken: bool = False) -> LoadedModel:
    return fake_model(FakePolicy(broken), version, ["C0000001"])


class Registry:
    """The alias and the bundles behind each version, as the store's loader and probe see them."""

    def __init__(self, version: str = "1") -> None:
        self.alias: str | None = version
        self.bundles = {version: bundle(version)}
        self.loads = 0
        self.probes = 0

    def probe(self) -> str | None:
        self.probes += 1
        return self.alias

    def load(self) -> LoadedModel:
        self.loads += 1
        if self.alias is None:
            raise ModelNotReady("no champion")
        return self.bundles[self.alias]  # KeyError: a version whose artifacts are gone

    def promote(self, version: str, model: LoadedModel | None = None) -> None:
        if model is not None:
            self.bundles[version] = model
        self.alias = version


def store_for(reg: Registry, **kwargs) -> ModelStore:
    store = ModelStore(reg.load, probe=reg.probe, **kwargs)
    assert store.try_load()
    return store


def test_reload_if_changed_does_nothing_when_the_version_is_the_same():
    reg = Registry()
    store = store_for(reg)
    first = store.current()
    for _ in range(3):
        assert store.reload_if_changed().status == UNCHANGED
    assert reg.loads == 1 and reg.probes == 3
    assert store.current() is first


def test_a_moved_alias_swaps_in_the_new_version():
    reg = Registry()
    store = store_for(reg)
    reg.promote("2", bundle("2"))
    result = store.reload_if_changed()
    assert (result.status, result.version) == (RELOADED, "2")
    assert store.version == "2" and store.current() is reg.bundles["2"]
    assert store.last_reload_error is None


def test_swap_is_atomic_and_requests_never_wait_for_a_load():
    reg = Registry()
    store = store_for(reg)
    old, new = store.current(), bundle("2")
    loading, release = threading.Event(), threading.Event()

    def slow_load() -> LoadedModel:
        loading.set()
        release.wait(10)
        return new

    store._loader = slow_load
    reg.promote("2")
    reloader = threading.Thread(target=store.reload_if_changed)
    reloader.start()
    try:
        assert loading.wait(5)
        started = time.perf_counter()
        seen = {store.current().version for _ in range(1000)}
        assert seen == {"1"} and time.perf_counter() - started < 1.0  # never blocked
        assert store.reload_if_changed().status == BUSY  # a second load does not queue up
    finally:
        release.set()
        reloader.join(10)
    assert store.current() is new and old.version == "1"


def test_readers_always_see_one_whole_bundle_while_versions_swap():
    reg = Registry()
    store = store_for(reg)
    stop, problems = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            model = store.current()
            if model is not reg.bundles.get(model.version):
                problems.append(model.version)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for v in range(2, 40):
        reg.promote(str(v), bundle(str(v)))
        assert store.reload_if_changed().status == RELOADED
    stop.set()
    for reader in readers:
        reader.join(5)
    assert problems == [] and store.version == "39"


def test_a_failing_loader_keeps_the_old_model_and_records_the_error(caplog):
    reg = Registry()
    store = store_for(reg)
    reg.promote("2")  # no bundle behind version 2: the loader raises
    with caplog.at_level(logging.WARNING, logger="service.model_store"):
        result = store.reload_if_changed()
    assert (result.status, result.version) == (REJECTED, "2")
    assert store.ready and store.current().version == "1"
    error = store.last_reload_error
    assert error["version"] == "2" and "KeyError" in error["error"]
    assert abs(error["at"] - time.time()) < 5 and error["at_iso"].startswith("20")
    assert any("version 2 rejected, still serving 1" in r.getMessage() for r in caplog.records)


def test_a_version_failing_the_smoke_decision_is_rejected():
    reg = Registry()
    store = store_for(reg)
    reg.promote("2", bundle("2", broken=True))
    result = store.reload_if_changed()
    assert result.status == REJECTED and "smoke decision failed" in result.error
    assert "booster exploded" in store.last_reload_error["error"]
    assert store.current().version == "1"


def test_smoke_decision_needs_every_catalog_offer_accounted_for():
    model = bundle("1")
    model.policy.catalog.offers = ("a", "b")
    smoke_decision(model)
    lying = bundle("2")
    lying.policy.decide_row = lambda *args, **kwargs: Decision((), ())
    with pytest.raises(ValueError, match="accounts for 0 of 2"):
        smoke_decision(lying)
    empty = fake_model(FakePolicy(), "3", [])
    with pytest.raises(ValueError, match="empty"):
        smoke_decision(empty)


def test_smoke_decision_passes_on_the_real_champion(loaded):
    smoke_decision(loaded)


def test_a_rejected_version_is_not_reloaded_each_poll_but_an_admin_retry_is():
    reg = Registry()
    store = store_for(reg)
    reg.promote("2", bundle("2", broken=True))
    assert store.reload_if_changed().status == REJECTED
    assert reg.loads == 2
    assert store.reload_if_changed().status == SKIPPED
    assert reg.loads == 2  # one cheap alias query, no load
    assert store.reload_if_changed(retry_rejected=True).status == REJECTED
    assert reg.loads == 3


def test_moving_the_alias_off_a_rejected_version_clears_the_error():
    reg = Registry()
    store = store_for(reg)
    reg.promote("2", bundle("2", broken=True))
    store.reload_if_changed()
    reg.promote("1")  # rolled back: the error is history
    assert store.reload_if_changed().status == UNCHANGED
    assert store.last_reload_error is None
    reg.promote("2")
    store.reload_if_changed()
    reg.promote("3", bundle("3"))
    assert store.reload_if_changed().status == RELOADED
    assert store.last_reload_error is None and store.version == "3"


def test_an_unreachable_registry_or_a_missing_alias_keeps_serving():
    reg = Registry()
    store = store_for(reg)
    reg.alias = None
    assert store.reload_if_changed().status == UNAVAILABLE

    def down() -> str:
        raise ConnectionError("registry down")

    store._probe = down
    result = store.reload_if_changed()
    assert result.status == UNAVAILABLE and "registry down" in result.error
    # still serving, and saying why no reload can happen (issue 14: it said nothing)
    assert store.current().version == "1"
    assert "registry unavailable" in store.last_reload_error["error"]
    store._probe = reg.probe
    reg.alias = "1"
    assert store.reload_if_changed().status == UNCHANGED and store.last_reload_error is None
    assert ModelStore(reg.load).reload_if_changed().status == UNAVAILABLE  # no probe at all


def test_with_nothing_serving_a_rejected_version_is_retried_after_retry_seconds():
    reg = Registry()
    reg.promote("1", bundle("1", broken=True))
    store = ModelStore(reg.load, 0.2, probe=reg.probe)
    assert not store.try_load() and not store.ready
    assert store.reload_if_changed().status == SKIPPED  # too soon
    time.sleep(0.25)
    assert store.reload_if_changed().status == REJECTED
    reg.promote("1", bundle("1"))
    time.sleep(0.25)
    assert store.reload_if_changed().status == RELOADED and store.ready


def test_a_request_never_waits_behind_a_first_load_in_progress():
    release = threading.Event()

    def slow_load() -> LoadedModel:
        release.wait(10)
        return bundle("1")

    store = ModelStore(slow_load, 0.0)
    loader = threading.Thread(target=store.try_load)
    loader.start()
    try:
        time.sleep(0.05)
        started = time.perf_counter()
        with pytest.raises(ModelNotReady):
            store.current()
        assert time.perf_counter() - started < 1.0
    finally:
        release.set()
        loader.join(10)
    assert store.current().version == "1"


def test_the_poller_follows_the_alias_and_survives_errors():
    reg = Registry()
    store = store_for(reg)
    poller = AliasPoller(store, 0.02).start()
    try:
        reg.promote("2", bundle("2"))
        deadline = time.monotonic() + 5
        while store.version != "2" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.version == "2"
        store.reload_if_changed = lambda: 1 / 0  # an unexpected bug in one poll
        time.sleep(0.1)
        assert poller.alive
    finally:
        poller.stop(timeout=2)
    assert not poller.alive


def test_polling_starts_only_when_configured_and_once_per_process():
    from service import create_app, start_polling, stop_polling

    reg = Registry()
    off = create_app(ServiceSettings(poll_seconds=0), store=store_for(reg))
    assert start_polling(off) is None
    on = create_app(ServiceSettings(poll_seconds=30), store=store_for(reg))
    assert "nba.poller" not in on.extensions  # create_app itself starts no thread
    poller = start_polling(on)
    try:
        assert poller is not None and poller.alive and start_polling(on) is poller
    finally:
        stop_polling(on)
    assert not poller.alive


def test_settings_read_poll_interval_and_admin_token_from_the_environment():
    assert ServiceSettings.from_env({}).poll_seconds == 10
    assert ServiceSettings.from_env({}).admin_token is None
    settings = ServiceSettings.from_env({"NBA_POLL_SECONDS": "0",
                                         "NBA_ADMIN_TOKEN": " s3cret\n"})
    assert settings.poll_seconds == 0 and settings.admin_token == "s3cret"
    assert "s3cret" not in repr(settings)
    assert ServiceSettings.from_env({"NBA_ADMIN_TOKEN": ""}).admin_token is None
    assert ServiceSettings.from_env({"NBA_POLL_SECONDS": "2.5"}).poll_seconds == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        with pytest.raises(ValueError, match="NBA_POLL_SECONDS"):
            ServiceSettings.from_env({"NBA_POLL_SECONDS": bad})
