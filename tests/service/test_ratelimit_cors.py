"""Per-key token buckets (in memory and in a real Redis) and CORS for storefront origins."""

from __future__ import annotations

import uuid

import pytest

from service.ratelimit import MemoryLimiter, RedisLimiter
from tests.conftest import STOREFRONT_KEY

REDIS_URL = "redis://127.0.0.1:6379/15"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_memory_bucket_allows_the_burst_then_refills_at_the_rate():
    clock = Clock()
    limiter = MemoryLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("k").allowed for _ in range(4)] == [True, True, True, False]
    denied = limiter.take("k")
    assert denied.retry_after == pytest.approx(0.5) and denied.retry_after_header == "1"
    clock.now = 0.5
    assert limiter.take("k").allowed and not limiter.take("k").allowed
    assert limiter.take("other").allowed  # buckets are per key


def test_redis_bucket_is_shared_by_every_worker():
    prefix = f"nba:test:{uuid.uuid4().hex}:"
    workers = [RedisLimiter(REDIS_URL, rate=0.001, burst=5, prefix=prefix) for _ in range(3)]
    allowed = sum(workers[i % 3].take("key").allowed for i in range(12))
    assert allowed == 5  # one bucket across "workers", not 5 each
    verdict = workers[0].take("key")
    assert not verdict.allowed and verdict.retry_after > 100


def test_redis_unavailable_fails_open():
    limiter = RedisLimiter("redis://127.0.0.1:1/0", rate=1.0, burst=1)
    assert all(limiter.take("key").allowed for _ in range(3))


def limited_app(trained, loaded, state, **settings):
    from service import create_app
    from service.model_store import ModelStore
    from service.settings import ServiceSettings

    store = ModelStore(lambda: loaded)
    store.try_load()
    return create_app(ServiceSettings(tracking_uri=trained.tracking_uri,
                                      data_dir=trained.data_dir, holdout_share=0.0,
                                      api_keys=f"storefront:{STOREFRONT_KEY}", **settings),
                      store=store, state=state)


def test_over_the_limit_is_429_with_retry_after(trained, loaded, state):
    app = limited_app(trained, loaded, state, rate_limit=0.01, rate_burst=2)
    client = app.test_client()
    body = {"customer_id": "C0000002", "channel": "web"}
    headers = {"Authorization": f"Bearer {STOREFRONT_KEY}"}
    statuses = [client.post("/v1/decisions", json=body, headers=headers) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    limited = statuses[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.get_json()["error"]["code"] == "rate_limited"


def test_cors_answers_preflights_and_tags_allowed_origins_only(trained, loaded, state):
    app = limited_app(trained, loaded, state, cors_origins=("https://shop.example.com",))
    client = app.test_client()
    preflight = client.options("/v1/decisions", headers={
        "Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    allowed = client.post("/v1/decisions", json={"customer_id": "C0000002", "channel": "web"},
                          headers={"Origin": "https://shop.example.com",
                                   "Authorization": f"Bearer {STOREFRONT_KEY}"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    other = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    refused = client.options("/v1/decisions", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers
