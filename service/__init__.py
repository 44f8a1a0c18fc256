"""The scoring service: `create_app(settings)` builds a Flask app serving the champion."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from service.model_store import AliasPoller, ModelStore
    from service.settings import ServiceSettings
    from state import StateStore


def create_app(settings: ServiceSettings | None = None, store: ModelStore | None = None,
               state: StateStore | None = None,
               clock: Callable[[], datetime] | None = None) -> Flask:
    """App factory: nothing loads at import time; the model loads here (or on first use).

    `clock` is what decisions read as "now" (the wall clock, UTC, unless a test sets one).

    No thread starts here: gunicorn forks workers after importing the app in some setups, so
    the alias poller is started per worker by `start_polling` (gunicorn.conf.py's hook).
    """
    from flask import Flask

    from service import api, cors, events, limits, observability, openapi, reports_api, staff
    from service.auth import KeyRing
    from service.breaker import CircuitBreaker
    from service.errors import register_error_handlers
    from service.live import LiveStateHandle
    from service.model_store import AliasProbe, ModelStore, load_from_registry
    from service.ratelimit import make_limiter
    from service.redact import Redactor
    from service.registry_access import RegistryAccess
    from service.settings import ServiceSettings
    from state.budget import Timeouts

    settings = settings or ServiceSettings.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if store is None:
        access = RegistryAccess(settings.tracking_uri)  # never creates the registry
        store = ModelStore(lambda: load_from_registry(settings, access), settings.retry_seconds,
                           probe=AliasProbe(settings, access))
        if settings.load_on_start:
            store.try_load()
    app.extensions["nba.settings"] = settings
    app.extensions["nba.redactor"] = Redactor(settings.secret_urls)
    app.extensions["nba.keys"] = KeyRing.parse(settings.api_keys, settings.api_keys_file,
                                               settings.admin_token, settings.dev_mode)
    if settings.dev_mode:
        logging.getLogger(__name__).warning(
            "NBA_DEV_MODE=1: requests without an API key act as admin; never in production")
    app.extensions["nba.model_store"] = store
    app.extensions["nba.rng"] = random.Random(settings.exploration_seed)  # exploration draws
    app.extensions["nba.clock"] = clock or (lambda: datetime.now(UTC))
    # opened lazily in each worker process (a pool must not cross gunicorn's fork)
    app.extensions["nba.state"] = LiveStateHandle(
        settings.state_url, state, Timeouts(settings.state_timeout),
        CircuitBreaker(settings.breaker_failures, settings.breaker_seconds))
    register_error_handlers(app)
    limits.init_app(app, settings)
    app.register_blueprint(api.bp)
    app.register_blueprint(reports_api.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(openapi.bp)
    observability.init_app(app)
    app.extensions["nba.ratelimit"] = make_limiter(
        settings.rate_limit, settings.rate_burst, settings.redis_url,
        CircuitBreaker(settings.breaker_failures, settings.breaker_seconds))
    cors.init_app(app, settings.cors_origins)
    return app


def start_polling(app: Flask) -> AliasPoller | None:
    """Start this process's alias poller for `app` unless NBA_POLL_SECONDS is 0; idempotent."""
    from service.model_store import AliasPoller

    settings: ServiceSettings = app.extensions["nba.settings"]
    if settings.poll_seconds <= 0:
        return None
    poller: AliasPoller | None = app.extensions.get("nba.poller")
    if poller is not None and poller.alive:
        return poller
    # a poller inherited through fork has no thread here: start this process's own
    poller = AliasPoller(app.extensions["nba.model_store"], settings.poll_seconds).start()
    app.extensions["nba.poller"] = poller
    return poller


def stop_polling(app: Flask) -> None:
    """Stop this process's alias poller, if it runs."""
    poller: AliasPoller | None = app.extensions.get("nba.poller")
    if poller is not None and poller.pid == os.getpid():
        poller.stop(timeout=1.0)
