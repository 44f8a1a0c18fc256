"""Per-key rate limits: a token bucket, in Redis when several workers or hosts share it.

Each API key (by its id, never the key) has a bucket of `burst` tokens refilled at `rate` per
second; a request takes one token or gets 429 with `Retry-After`. With NBA_REDIS_URL the bucket
lives in Redis and is updated by one Lua script (atomic, on Redis's own clock), so the limit holds
across every worker and host. Without it each worker keeps its own buckets (the effective limit
is then rate x workers). If Redis does not answer, requests are let through and the failure is
logged: the limiter protects the service, it must not take it down. A circuit breaker stops
asking a Redis that failed several times in a row (a frozen one costs each call its socket
time-out) until a probe succeeds, and the warnings come at most once per 30 s.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from service.breaker import CircuitBreaker
from service.throttle import ThrottledLog

log = logging.getLogger(__name__)

_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go ahead, and if not, how long until a token is back."""

    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for the Retry-After header (at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


class Limiter(Protocol):
    """Takes one token from a key's bucket."""

    def take(self, key_id: str) -> Verdict: ...


class MemoryLimiter:
    """Buckets in this process (one gunicorn worker)."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> Verdict:
        """One token, or the wait until the next one."""
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(self.burst, tokens + max(0.0, now - then) * self.rate)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return Verdict(True)
            self._buckets[key_id] = (tokens, now)
            return Verdict(False, (1 - tokens) / self.rate)


class RedisLimiter:
    """Buckets in Redis, shared by every worker and host."""

    def __init__(self, url: str, rate: float, burst: int, prefix: str = "nba:ratelimit:",
                 breaker: CircuitBreaker | None = None) -> None:
        import redis

        self.rate, self.burst, self.prefix = rate, burst, prefix
        self._client = redis.Redis.from_url(url, socket_timeout=0.2,
                                            socket_connect_timeout=0.2)
        self._script = self._client.register_script(_LUA)
        self.breaker = breaker or CircuitBreaker()
        self._warn = ThrottledLog(log)

    def take(self, key_id: str) -> Verdict:
        """One token, or the wait; fails open (allowed) when Redis does not answer."""
        import redis

        if not self.breaker.allow():
            return Verdict(True)
        try:
            allowed, wait = self._script(keys=[self.prefix + key_id],
                                         args=[self.rate, self.burst])
        except redis.RedisError as exc:
            opened = self.breaker.failed()
            self._warn.warning("redis", "rate limiter: Redis unavailable (%s); letting "
                               "requests through%s", type(exc).__name__,
                               f"; not asking it for {self.breaker.seconds:g} s" if opened
                               else "")
            return Verdict(True)
        self.breaker.succeeded()
        return Verdict(bool(int(allowed)), float(wait))


def make_limiter(rate: float, burst: int, redis_url: str | None,
                 breaker: CircuitBreaker | None = None) -> Limiter | None:
    """The limiter the settings ask for; None when rate limiting is off (rate 0)."""
    if rate <= 0:
        return None
    if redis_url:
        return RedisLimiter(redis_url, rate, burst, breaker=breaker)
    return MemoryLimiter(rate, burst)
