"""Session fixtures: one demo retailer and one really trained, registered champion.

Training is the slow part (real causalml + LightGBM + MLflow), so the suite does it once and
every service, model and integration test reuses that registry.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict, TypeVar
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("OMP_NUM_THREADS", "2")

POSTGRES_URL = os.environ.get("NBA_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
DEMO_CUSTOMERS = 30_000
DEMO_EXPOSURES = 150_000
DEMO_SEED = 11
DEMO_TREES = 120
#: the small retailer and policy of the tests whose subject is not model quality
SMALL_CUSTOMERS = 3_000
SMALL_EXPOSURES = 12_000
SMALL_TREES = 30
#: a one-candidate menu for tests whose subject is not model selection (the menu has its own,
#: cheap tests on small worlds in tests/training)
class Menu(TypedDict):
    """TrainSettings' menu fields."""

    learners: tuple[str, ...]
    capacities: tuple[str, ...]
    rules: tuple[str, ...]
    folds: int


ONE_CANDIDATE: Menu = {"learners": ("s",), "capacities": ("base",), "rules": ("full",),
                       "folds": 2}
ADMIN_TOKEN = "test-admin-token-0001"
STAFF_KEY = "test-staff-key-000002"
STOREFRONT_KEY = "test-storefront-key-03"


@dataclass(frozen=True)
class Trained:
    """A registry with one champion trained on demo data."""

    root: Path
    data_dir: Path
    tracking_uri: str
    model_name: str
    version: str
    metrics: dict[str, float]


def write_demo(folder: Path, customers: int, exposures: int) -> Path:
    """The demo retailer (seed DEMO_SEED) with its true uplift, written into `folder`/data."""
    from nba import demo

    out = folder / "data"
    demo.write(demo.generate(customers, exposures, DEMO_SEED), out)
    return out


def train_champion(data_dir: Path, root: Path, trees: int) -> Trained:
    """Train, register and promote one real policy into a fresh registry under `root`.

    One LightGBM thread: with two, OpenMP's spinning makes fitting 10-50x slower whenever
    anything else holds the other core (measured in bench/), and CI machines have two.
    A one-candidate menu (S-learner, full targeting), cross-fitted on 2 folds of at most
    45,000 rows, keeps this as fast as before the menu; tests/training exercise the menu on
    small worlds of known truth.
    """
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    logging.getLogger("causalml").setLevel(logging.WARNING)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    settings = TrainSettings(data_dir=data_dir, tracking_uri=uri, artifact_root=root / "mlruns",
                             params=replace(BoosterParams(), n_estimators=trees, n_jobs=1),
                             select_rows=45_000, **ONE_CANDIDATE)
    result = train(settings)
    return Trained(root, data_dir, uri, settings.model_name, result.version, result.metrics)


def load_champion(trained: Trained):
    """The champion of `trained` loaded exactly as the service loads it (no holdout)."""
    from service.model_store import load_from_registry
    from service.settings import ServiceSettings

    return load_from_registry(ServiceSettings(tracking_uri=trained.tracking_uri,
                                              data_dir=trained.data_dir, holdout_share=0.0))


T = TypeVar("T")


