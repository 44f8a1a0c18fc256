"""Typed service settings from NBA_* environment variables (and MLFLOW_TRACKING_URI)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceSettings:
    """Where the champion and the online tables come from."""

    tracking_uri: str = "sqlite:///mlflow.db"
    model_name: str = "nba-policy"
    model_alias: str = "champion"
    data_dir: Path = Path("data")
    load_on_start: bool = True
    retry_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServiceSettings:
        """Build from the environment; unset variables keep the defaults."""
        env = dict(os.environ if env is None else env)
        return cls(
            tracking_uri=env.get("MLFLOW_TRACKING_URI", cls.tracking_uri),
            model_name=env.get("NBA_MODEL_NAME", cls.model_name),
            model_alias=env.get("NBA_MODEL_ALIAS", cls.model_alias),
            data_dir=Path(env.get("NBA_DATA_DIR", str(cls.data_dir))),
            retry_seconds=float(env.get("NBA_RETRY_SECONDS", cls.retry_seconds)),
        )
