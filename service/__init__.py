"""The scoring service: `create_app(settings)` builds a Flask app serving the champion."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from service.model_store import ModelStore
    from service.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None, store: ModelStore | None = None) -> Flask:
    """App factory: nothing loads at import time; the model loads here (or on first use)."""
    from flask import Flask

    from service import api
    from service.errors import register_error_handlers
    from service.model_store import ModelStore, load_from_registry
    from service.settings import ServiceSettings

    settings = settings or ServiceSettings.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if store is None:
        store = ModelStore(lambda: load_from_registry(settings), settings.retry_seconds)
        if settings.load_on_start:
            store.try_load()
    app.extensions["nba.settings"] = settings
    app.extensions["nba.model_store"] = store
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    return app