def once_per_run(factory: pytest.TempPathFactory, name: str,
                 build: Callable[[Path], T]) -> T:
    """`build(folder)` run once per test run, however many pytest-xdist workers ask for it.

    Without xdist this is `build` in a fresh temporary folder. Under xdist every worker is a
    session of its own, so each would redo a session fixture's training; here the first worker
    builds into the run's shared temporary folder under a file lock and the others wait for it
    and read the pickled result. `build` must be seeded (any worker may be the one to run it)
    and its result read-only to the tests.

    A build is tried once per run: if it raises (a pytest-timeout included: the timeout counts
    fixture setup) the builder writes the error beside the folder, and a builder killed outright
    leaves its folder without a result; either way every later worker fails with that first
    error instead of building again into the half-written folder (a half-written mlflow.db).
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(factory.mktemp(name))
    shared = factory.getbasetemp().parent / f"shared-{name}"
    shared.mkdir(exist_ok=True)
    done, failed, built = shared / "result.pickle", shared / "error.txt", shared / "built"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if failed.exists():
            pytest.fail(f"{name} failed to build in another worker: {failed.read_text()}",
                        pytrace=False)
        if not done.exists():
            if built.exists():
                pytest.fail(f"{name}: the worker building {built} died before finishing; "
                            "its own output has the cause", pytrace=False)
            built.mkdir()
            try:
                result = build(built)
            except BaseException as exc:  # pytest's Failed (timeouts) is no Exception
                failed.write_text(f"{type(exc).__name__}: {exc}".strip())
                raise
            done.write_bytes(pickle.dumps(result))
        loaded: T = pickle.loads(done.read_bytes())
        return loaded


def worker_registry(factory: pytest.TempPathFactory, trained: Trained) -> Trained:
    """`trained` with a registry database of this worker's own (the model files stay shared),
    and MLflow's global tracking and registry URIs pointed at it.

    Tests register and promote versions in the session's registry; under xdist two workers
    share one trained policy, so each gets a copy of its database, as one session always had.
    The copy keeps the experiment's absolute artifact_location in the shared folder, so runs a
    test logs there (test_promote's `gate`) write into the shared mlruns: safe, since run ids
    are UUIDs and no test lists that folder.
    """
    from training import registry

    if "PYTEST_XDIST_WORKER" in os.environ:
        root = factory.mktemp("registry")
        shutil.copy(trained.root / "mlflow.db", root / "mlflow.db")
        (root / "mlruns").symlink_to(trained.root / "mlruns")
        trained = replace(trained, root=root, tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    registry.configure(trained.tracking_uri)
    return trained


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo retailer on disk, with its true uplift."""
    return once_per_run(tmp_path_factory, "demo",
                        lambda folder: write_demo(folder, DEMO_CUSTOMERS, DEMO_EXPOSURES))


@pytest.fixture(scope="session")
def trained(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train, register and promote one real policy (the suite's only full training run)."""
    return worker_registry(tmp_path_factory, once_per_run(
        tmp_path_factory, "registry", lambda folder: train_champion(demo_dir, folder, DEMO_TREES)))


@pytest.fixture(scope="session")
def loaded(trained: Trained):
    """The champion loaded exactly as the service loads it."""
    return load_champion(trained)


@pytest.fixture(scope="session")
def small_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo retailer (the full demo's catalog, stock and customer mix), for the folders
    whose subject is not model quality (tests/service, tests/scale override `demo_dir` with it)."""
    return once_per_run(tmp_path_factory, "small-demo",
                        lambda folder: write_demo(folder, SMALL_CUSTOMERS, SMALL_EXPOSURES))


@pytest.fixture(scope="session")
def small_trained(small_demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small policy trained, registered and promoted by the real pipeline, once per session
    for every folder that uses it (they only read its registry and data)."""
    return worker_registry(tmp_path_factory, once_per_run(
        tmp_path_factory, "small-registry",
        lambda folder: train_champion(small_demo_dir, folder, SMALL_TREES)))


@pytest.fixture(scope="session")
def small_loaded(small_trained: Trained):
    """The small policy loaded exactly as the service loads it."""
    return load_champion(small_trained)


@pytest.fixture
def state(tmp_path: Path, demo_dir: Path):
    """A fresh SQLite state store holding the demo inventory (launch holds, caps: empty)."""
    from datetime import UTC, datetime

    from features import io
    from state import open_store
    from state.rows import stock_rows

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    store.replace_inventory(stock_rows(io.read_inventory(demo_dir / io.INVENTORY)),
                            now=datetime.now(UTC))
    yield store
    store.close()


def service_app(trained: Trained, loaded, state, **settings):
    """The Flask app serving `loaded` over `state`, in process: the admin key, no rate limit,
    no holdout and no exploration unless `settings` say otherwise."""
    from service import create_app
    from service.model_store import ModelStore
    from service.settings import ServiceSettings

    store = ModelStore(lambda: loaded)
    store.try_load()
    defaults: dict[str, Any] = {"admin_token": ADMIN_TOKEN, "holdout_share": 0.0,
                                "exploration": 0.0, "rate_limit": 0.0}
    return create_app(ServiceSettings(tracking_uri=trained.tracking_uri,
                                      data_dir=trained.data_dir, **(defaults | settings)),
                      store=store, state=state)


@pytest.fixture
def app(trained: Trained, loaded, state):
    """The Flask app serving the trained champion, with a fresh state store per test."""
    return service_app(trained, loaded, state,
                       api_keys=f"staff:{STAFF_KEY},storefront:{STOREFRONT_KEY}")


@pytest.fixture
def client(app):
    """Flask test client that sends the admin key (auth itself: tests/service/test_auth.py)."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {ADMIN_TOKEN}"
    return test_client


# ---------------------------------------------------------------- state-store backends
# PostgreSQL is part of the contract, not an optional extra: when it cannot be reached the tests
# fail (with the URL and the reason) instead of skipping. NBA_TEST_POSTGRES_URL points them at
# another server.

@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An engine on the test server for creating and dropping per-test schemas."""
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    problem = None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        problem = str(exc.orig).strip().splitlines()[0]
    if problem is not None:  # failed outside the except block: no driver traceback
        engine.dispose()
        pytest.fail(f"PostgreSQL for the state-store tests is unreachable at {POSTGRES_URL} "
                    f"({problem}); start it or set NBA_TEST_POSTGRES_URL", pytrace=False)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin: Engine) -> str:
    """The test server's URL, once it is known to answer."""
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each state-store test runs once per backend."""
    return request.param


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL of an empty store of `backend`, usable from other processes too."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"nba_test_{uuid.uuid4().hex}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        joiner = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{joiner}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Under pytest-xdist, a `solo` test (setup, call, teardown) runs while no other worker runs
    a test: the other worker would starve its wall-clock budgets on a two-core machine."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return (yield)
    from tests import solo

    folder = Path(tempfile.gettempdir()) / f"nba-solo-{run}"
    folder.mkdir(exist_ok=True)
    with solo.hold(folder, exclusive=item.get_closest_marker("solo") is not None):
        return (yield)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the files marked slow first (each file's order kept).

    `--dist loadfile` hands files to the workers in collection order; a long file handed out
    last runs alone while the other worker idles. Starting with the long files (trainings,
    servers) leaves the many short ones to even out the end.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the workers collect; the controller sends
        return
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)  # stable: each file's order kept
