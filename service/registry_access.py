"""The service's only way to the MLflow registry: it never creates one, and recovers by itself.

MLflow creates what it opens: a SQLite registry file that is missing is created empty (and
given MLflow's tables), and so is an empty PostgreSQL database. It also caches its store, with
its engine and pooled connections, per URI for the life of the process, so a worker that once
opened the wrong file (or a file since moved away and back, truncated, or a server since
restarted) kept that handle for good (issue 14). Here:

- `check()` looks at the registry without MLflow first: the SQLite file exists and holds
  MLflow's tables (opened read-only), or the PostgreSQL database answers and holds them. A
  missing or broken registry is a `RegistryUnavailable` that says which, and is retried.
- Every SQLite connection MLflow opens to the registry is opened `mode=rw` (never created), and
  every PostgreSQL one is a `state.budget` connection, bounded by the caller's deadline.
- After any failure, or when the SQLite file is another file than before, MLflow's cached
  stores and engines are dropped, so the next call starts from the registry as it is now.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from state import budget
from training import registry

log = logging.getLogger(__name__)

T = TypeVar("T")
#: the table every MLflow registry has; its absence means "not a registry (yet)"
REGISTRY_TABLE = "registered_models"
#: seconds a registry call (probe, or a whole load's database waits) may take
DEFAULT_TIMEOUT = 15.0

_guarded_sqlite: set[str] = set()
_guarded_postgres: set[tuple[str, str, str]] = set()
_listener_lock = threading.Lock()
_listening = False


class RegistryUnavailable(RuntimeError):
    """The registry is missing, broken or does not answer; the message says which."""


class RegistryAccess:
    """Checked, bounded access to one registry URI (one per worker)."""

    def __init__(self, tracking_uri: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.uri = registry.driver_uri(tracking_uri)
        self.timeout = timeout
        url = make_url(self.uri)
        self.backend = url.get_backend_name()
        self._path: Path | None = None
        if self.backend == "sqlite" and url.database and url.database != ":memory:":
            self._path = Path(url.database).resolve()
            _guard(sqlite_path=str(url.database))
            _guard(sqlite_path=str(self._path))
        elif self.backend == "postgresql":
            _guard(postgres=(url.host or "", str(url.port or 5432), url.database or ""))
        self._identity: tuple[int, int] | None = None
        self._client: Any = None

    def call(self, work: Callable[[Any], T]) -> T:
        """`work(client)` within the timeout; any failure resets MLflow's cached store first."""
        with budget.deadline(self.timeout):
            try:
                return work(self.client())
            except Exception:
                self.reset()
                raise

    def client(self) -> Any:
        """An MlflowClient on the registry as it is now; RegistryUnavailable if it is not there."""
        self.check()
        if self._client is None:
            self._client = registry.configure(self.uri)
        return self._client

    def check(self) -> None:
        """Raise RegistryUnavailable unless the registry exists and holds MLflow's tables."""
        if self.backend == "sqlite" and self._path is not None:
            self._check_sqlite(self._path)
        elif self.backend == "postgresql":
            self._check_postgres()

    def reset(self) -> None:
        """Forget MLflow's stores and engines for this URI: the next call reconnects."""
        self._client = None
        forget_mlflow_stores(self.uri)

    def _check_sqlite(self, path: Path) -> None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise RegistryUnavailable(f"registry file {path.name} not found (moved or deleted?);"
                                      " not creating one: train with `nba train`") from None
        identity = (stat.st_dev, stat.st_ino)
        if self._identity is not None and identity != self._identity:
            log.warning("registry file %s was replaced; reconnecting", path.name)
            self.reset()
        self._identity = identity
        try:
            with _closing(sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True,
                                          timeout=self.timeout)) as conn:
                found = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                     "AND name = ?", (REGISTRY_TABLE,)).fetchone()[0]
        except sqlite3.Error as exc:
            raise RegistryUnavailable(f"registry file {path.name} cannot be read: {exc}") from None
        if not found:
            raise RegistryUnavailable(f"registry file {path.name} has no MLflow tables (empty or "
                                      "truncated?); not creating them")

    def _check_postgres(self) -> None:
        url = make_url(self.uri)
        params: dict[str, Any] = {k: v for k, v in url.query.items() if isinstance(v, str)}
        params.setdefault("connect_timeout", "5")
        try:
            conn = budget.timed_connection_class().connect(
                host=url.host, port=url.port, user=url.username, password=url.password,
                dbname=url.database, **params)
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (REGISTRY_TABLE,))
                    row = cursor.fetchone()
            finally:
                conn.close()
        except Exception as exc:
            raise RegistryUnavailable(f"registry database does not answer: "
                                      f"{_first_line(exc)}") from None
        if not row or not row[0]:
            raise RegistryUnavailable("registry database has no MLflow tables; not creating "
                                      "them: train with `nba train`")


def forget_mlflow_stores(uri: str) -> None:
    """Drop MLflow's per-URI store caches and dispose of its engines for `uri`."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    for store_registry in (registry_utils._get_store_registry(),
                           tracking_utils._tracking_store_registry):
        type(store_registry)._get_store_with_resolved_uri.cache_clear()
    for store in (RegistryStore, TrackingStore):
        with store._engine_map_lock:
            engines = [store._engine_map.pop(key) for key in list(store._engine_map)
                       if key == uri]
        for engine in engines:
            engine.dispose()


def _guard(*, sqlite_path: str | None = None,
           postgres: tuple[str, str, str] | None = None) -> None:
    """Register a registry database with the process-wide connect hook (installed once)."""
    global _listening
    with _listener_lock:
        if sqlite_path is not None:
            _guarded_sqlite.add(sqlite_path)
        if postgres is not None:
            _guarded_postgres.add(postgres)
        if not _listening:
            event.listen(Engine, "do_connect", _guarded_connect)
            _listening = True


def _guarded_connect(dialect: Any, _record: Any, cargs: list[Any],
                     cparams: dict[str, Any]) -> Any:
    """Open registry connections without creating anything, and bounded by the deadline."""
    if dialect.name == "sqlite" and cargs and cargs[0] in _guarded_sqlite:
        cargs[0] = f"file:{quote(str(Path(cargs[0]).resolve()))}?mode=rw"
        cparams["uri"] = True
        return None  # the dialect connects, with the rewritten arguments
    if dialect.name == "postgresql" and dialect.driver == "psycopg" and (
            str(cparams.get("host", "")), str(cparams.get("port", 5432)),
            str(cparams.get("dbname", ""))) in _guarded_postgres:
        return budget.timed_connection_class().connect(*cargs, **cparams)
    return None


@contextmanager
def _closing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield conn
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
