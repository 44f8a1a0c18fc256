"""The `nba` command's settings: typed, read from the environment once, in `main()`.

Every flag that has an environment variable takes its default from here, so `--help` shows the
value in force and no parser reads the environment itself. Empty variables count as unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from decisioning.decision import DEFAULT_HOLDOUT_SHARE, DEFAULT_SALT, DecisionSettings
from state.urls import DEFAULT_URL
from training.settings import DEFAULT_MODEL_NAME, DEFAULT_TRACKING_URI


class CliSettings(BaseSettings):
    """NBA_* variables (and MLFLOW_TRACKING_URI) with their defaults; flags override them."""

    model_config = SettingsConfigDict(env_prefix="NBA_", env_ignore_empty=True, frozen=True,
                                      extra="ignore")

    #: MLflow tracking + registry store
    tracking_uri: str = Field(DEFAULT_TRACKING_URI, validation_alias="MLFLOW_TRACKING_URI")
    model_name: str = DEFAULT_MODEL_NAME
    #: exposures/customers/inventory parquet and offers.yaml
    data_dir: Path = Path("data")
    #: the shared state store (stock, launch holds, contacts, decision log)
    state_url: str = Field(DEFAULT_URL, repr=False)  # may hold a password
    experiment: str = "nba-training"
    artifact_root: Path = Path("mlruns")
    #: the meta-learners of `nba train`'s menu, comma-separated (training.learners.LEARNERS)
    learner: str = "s,t,x"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    #: where the service reads a customer's row: the state store's profiles or customers.parquet
    customers_from: Literal["auto", "file", "store"] = "auto"
    #: the key `nba simulate` sends (a staff key: it posts decisions and outcomes)
    api_key: str | None = Field(None, repr=False)
    #: the holdout share (decisions hold it out; the reports' sample-ratio check expects it)
    holdout_share: float = DEFAULT_HOLDOUT_SHARE
    #: salt of the holdout hash: the service's, so the CLI holds out the same customers
    experiment_salt: str = DEFAULT_SALT

    def decision_settings(self) -> DecisionSettings:
        """The decision core's settings: the service's holdout, no exploration (CLI paths)."""
        return DecisionSettings(self.holdout_share, self.experiment_salt, 0.0)


class SettingsError(ValueError):
    """An environment variable holds a value of the wrong kind: names it and what was wrong."""


def load_settings() -> CliSettings:
    """Settings from the environment; SettingsError (one line per bad variable) otherwise."""
    try:
        return CliSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = "MLFLOW_TRACKING_URI" if field == "MLFLOW_TRACKING_URI" else (
                f"NBA_{field.upper()}")
            problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
        raise SettingsError("; ".join(problems)) from None
