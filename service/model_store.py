"""The loaded champion: an immutable bundle, swapped atomically under a lock.

A request takes one reference to the current bundle and uses only it, so a reload never mixes
two models inside one decision. The store is ready only once a bundle has loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow.pyfunc

from features import io
from features.customers import CustomerTable
from service.errors import ModelNotReady
from service.inventory import InventoryIndex
from service.settings import ServiceSettings
from training import registry
from training.package import Policy

log = logging.getLogger(__name__)


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
    stock: InventoryIndex
    loaded_at: float = field(default_factory=time.time)


def load_from_registry(settings: ServiceSettings) -> LoadedModel:
    """Load `models:/<name>@<alias>` and build the online tables with its feature spec."""
    client = registry.configure(settings.tracking_uri)
    ref = registry.get_alias(client, settings.model_name, settings.model_alias)
    if ref is None:
        raise ModelNotReady(
            f"no version of '{settings.model_name}' has alias '{settings.model_alias}' in "
            f"{settings.tracking_uri}; train one with `nba train` or promote with `nba promote`"
        )
    started = time.perf_counter()
    pyfunc = mlflow.pyfunc.load_model(registry.model_uri(settings.model_name,
                                                         settings.model_alias))
    policy: Policy = pyfunc.unwrap_python_model().policy
    customers = policy.customers(io.read_customers(settings.data_dir / io.CUSTOMERS, policy.spec))
    inventory_path = settings.data_dir / io.INVENTORY
    stock = (InventoryIndex.from_frame(io.read_inventory(inventory_path))
             if inventory_path.exists() else InventoryIndex.empty())
    metrics = client.get_run(ref.run_id).data.metrics if ref.run_id else {}
    log.info("loaded %s version %s (%s) with %d customers in %.2fs", ref.name, ref.version,
             ref.alias, len(customers), time.perf_counter() - started)
    return LoadedModel(policy, ref.name, ref.version, ref.alias, ref.run_id, dict(metrics),
                       customers, stock)


class ModelStore:
    """Holds the current LoadedModel; `current()` raises ModelNotReady until one has loaded."""

    def __init__(self, loader: Callable[[], LoadedModel], retry_seconds: float = 5.0) -> None:
        self._loader = loader
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._last_attempt = 0.0
        self.last_error: str | None = None

    @property
    def ready(self) -> bool:
        """True once a model has loaded."""
        return self._current is not None

    def current(self) -> LoadedModel:
        """The model to decide with; retries a failed load at most every retry_seconds."""
        model = self._current
        if model is not None:
            return model
        if time.monotonic() - self._last_attempt >= self._retry_seconds:
            self.try_load()
            model = self._current
            if model is not None:
                return model
        raise ModelNotReady(self.last_error or "model is loading")

    def try_load(self) -> bool:
        """Load and swap in a new model; on failure keep the old one and record the error."""
        with self._lock:
            self._last_attempt = time.monotonic()
            try:
                model = self._loader()
            except Exception as exc:  # any failure: keep serving what we have
                self.last_error = str(exc) if isinstance(exc, ModelNotReady) else (
                    f"{type(exc).__name__}: {exc}")
                log.warning("model load failed: %s", self.last_error)
                return False
            self._current = model  # one reference assignment: atomic for readers
            self.last_error = None
            return True
