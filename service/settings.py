"""Typed service settings from NBA_* environment variables (and MLFLOW_TRACKING_URI)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from decisioning.decision import DEFAULT_HOLDOUT_SHARE, DEFAULT_SALT, DecisionSettings
from state.urls import DEFAULT_URL
from training.settings import DEFAULT_MODEL_NAME, DEFAULT_TRACKING_URI

#: NBA_CUSTOMERS_FROM values; "auto" (the service's default): "store" when the state store
#: holds customer profiles at model load, else "file"
CUSTOMER_SOURCES = ("auto", "file", "store")
AUTO = "auto"


@dataclass(frozen=True)
class ServiceSettings:
    """Where the champion and the online tables come from, and how it is kept fresh."""

    #: the MLflow registry; may hold a password: never in logs or answers unmasked
    tracking_uri: str = field(default=DEFAULT_TRACKING_URI, repr=False)
    model_name: str = DEFAULT_MODEL_NAME
    model_alias: str = "champion"
    data_dir: Path = Path("data")
    #: the shared state store (stock, launch holds, contact caps, decision log); password-free
    #: URLs only in logs: see state.StateStore.url
    state_url: str = field(default=DEFAULT_URL, repr=False)
    #: where a decision's customer row comes from: "store" (the state store's profiles, read
    #: in the decision's one round trip; memory does not grow with customers), "file"
    #: (data_dir/customers.parquet, held whole in every worker) or "auto" (store when the
    #: store holds profiles at model load; NBA_CUSTOMERS_FROM's default). "file" here: code
    #: that builds settings itself (CLI, tests, benches) never opens a store to find out
    customers_from: str = "file"
    load_on_start: bool = True
    retry_seconds: float = 5.0
    #: seconds between checks of the alias in each gunicorn worker; 0 disables polling
    poll_seconds: float = 10.0
    #: share of customers in the global holdout (no offers; measures incrementality)
    holdout_share: float = DEFAULT_HOLDOUT_SHARE
    #: share of decisions that serve a random eligible offer first (logged propensities)
    exploration: float = 0.05
    #: seed of the exploration draws (None: fresh randomness; set for reproducible tests)
    exploration_seed: int | None = None
    #: salt of the holdout hash: a new salt draws a new holdout group
    experiment_salt: str = DEFAULT_SALT
    #: an admin API key (kept for compatibility with NBA_ADMIN_TOKEN; repr=False: never logged)
    admin_token: str | None = field(default=None, repr=False)
    #: API keys "role:key,role:key" (roles storefront, staff, admin) and/or a file of them
    api_keys: str | None = field(default=None, repr=False)
    api_keys_file: Path | None = None
    #: development mode: requests without a key act as admin (never in production)
    dev_mode: bool = False
    #: per-key token bucket: requests per second (0 = off) and burst; Redis shares it
    rate_limit: float = 100.0
    rate_burst: int = 200
    redis_url: str | None = field(default=None, repr=False)
    #: browser origins of storefronts allowed to call the API (CORS)
    cors_origins: tuple[str, ...] = ()
    #: request bodies above this are refused with 413 before they are read; PUT /v1/inventory
    #: (admin, up to 10,000 rows) has its own cap
    max_body_bytes: int = 256 * 1024
    bulk_body_bytes: int = 4 * 1024 * 1024
    #: deepest nesting of arrays and objects a JSON body may have (deeper: 400)
    max_json_depth: int = 16
    #: the decision `context` object: keys, nesting and serialized size
    context_max_keys: int = 32
    context_max_depth: int = 3
    context_max_bytes: int = 4096
    #: seconds the state store may take inside one request, all its calls together; also the
    #: PostgreSQL statement time-out (lock waits get half) and SQLite's lock wait
    state_timeout: float = 2.0
    #: Redis (rate limits) and the state store: consecutive failures that open a dependency's
    #: circuit breaker, and seconds it stays open before one probe call
    breaker_failures: int = 3
    breaker_seconds: float = 2.0

    @property
    def secret_urls(self) -> tuple[str | None, ...]:
        """Every configured URL that may hold a password (see service.redact)."""
        return (self.tracking_uri, self.state_url, self.redis_url)

    def decision_settings(self) -> DecisionSettings:
        """The decision core's experiment settings (the same holdout on every path)."""
        return DecisionSettings(self.holdout_share, self.experiment_salt, self.exploration)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServiceSettings:
        """Build from the environment; unset variables keep the defaults."""
        env = dict(os.environ if env is None else env)
        return cls(
            tracking_uri=env.get("MLFLOW_TRACKING_URI", cls.tracking_uri),
            model_name=env.get("NBA_MODEL_NAME", cls.model_name),
            model_alias=env.get("NBA_MODEL_ALIAS", cls.model_alias),
            data_dir=Path(env.get("NBA_DATA_DIR", str(cls.data_dir))),
            state_url=env.get("NBA_STATE_URL", "").strip() or DEFAULT_URL,
            customers_from=_choice("NBA_CUSTOMERS_FROM", env.get("NBA_CUSTOMERS_FROM"),
                                   AUTO, CUSTOMER_SOURCES),
            retry_seconds=float(env.get("NBA_RETRY_SECONDS", cls.retry_seconds)),
            poll_seconds=_seconds("NBA_POLL_SECONDS", env.get("NBA_POLL_SECONDS"),
                                  cls.poll_seconds),
            admin_token=(env.get("NBA_ADMIN_TOKEN") or "").strip() or None,
            api_keys=(env.get("NBA_API_KEYS") or "").strip() or None,
            api_keys_file=Path(env["NBA_API_KEYS_FILE"]) if env.get("NBA_API_KEYS_FILE")
            else None,
            dev_mode=env.get("NBA_DEV_MODE", "").strip().lower() in ("1", "true", "yes"),
            rate_limit=_number("NBA_RATE_LIMIT", env.get("NBA_RATE_LIMIT"), cls.rate_limit,
                               lambda v: v >= 0, "requests per second >= 0 (0 = off)"),
            rate_burst=int(_number("NBA_RATE_BURST", env.get("NBA_RATE_BURST"), cls.rate_burst,
                                   lambda v: v >= 1 and v == int(v), "a whole number >= 1")),
            redis_url=(env.get("NBA_REDIS_URL") or "").strip() or None,
            cors_origins=tuple(o.strip() for o in env.get("NBA_CORS_ORIGINS", "").split(",")
                               if o.strip()),
            holdout_share=_share("NBA_HOLDOUT_SHARE", env.get("NBA_HOLDOUT_SHARE"),
                                 cls.holdout_share),
            exploration=_share("NBA_EXPLORATION", env.get("NBA_EXPLORATION"), cls.exploration),
            exploration_seed=int(env["NBA_EXPLORATION_SEED"]) if env.get("NBA_EXPLORATION_SEED")
            else None,
            experiment_salt=env.get("NBA_EXPERIMENT_SALT", "").strip() or cls.experiment_salt,
            max_body_bytes=_whole("NBA_MAX_BODY_BYTES", env, cls.max_body_bytes, 1024),
            bulk_body_bytes=_whole("NBA_MAX_BULK_BODY_BYTES", env, cls.bulk_body_bytes, 1024),
            max_json_depth=_whole("NBA_MAX_JSON_DEPTH", env, cls.max_json_depth, 4),
            context_max_keys=_whole("NBA_CONTEXT_MAX_KEYS", env, cls.context_max_keys, 1),
            context_max_depth=_whole("NBA_CONTEXT_MAX_DEPTH", env, cls.context_max_depth, 1),
            context_max_bytes=_whole("NBA_CONTEXT_MAX_BYTES", env, cls.context_max_bytes, 64),
            state_timeout=_number("NBA_STATE_TIMEOUT", env.get("NBA_STATE_TIMEOUT"),
                                  cls.state_timeout, lambda v: 0.05 <= v <= 300,
                                  "a number of seconds between 0.05 and 300"),
            breaker_failures=_whole("NBA_BREAKER_FAILURES", env, cls.breaker_failures, 1),
            breaker_seconds=_number("NBA_BREAKER_SECONDS", env.get("NBA_BREAKER_SECONDS"),
                                    cls.breaker_seconds, lambda v: 0.1 <= v <= 3600,
                                    "a number of seconds between 0.1 and 3600"),
        )


def _choice(name: str, raw: str | None, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive), the default when unset; ValueError otherwise."""
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw.strip().lower()


def _whole(name: str, env: dict[str, str], default: int, least: int) -> int:
    """A whole number >= `least` from `env[name]`, the default when unset; ValueError otherwise."""
    return int(_number(name, env.get(name), default, lambda v: v >= least and v == int(v),
                       f"a whole number >= {least}"))


def _share(name: str, raw: str | None, default: float) -> float:
    """A share in [0, 0.5], or a ValueError naming the variable."""
    return _number(name, raw, default, lambda v: 0.0 <= v <= 0.5, "a share between 0 and 0.5")


def _seconds(name: str, raw: str | None, default: float) -> float:
    """A non-negative number of seconds, or a ValueError naming the variable."""
    return _number(name, raw, default, lambda v: math.isfinite(v) and v >= 0,
                   "a number of seconds >= 0 (0 disables)")


def _number(name: str, raw: str | None, default: float, ok: Callable[[float], bool],
            what: str) -> float:
    """`raw` as a number that passes `ok`; the default when unset; ValueError otherwise."""
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not ok(value):
        raise ValueError(f"{name} must be {what}, got {raw!r}")
    return value
