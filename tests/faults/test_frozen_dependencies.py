"""A frozen or stopped dependency costs a request at most its budget, never a worker.

PostgreSQL frozen by SIGSTOP (the kernel still ACKs TCP; no server-side time-out can fire): a
request waits at most NBA_STATE_TIMEOUT, then answers 503 with Retry-After; /healthz never
waits; gunicorn never has to kill a worker. Redis frozen or down: after a few failures the
breaker stops asking it, requests go through at full speed, and the warnings come once per
interval. Nothing a client received is lost: every decision answered 200 is in the log.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import redis

from state import open_store
from tests.conftest import STOREFRONT_KEY
from tests.faults.conftest import serve, wait_until
from tests.integration.servers import call

pytestmark = [pytest.mark.slow, pytest.mark.solo]
BUDGET = 1.0  # NBA_STATE_TIMEOUT of these servers (base_env)


class Clients:
    """Threads deciding in a loop; what each request got, and how long it took."""

    def __init__(self, base: str, n: int = 4, headers: dict | None = None) -> None:
        self.base, self.headers = base, headers or {}
        self.results: list[tuple[float, float, int, dict]] = []  # (start, seconds, status, body)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        ends = time.monotonic() + 120  # bounded whatever happens
        while not self._stop.is_set() and time.monotonic() < ends:
            started = time.monotonic()
            try:
                status, body = call(f"{self.base}/v1/decisions",
                                    {"customer_id": f"C{rng.randint(1, 30_000):07d}",
                                     "channel": "app"}, self.headers)
            except OSError:
                status, body = -1, {}
            self.results.append((started, time.monotonic() - started, status, body))

    def between(self, start: float, end: float) -> list[tuple[float, float, int, dict]]:
        """Requests started in [start, end)."""
        return [r for r in self.results if start <= r[0] < end]

    def received(self) -> list[str]:
        """Decision ids the clients got a 200 for."""
        return [r[3]["decision_id"] for r in self.results if r[2] == 200]


def worker_pids(base: str, workers: int = 2, seconds: float = 60) -> set[int]:
    """The pids of the workers answering: asks until `workers` have (a worker still loading
    its model at start answers nothing), for at most `seconds`."""
    seen: set[int] = set()
    ends = time.monotonic() + seconds
    while len(seen) < workers and time.monotonic() < ends:
        status, body = call(f"{base}/v1/model")
        if status == 200:
            seen.add(body["worker_pid"])
        else:
            time.sleep(0.1)
    return seen


def timed(url: str, headers: dict | None = None) -> tuple[float, int, dict]:
    started = time.monotonic()
    status, body = call(url, headers=headers)
    return time.monotonic() - started, status, body


def test_frozen_postgres_costs_a_request_its_budget_and_never_a_worker(base_env, pg_up,
                                                                      state_url, tmp_path):
    env = base_env | {"NBA_STATE_URL": state_url}
    with serve(env, tmp_path / "server.log") as server:
        pids = worker_pids(server.base)
        with Clients(server.base, n=2) as clients:  # one per worker: no queueing in the figures
            time.sleep(2)
            frozen_at = time.monotonic()
            pg_up.freeze()
            time.sleep(4)  # the breakers have opened
            health = [timed(f"{server.base}/healthz") for _ in range(5)]
            ready = timed(f"{server.base}/readyz")
            time.sleep(4)
            thawed_at = time.monotonic()
            pg_up.thaw()
            time.sleep(5)
        during = clients.between(frozen_at + 0.1, thawed_at - BUDGET)
        # the breaker asks again within 2 s (NBA_BREAKER_SECONDS' default)
        after = clients.between(thawed_at + 3, time.monotonic())
        assert during and after
        # each request within its budget (plus the decision itself and a loaded machine); once
        # the breaker is open, at once
        slowest = max(seconds for _, seconds, _, _ in during)
        fast = sum(seconds < 0.2 for _, seconds, _, _ in during) / len(during)
        print(f"frozen PostgreSQL: slowest request {slowest:.2f} s, {fast:.0%} under 0.2 s, "
              f"{len(during)} requests")
        # a new connection waits at least libpq's 2 s floor for a server that does not answer
        assert slowest < max(BUDGET, 2.0) + 0.75 and fast > 0.8
        odd = [(status, body) for _, _, status, body in during if status != 503]
        assert not odd, odd[:3]
        assert {body["error"]["code"] for _, _, _, body in during} == {"state_store_unavailable"}
        assert sum(status == 200 for _, _, status, _ in after) >= 0.9 * len(after)
        # /healthz touches nothing; at worst it waits behind one half-open probe of a worker
        assert all(seconds < BUDGET + 0.5 and status == 200 for seconds, status, _ in health)
        assert sorted(seconds for seconds, _, _ in health)[2] < 0.2
        assert ready[0] < BUDGET + 1.0 and ready[1] == 503
        error = ready[2]["error"]
        assert error["code"] == "state_store_unavailable" and "state_store" in error["details"]
        # the same workers still serve: none was killed or timed out
        assert worker_pids(server.base) == pids and len(pids) == 2
        log = "\n".join(server.lines())
        assert "WORKER TIMEOUT" not in log and "Worker exiting" not in log
        assert log.count('"level": "WARNING", "logger": "service.errors"') <= 2 * len(pids) * 2
    with open_store(state_url) as store:
        logged = set(store.log.decisions_frame()["decision_id"])
    missing = [d for d in clients.received() if d not in logged]
    assert not missing, f"{len(missing)} decisions answered but not logged"


def test_stopped_postgres_answers_503_and_the_service_recovers_when_it_is_back(
        base_env, pg_up, state_url, tmp_path):
    env = base_env | {"NBA_STATE_URL": state_url}
    with serve(env, tmp_path / "server.log") as server, Clients(server.base, n=2) as clients:
        time.sleep(1)
        pg_up.stop()
        stopped_at = time.monotonic()
        time.sleep(3)
        ready = call(f"{server.base}/readyz")
        pg_up.start()
        started_at = time.monotonic()
        wait_until(lambda: call(f"{server.base}/readyz")[0] == 200, 20)
        time.sleep(2)
    down = clients.between(stopped_at + 0.5, started_at)
    assert down and all(status == 503 for _, _, status, _ in down)
    assert max(seconds for _, seconds, _, _ in down) < BUDGET + 1.5
    assert ready[0] == 503 and "state_store" in ready[1]["error"]["details"]
    assert clients.results[-1][2] == 200
    with open_store(state_url) as store:
        logged = set(store.log.decisions_frame()["decision_id"])
    assert set(clients.received()) <= logged


def test_frozen_or_down_redis_costs_nothing_once_the_breaker_opens(base_env, redis_server,
                                                                  tmp_path: Path):
    keys = f"storefront:{STOREFRONT_KEY}"
    env = base_env | {"NBA_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
                      "NBA_DEV_MODE": "0", "NBA_API_KEYS": keys, "NBA_REDIS_URL":
                      redis_server.url, "NBA_RATE_LIMIT": "1000", "NBA_RATE_BURST": "1000",
                      "NBA_BREAKER_SECONDS": "2"}
    auth = {"Authorization": f"Bearer {STOREFRONT_KEY}"}
    with serve(env, tmp_path / "server.log") as server, \
            Clients(server.base, n=2, headers=auth) as clients:
        time.sleep(3)
        frozen_at = time.monotonic()
        redis_server.freeze()
        time.sleep(6)
        redis_server.thaw()
        redis_server.stop()
        down_at = time.monotonic()
        time.sleep(6)
        redis_server.start()
        back_at = time.monotonic()
        # Redis is asked again once it is back (the breaker's probe): bucket keys reappear
        client = redis.Redis.from_url(redis_server.url)
        wait_until(lambda: client.keys("nba:ratelimit:*"), 10,
                   lambda: f"{client.dbsize()} keys; {clients.results[-3:]}; "
                           f"{[x for x in server.lines() if 'ratelimit' in x][-5:]}")
    before = clients.between(frozen_at - 3, frozen_at)
    frozen = clients.between(frozen_at + 1, down_at)
    down = clients.between(down_at + 1, back_at)
    rate = {name: len(part) / seconds for name, part, seconds in
            (("before", before, 3), ("frozen", frozen, down_at - frozen_at - 1),
             ("down", down, back_at - down_at - 1))}
    print("decisions/s:", {k: round(v) for k, v in rate.items()})
    # before: ~10 req/s a frozen Redis allowed (each waited out the socket time-out)
    assert rate["frozen"] > 0.5 * rate["before"] and rate["down"] > 0.5 * rate["before"]
    assert all(status == 200 for part in (frozen, down) for _, _, status, _ in part)
    warnings = [line for line in server.lines() if "rate limiter: Redis unavailable" in line]
    # at most one per worker per 30 s (and one more when the breaker re-opens after a probe)
    assert 1 <= len(warnings) <= 6, warnings
