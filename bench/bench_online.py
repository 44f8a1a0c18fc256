"""Online throughput and latency under load: `nba serve` (gunicorn) vs `mlflow models serve`.

Run from the repo root: `.venv/bin/python bench/bench_online.py` (about 3 minutes on 2 cores).
Writes bench/results/online.md.

For each catalog (the demo's 12 offers, and 50 offers: the demo's offers plus clones of its
non-launch offers with new ids, margins and scaled true-uplift functions), one demo champion is
trained in a temporary MLflow store and served twice, both listening on loopback at the same time
with two worker processes each: `nba serve --workers 2` (gunicorn sync workers, live state in
SQLite, decision log on) and `mlflow models serve --env-manager local --workers 2` (uvicorn) on
the same registered version. `wrk` (Debian's package) drives each at 1, 4 and 16 connections,
bounded by seconds and by request count; its Lua script cycles POST bodies over every customer
in random order. Our request names the customer; MLflow's equivalent carries the customer's
row (`dataframe_split`) and the same `params`. Every request comes on a new connection
(`Connection: close`): gunicorn's sync workers close after each response anyway, and uvicorn on
a kept-alive connection stalls each response by TCP's delayed ACK (about 40 ms: p50 52 ms at
concurrency 1 instead of 9 ms), which would flatter our ratio. Without `wrk` on PATH, a Python
client with one thread per connection stands in (its own overhead then shows in the figures).

`--sweep` also measures gunicorn settings (worker class, worker count, threads, preload) on the
12-offer champion through GUNICORN_CMD_ARGS, which overrides service/gunicorn.conf.py, into
bench/results/gunicorn.md (not part of `make bench`).
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import argparse
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import profile_workers
from common import markdown_table, publish, quiet_logging, tree_memory_mb

from features import io
from features.catalog import Catalog
from nba import demo
from training.pipeline import train
from training.settings import BoosterParams, TrainSettings

CUSTOMERS = 20_000
EXPOSURES = 80_000
#: the 50-offer champion's training data: fewer exposures keep its 50 fits short; a booster's
#: serving cost depends on its trees (TREES, 15 leaves), hardly on the rows it was fitted on
WIDE_EXPOSURES = 40_000
SEED = 3
TREES = 150
#: fixed: the tuning split would double the training time and changes no serving cost
SHRINKAGE = 0.5
CATALOG_SIZES = (12, 50)
CONCURRENCY = (1, 4, 16)
WORKERS = 2
SECONDS = 5
MAX_REQUESTS = 20_000
WARMUP_SECONDS = 1
PROFILE_SECONDS = 6  # py-spy sampling of the workers, once, for the 12-offer catalog
PROFILED_OFFERS = 12
PARAMS = {"channel": "web", "limit": 3, "store_id": ""}
BIN = Path(sys.executable).parent
NBA = str(BIN / "nba")
MLFLOW = str(BIN / "mlflow")
#: gunicorn settings compared by --sweep: (label, GUNICORN_CMD_ARGS)
SWEEP = (("sync, 2 workers (shipped)", ""),
         ("sync, 3 workers", "--workers 3"),
         ("sync, 4 workers", "--workers 4"),
         ("gthread, 2 workers x 4 threads", "--worker-class gthread --threads 4"),
         ("gthread, 1 worker x 8 threads", "--workers 1 --worker-class gthread --threads 8"),
         ("sync, 2 workers, preload_app", "--preload"))

WRK_SCRIPT = """\
-- POST bodies read from a file (one JSON document a line), cycled from an offset (or GET with
-- no body when the 4th argument says GET); the run stops after `limit` responses (or wrk's -d);
-- done() prints one JSON line of results.
local bodies, i, count, limit, method = {}, 0, 0, 0, "POST"
local headers = {["Content-Type"] = "application/json", ["Connection"] = "close"}

function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  i = tonumber(args[2]) % #bodies
  limit = tonumber(args[3])
  method = args[4] or "POST"
end

function request()
  i = i % #bodies + 1
  if method == "GET" then return wrk.format("GET", nil, headers, nil) end
  return wrk.format("POST", nil, headers, bodies[i])
end

function response(status, headers, body)
  count = count + 1
  if count >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50": %d, "p95": %d, "p99": %d, "max": %d}\\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


# ------------------------------------------------------------------ demo data and champions

def wide_catalog(base: Catalog, size: int) -> Catalog:
    """`base` grown to `size` offers by cloning its non-launch offers under new ids.

    Clone k of an offer (k = 2, 3, ...) gets margin x (0.7 + 0.15 k); launches are not cloned,
    so a decision still checks the demo's two launches and no more.
    """
    regular = [offer for offer in base.offers if offer.launch is None]
    offers = list(base.offers)
    for i in range(size - len(offers)):
        source, copy = regular[i % len(regular)], i // len(regular) + 2
        offers.append(source.model_copy(update={
            "offer_id": f"{source.offer_id}_{copy}", "name": f"{source.name} ({copy})",
            "margin": round(source.margin * (0.7 + 0.15 * copy), 2)}))
    return Catalog(control_label=base.control_label, offers=tuple(offers),
                   contact_policy=base.contact_policy)


def wide_truth(customers: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """True uplift for a widened catalog: clone k scales its source's function by 0.5 + 0.25 k."""
    functions = demo._uplift_functions()
    base = demo.baseline_conversion(customers)
    data = {"customer_id": customers["customer_id"].to_numpy(), "baseline_conversion": base}
    for offer_id in catalog.offer_ids:
        if offer_id in functions:
            lift = functions[offer_id](customers)
        else:
            source, _, copy = offer_id.rpartition("_")
            lift = (0.5 + 0.25 * int(copy)) * functions[source](customers)
        data[offer_id] = np.clip(base + lift, 0.0, 1.0) - base
    return pd.DataFrame(data)


def demo_data(offers: int, customers: int = CUSTOMERS, exposures: int = EXPOSURES,
              seed: int = SEED) -> demo.DemoData:
    """The demo retailer; with more than its 12 offers, the widened catalog and its truth.

    Uses the generator's private steps: the same customers, exposure log and stock, only the
    catalog and the true uplift differ.
    """
    if offers <= 12:
        return demo.generate(customers, exposures, seed)
    now = datetime.now(UTC)
    rng = np.random.default_rng(seed)
    catalog = wide_catalog(demo.demo_catalog(now), offers)
    people = demo._customers(customers, rng)
    truth = wide_truth(people, catalog)
    log = demo._exposures(people, truth, catalog, exposures, rng, now,
                          np.random.default_rng([seed, 1]))
    return demo.DemoData(catalog, people, log, demo._inventory(rng), truth)


@dataclass(frozen=True)
class Champion:
    """A trained, registered and promoted demo policy and where it lives."""

    root: Path
    data_dir: Path
    tracking_uri: str
    version: str
    offers: int
    train_seconds: float

    @property
    def uri(self) -> str:
        """The registered version's model URI (what `mlflow models serve -m` takes)."""
        return f"models:/nba-policy/{self.version}"


def train_champion(root: Path, offers: int = 12, customers: int = CUSTOMERS,
                   exposures: int = EXPOSURES, trees: int = TREES) -> Champion:
    """Write demo data into root/data and register a champion in root/mlflow.db."""
    data_dir = root / "data"
    demo.write(demo_data(offers, customers, exposures), data_dir)
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    started = time.perf_counter()
    result = train(TrainSettings(data_dir=data_dir, tracking_uri=tracking_uri,
                                 artifact_root=root / "mlruns", shrinkage=SHRINKAGE,
                                 params=BoosterParams(n_estimators=trees, n_jobs=2)))
    return Champion(root, data_dir, tracking_uri, result.version, offers,
                    time.perf_counter() - started)


# ------------------------------------------------------------------ servers

def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_json(url: str, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
    """POST a JSON body; (status, decoded body) for 2xx and 4xx/5xx alike."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def get_status(url: str) -> int | None:
    """Status of a GET, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def nba_env(champion: Champion, state_db: Path, extra: dict[str, str] | None = None
            ) -> dict[str, str]:
    """Environment of a benchmarked `nba serve`: dev mode, no rate limit, access log or poller."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NBA_") and k != "GUNICORN_CMD_ARGS"}
    env.update({"NBA_DEV_MODE": "1", "NBA_RATE_LIMIT": "0", "NBA_ACCESS_LOG": "",
                "NBA_POLL_SECONDS": "0", "NBA_STATE_URL": f"sqlite:///{state_db}",
                "MLFLOW_TRACKING_URI": champion.tracking_uri,
                "NBA_DATA_DIR": str(champion.data_dir)})
    env.update(extra or {})
    return env


def load_stock(champion: Champion, state_db: Path) -> None:
    """`nba inventory load` of the demo stock into a fresh state store."""
    subprocess.run([NBA, "inventory", "load", str(champion.data_dir / io.INVENTORY),
                    "--state-url", f"sqlite:///{state_db}"], check=True,
                   stdout=subprocess.DEVNULL, env=nba_env(champion, state_db))


@dataclass
class Server:
    """A started server process: its base URL and when it was launched."""

    process: subprocess.Popen
    base: str
    started: float
    log_path: Path

    def stop(self) -> None:
        """SIGTERM to its process group (uvicorn and gunicorn workers too), then SIGKILL."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # launched in a session of its own
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def wait(self, ready: Callable[[], bool], timeout: float = 180.0) -> float:
        """Poll `ready` until it holds; seconds since launch. Raises if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return time.perf_counter() - self.started
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout:.0f} s:\n"
                           f"{self.log_path.read_text()[-4000:]}")


def launch(argv: list[str], env: dict[str, str], port: int, log_path: Path) -> Server:
    """Start a server process with its output in log_path."""
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return Server(process, f"http://127.0.0.1:{port}", started, log_path)


def load_customers(champion: Champion, state_db: Path) -> None:
    """`nba customers load` of the demo customers into the state store's profiles."""
    subprocess.run([NBA, "customers", "load", str(champion.data_dir / io.CUSTOMERS),
                    "--state-url", f"sqlite:///{state_db}"], check=True,
                   stdout=subprocess.DEVNULL, env=nba_env(champion, state_db))


@contextmanager
def nba_server(champion: Champion, root: Path, workers: int = WORKERS,
               gunicorn_args: str = "", wait: bool = True,
               extra_env: dict[str, str] | None = None,
               customers_from: str = "file") -> Iterator[Server]:
    """`nba serve` on a free port with a fresh state store holding the demo stock (and, with
    customers_from="store", the demo customers as profiles, read with each decision)."""
    root.mkdir(parents=True, exist_ok=True)
    state_db = root / "state.db"
    load_stock(champion, state_db)
    if customers_from == "store":
        load_customers(champion, state_db)
    port = free_port()
    env = nba_env(champion, state_db, ({"GUNICORN_CMD_ARGS": gunicorn_args} if gunicorn_args
                                       else {}) | (extra_env or {})
                  | {"NBA_CUSTOMERS_FROM": customers_from})
    server = launch([NBA, "serve", "--port", str(port), "--workers", str(workers)], env, port,
                    root / "gunicorn.log")
    try:
        if wait:
            server.wait(lambda: get_status(f"{server.base}/readyz") == 200)
        yield server
    finally:
        server.stop()


@contextmanager
def mlflow_server(champion: Champion, root: Path, workers: int = WORKERS,
                  wait: bool = True) -> Iterator[Server]:
    """`mlflow models serve` of the champion's registered version, on a free port."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # MLflow starts `uvicorn` by name: the venv's bin must be on PATH
    env = dict(os.environ, MLFLOW_TRACKING_URI=champion.tracking_uri, OMP_NUM_THREADS="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    server = launch([MLFLOW, "models", "serve", "-m", champion.uri, "--env-manager", "local",
                     "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)], env, port,
                    root / "mlflow.log")
    try:
        if wait:
            server.wait(lambda: get_status(f"{server.base}/ping") == 200)
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------ requests and load

def customer_rows(champion: Champion) -> pd.DataFrame:
    """The champion's customers.parquet, in a seeded random order."""
    frame = pd.read_parquet(champion.data_dir / io.CUSTOMERS)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def nba_bodies(frame: pd.DataFrame) -> list[dict]:
    """Our request for each customer: the id, the channel and the limit."""
    return [{"customer_id": cid, "channel": PARAMS["channel"], "limit": PARAMS["limit"]}
            for cid in frame["customer_id"]]


def mlflow_bodies(frame: pd.DataFrame) -> list[dict]:
    """MLflow's equivalent: the customer's row as a one-row `dataframe_split`, same params."""
    split = json.loads(frame.to_json(orient="split", index=False, date_format="iso"))
    columns = split["columns"]
    return [{"dataframe_split": {"columns": columns, "data": [row]}, "params": PARAMS}
            for row in split["data"]]


def check_nba(base: str, body: dict) -> None:
    """One decision must come back 200 with offers accounted for, before any load."""
    status, answer = post_json(f"{base}/v1/decisions", body)
    if status != 200 or "offers" not in answer:
        raise RuntimeError(f"nba serve answered {status}: {answer}")


def check_mlflow(base: str, body: dict) -> None:
    """One prediction must come back 200 with ranked rows, before any load."""
    status, answer = post_json(f"{base}/invocations", body)
    if status != 200 or not answer.get("predictions"):
        raise RuntimeError(f"mlflow models serve answered {status}: {answer}")


@dataclass(frozen=True)
class Load:
    """One load run's results (latencies in ms)."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50: float
    p95: float
    p99: float

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds


def run_wrk(url: str, bodies_file: Path, script: Path, connections: int, seconds: float,
            limit: int, offset: int, method: str = "POST") -> Load:
    """One wrk run (one thread: the cores belong to the servers)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(script), url, "--", str(bodies_file), str(offset), str(limit), method]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    return Load(result["requests"], result["seconds"], result["non_2xx"],
                result["socket_errors"], result["p50"] / 1e3, result["p95"] / 1e3,
                result["p99"] / 1e3)


def run_python(url: str, bodies: Sequence[bytes], connections: int, seconds: float,
               limit: int, offset: int, method: str = "POST") -> Load:
    """The stand-in load generator: `connections` threads, one keep-alive connection each."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    failures = [0, 0]  # non-2xx, socket errors
    counter = [offset]

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.perf_counter() < deadline:
            with lock:
                if len(latencies) >= limit:
                    break
                counter[0] += 1
                body = bodies[counter[0] % len(bodies)]
            started = time.perf_counter()
            try:
                conn.request(method, path, body if method == "POST" else None,
                             {"Content-Type": "application/json", "Connection": "close"})
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 300
                conn.close()
            except OSError:
                conn.close()
                with lock:
                    failures[1] += 1
                continue
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                failures[0] += not ok
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ms = np.array(latencies) * 1e3
    return Load(len(ms), time.perf_counter() - started, failures[0], failures[1],
                *(float(np.percentile(ms, q)) if len(ms) else float("nan")
                  for q in (50, 95, 99)))


class LoadGenerator:
    """wrk when installed (else the Python client), with the bodies written once per target."""

    def __init__(self, root: Path) -> None:
        self.wrk = shutil.which("wrk") is not None
        self.root = root
        self.script = root / "bodies.lua"
        self.script.write_text(WRK_SCRIPT)
        self.runs = 0

    @property
    def name(self) -> str:
        """What drives the load, for the report."""
        return "wrk (one thread)" if self.wrk else "Python client (threads, keep-alive)"

    def target(self, url: str, bodies: list[dict] | None = None
               ) -> Callable[[int, float, int], Load]:
        """A function (connections, seconds, limit) -> Load: POSTs of these bodies to `url`,
        or GETs of `url` without bodies."""
        method = "POST" if bodies is not None else "GET"
        lines = [json.dumps(b, separators=(",", ":")) for b in bodies] if bodies else [""]
        path = self.root / f"bodies-{abs(hash(url))}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        encoded = [line.encode() for line in lines]

        def run(connections: int, seconds: float, limit: int) -> Load:
            self.runs += 1
            offset = (self.runs * 7919) % len(lines)  # each run starts on other customers
            if self.wrk:
                return run_wrk(url, path, self.script, connections, seconds, limit, offset,
                               method)
            return run_python(url, encoded, connections, seconds, limit, offset, method)

        return run


def measure(run: Callable[[int, float, int], Load], levels: Sequence[int] = CONCURRENCY,
            seconds: float = SECONDS) -> dict[int, Load]:
    """A short warm-up at the highest level, then each concurrency level in turn."""
    run(max(levels), WARMUP_SECONDS, MAX_REQUESTS)
    return {c: run(c, seconds, MAX_REQUESTS) for c in levels}


# ------------------------------------------------------------------ the benchmark

@dataclass(frozen=True)
class CatalogResult:
    """Both servers' loads for one catalog size."""

    champion: Champion
    ours: dict[int, Load]
    mlflow: dict[int, Load]
    ours_ready: float
    mlflow_ready: float
    profile: Counter[str] | None = None  # our workers' CPU samples by layer (py-spy)
    http_floor: dict[int, Load] | None = None  # GET /healthz on our server: no decision at all


def bench_catalog(champion: Champion, loads: LoadGenerator) -> CatalogResult:
    """Start both servers (side by side, idle when not measured) and load each in turn."""
    frame = customer_rows(champion)
    ours_bodies, mlflow_bodies_ = nba_bodies(frame), mlflow_bodies(frame)
    with ExitStack() as stack:
        ours = stack.enter_context(nba_server(champion, champion.root / "nba", wait=False))
        theirs = stack.enter_context(mlflow_server(champion, champion.root / "mlflow",
                                                   wait=False))
        ours_ready = ours.wait(lambda: get_status(f"{ours.base}/readyz") == 200)
        mlflow_ready = theirs.wait(lambda: get_status(f"{theirs.base}/ping") == 200)
        check_nba(ours.base, ours_bodies[0])
        check_mlflow(theirs.base, mlflow_bodies_[0])
        print(f"  {champion.offers} offers: servers up; loading ...", file=sys.stderr,
              flush=True)
        ours_target = loads.target(f"{ours.base}/v1/decisions", ours_bodies)
        ours_loads = measure(ours_target)
        profile = http_floor = None
        if champion.offers == PROFILED_OFFERS:
            profile = profile_under_load(ours_target, ours.process.pid)
            http_floor = measure(loads.target(f"{ours.base}/healthz"))
        mlflow_loads = measure(loads.target(f"{theirs.base}/invocations", mlflow_bodies_))
    return CatalogResult(champion, ours_loads, mlflow_loads, ours_ready, mlflow_ready, profile,
                         http_floor)


def profile_under_load(run: Callable[[int, float, int], Load], master_pid: int
                       ) -> Counter[str] | None:
    """py-spy samples of every worker while the load runs at the highest concurrency."""
    print("  profiling the workers under load (py-spy) ...", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(run, max(CONCURRENCY), PROFILE_SECONDS + 2, 10**9)
        time.sleep(1)  # past connection ramp-up
        layers = profile_workers.sample(profile_workers.worker_pids(master_pid),
                                        PROFILE_SECONDS)
        load.result()
    return layers


def floor_section(result: CatalogResult) -> list[str]:
    """Decisions beside GET /healthz on the same server: what the HTTP stack alone allows."""
    if not result.http_floor:
        return []
    floor, ours, theirs = result.http_floor, result.ours, result.mlflow
    rows = [(str(c), f"{floor[c].rate:,.0f}", f"{floor[c].p99:.1f}", f"{ours[c].rate:,.0f}",
             f"{ours[c].rate / floor[c].rate:.0%}", f"{10 * theirs[c].rate:,.0f}")
            for c in CONCURRENCY]
    return [
        "### The HTTP stack's own ceiling (same server, same load generator)",
        "",
        "`GET /healthz` answers without a model, a store or a log: gunicorn, Flask, our request "
        "hooks (request id, metrics) and the TCP connection per request.",
        "",
        markdown_table(("concurrency", "GET /healthz /s", "p99 ms", "decisions/s",
                        "decisions / healthz", "10x MLflow would need /s"), rows),
        "",
    ]


def profile_section(layers: Counter[str] | None) -> list[str]:
    """The profile table, or a line saying why there is none."""
    if not layers:
        return ["- no profile: py-spy missing or not allowed to attach (ptrace)", ""]
    total = sum(layers.values())
    rows = [(layer, f"{n / total:.0%}") for layer, n in layers.most_common()]
    return [
        f"### Where a worker's CPU goes under load ({PROFILED_OFFERS} offers, concurrency "
        f"{max(CONCURRENCY)})",
        "",
        f"py-spy, {PROFILE_SECONDS} s at 200 Hz on every worker ({total:,} samples); each "
        "sample charged to the innermost frame in a known layer (`bench/profile_workers.py`).",
        "",
        markdown_table(("layer", "share of samples"), rows),
        "",
    ]


def load_row(label: str, c: int, load: Load, ratio: str) -> tuple[str, ...]:
    """One table row: server, concurrency, requests, rate, percentiles, errors, ratio."""
    return (label, str(c), f"{load.requests:,}", f"{load.rate:,.0f}", f"{load.p50:.1f}",
            f"{load.p95:.1f}", f"{load.p99:.1f}", f"{load.non_2xx + load.socket_errors}", ratio)


def report(results: list[CatalogResult], loads: LoadGenerator, setup_s: float,
           load: float) -> str:
    """The markdown section: one table per catalog, then the targets."""
    header = ("server", "concurrency", "requests", "decisions/s", "p50 ms", "p95 ms", "p99 ms",
              "errors", "ours / MLflow")
    sections = []
    for result in results:
        rows = []
        for c in CONCURRENCY:
            ours, theirs = result.ours[c], result.mlflow[c]
            rows.append(load_row("`nba serve`", c, ours, f"**{ours.rate / theirs.rate:.1f}x**"))
            rows.append(load_row("`mlflow models serve`", c, theirs, ""))
        sections += [f"### {result.champion.offers} offers (model version "
                     f"{result.champion.version}; trained in "
                     f"{result.champion.train_seconds:.0f} s)", "",
                     markdown_table(header, rows), "",
                     f"- ready after launch: `nba serve` {result.ours_ready:.1f} s, "
                     f"`mlflow models serve` {result.mlflow_ready:.1f} s", ""]
        if result.champion.offers == PROFILED_OFFERS:
            sections += floor_section(result) + profile_section(result.profile)
    twelve = next((r for r in results if r.champion.offers == 12), None)
    targets = []
    if twelve is not None:
        worst = min(twelve.ours[c].rate / twelve.mlflow[c].rate for c in CONCURRENCY)
        p99 = twelve.ours[max(CONCURRENCY)].p99
        targets = [
            f"- target >= 10x MLflow's throughput (12 offers, lowest ratio over 1/4/16): "
            f"{worst:.1f}x: **{'met' if worst >= 10 else 'not met'}**",
            f"- target p99 <= 10 ms at concurrency {max(CONCURRENCY)} (12 offers): "
            f"{p99:.1f} ms: **{'met' if p99 <= 10 else 'not met'}**",
        ]
    return "\n".join([
        "## Online throughput and latency (loopback, 2 workers each)",
        "",
        f"Demo data seed {SEED}: {CUSTOMERS:,} customers, {EXPOSURES:,} exposures "
        f"({WIDE_EXPOSURES:,} for the 50-offer catalog); {TREES} trees per booster; shrinkage "
        f"fixed at {SHRINKAGE}. Load: {loads.name}, {SECONDS} s or "
        f"{MAX_REQUESTS:,} requests per point after a {WARMUP_SECONDS} s warm-up; POST bodies "
        "cycle over every customer in random order, each on a new connection. "
        "`nba serve --workers 2`: nginx in front of gunicorn sync "
        "workers, dev mode, no rate limit, no access log, live state and decision log in SQLite, "
        "holdout and exploration at their defaults. `mlflow models serve --env-manager local "
        "-w 2` on the same registered version, the customer's row as a one-row "
        "`dataframe_split` with the same params. Both servers and the load generator share the "
        f"machine's {len(os.sched_getaffinity(0))} cores (load average before: {load:.2f}). "
        f"Setup (data, training): {setup_s:.0f} s.",
        "",
        *sections,
        *targets,
        "",
    ])


def sweep(champion: Champion, loads: LoadGenerator) -> str:
    """gunicorn settings on the 12-offer champion: rate and tail at 16 connections, start time."""
    frame = customer_rows(champion)
    bodies = nba_bodies(frame)
    rows = []
    for i, (label, args) in enumerate(SWEEP):
        print(f"  sweep: {label} ...", file=sys.stderr, flush=True)
        with nba_server(champion, champion.root / f"sweep-{i}", gunicorn_args=args) as server:
            ready = time.perf_counter() - server.started
            check_nba(server.base, bodies[0])
            results = measure(loads.target(f"{server.base}/v1/decisions", bodies), (4, 16))
            rss = tree_memory_mb(server.process.pid)
        rows.append((label, f"{ready:.1f}", f"{rss:,.0f}",
                     *(f"{results[c].rate:,.0f}" for c in (4, 16)),
                     f"{results[16].p50:.1f}", f"{results[16].p99:.1f}"))
    return "\n".join([
        "### gunicorn settings (12 offers, GUNICORN_CMD_ARGS over service/gunicorn.conf.py)",
        "",
        markdown_table(("setting", "ready s", "memory MB (PSS, all processes)", "decisions/s @4",
                        "decisions/s @16", "p50 ms @16", "p99 ms @16"), rows),
        "",
    ])


def customer_sources(champion: Champion, loads: LoadGenerator, rounds: int = 2) -> str:
    """`nba serve` with customers from customers.parquet (held whole in every worker) vs from
    the state store's profiles (read in the decision's one statement), same champion, same
    bodies, side by side; measured in alternation (`rounds` times each, best rate kept) so
    drifting load on a shared machine hits both alike."""
    bodies = nba_bodies(customer_rows(champion))
    best: dict[str, dict[int, Load]] = {}
    with ExitStack() as stack:
        servers = {source: stack.enter_context(nba_server(
            champion, champion.root / f"customers-{source}", customers_from=source))
            for source in ("file", "store")}
        for server in servers.values():
            check_nba(server.base, bodies[0])
        targets = {source: loads.target(f"{server.base}/v1/decisions", bodies)
                   for source, server in servers.items()}
        for _ in range(rounds):
            for source, target in targets.items():
                measured = measure(target)
                kept = best.setdefault(source, measured)
                for c, run in measured.items():
                    if run.rate > kept[c].rate:
                        kept[c] = run
    rows = []
    for c in CONCURRENCY:
        file, store = best["file"][c], best["store"][c]
        rows.append(load_row("file (customers.parquet in each worker)", c, file, ""))
        rows.append(load_row("store (profile read with the decision)", c, store,
                             f"{store.rate / file.rate:.2f}x rate, "
                             f"{store.p50 / file.p50:.2f}x p50, "
                             f"{store.p99 / file.p99:.2f}x p99"))
    worst = min(best["store"][c].rate / best["file"][c].rate for c in CONCURRENCY)
    return "\n".join([
        "### Customers from the file vs from the state store (12 offers)",
        "",
        f"The same champion and request bodies ({CUSTOMERS:,} demo customers) on two "
        "`nba serve --workers 2`, each with its own SQLite state store: NBA_CUSTOMERS_FROM=file "
        "(customers.parquet held whole in every worker) and NBA_CUSTOMERS_FROM=store (profiles "
        "loaded by `nba customers load`, each read in the statement that reads the decision's "
        f"live state). Measured in alternation, {rounds} rounds each, best rate kept.",
        "",
        markdown_table(("customers from", "concurrency", "requests", "decisions/s", "p50 ms",
                        "p95 ms", "p99 ms", "errors", "store / file"), rows),
        "",
        f"- target: online decisions/s within 10% of today's (file) with the store read: lowest "
        f"store/file rate over 1/4/16 connections {worst:.2f}x: "
        f"**{'met' if worst >= 0.9 else 'not met'}**",
        "",
    ])


def main() -> None:
    """Train the two champions, load both servers for each, and publish the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true",
                        help="also compare gunicorn settings (about 1 more minute)")
    parser.add_argument("--offers", type=int, nargs="+", default=list(CATALOG_SIZES),
                        help="catalog sizes (default %(default)s)")
    parser.add_argument("--customers-only", action="store_true",
                        help="only compare customers from the file vs from the state store "
                             "(12 offers) into bench/results/online-customers.md")
    args = parser.parse_args()
    quiet_logging()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    if args.customers_only:
        with tempfile.TemporaryDirectory(prefix="nba-bench-online-") as tmp:
            loads = LoadGenerator(Path(tmp))
            champion = train_champion(Path(tmp) / "offers-12", 12)
            section = customer_sources(champion, loads)
        publish("online-customers.md", "\n".join([
            f"_Measured {datetime.now(UTC):%Y-%m-%d}; load: {loads.name}, {SECONDS} s or "
            f"{MAX_REQUESTS:,} requests per point; load average before {load:.2f}, after "
            f"{os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} shared cores._", "",
            section]))
        print(f"bench_online: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory(prefix="nba-bench-online-") as tmp:
        loads = LoadGenerator(Path(tmp))
        results = []
        setup_s = 0.0
        for offers in args.offers:
            print(f"training the {offers}-offer champion ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            champion = train_champion(Path(tmp) / f"offers-{offers}", offers,
                                      exposures=EXPOSURES if offers <= 12 else WIDE_EXPOSURES)
            setup_s += time.perf_counter() - t0
            results.append(bench_catalog(champion, loads))
            if offers == 12:
                sources_md = customer_sources(champion, loads, rounds=1)
            if args.sweep and offers == 12:
                sweep_md = sweep(champion, loads)
        markdown = report(results, loads, setup_s, load)
        if 12 in args.offers:
            markdown += "\n" + sources_md
    publish("online.md", markdown)
    if args.sweep:  # not part of `make bench`: its own file, kept until the next sweep
        publish("gunicorn.md", f"_Measured {datetime.now(UTC):%Y-%m-%d}._\n\n{sweep_md}")
    print(f"bench_online: {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
