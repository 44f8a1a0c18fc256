"""The MLflow model registry: configure, register, and move aliases.

The service picks its model by alias (`models:/<name>@champion`), never by a "best run" query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)

CHAMPION = "champion"


class RegistryError(RuntimeError):
    """A registry operation could not be done; the message says what to do."""


@dataclass(frozen=True)
class AliasedVersion:
    """A registered model version reached through an alias."""

    name: str
    version: str
    alias: str
    run_id: str | None
    source: str


def configure(tracking_uri: str) -> MlflowClient:
    """Point MLflow (tracking and registry) at one store and return a client for it."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path) -> str:
    """The experiment id for `name`, created with artifacts under `artifact_root` if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (artifact_root.resolve() / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def get_alias(client: MlflowClient, name: str, alias: str = CHAMPION) -> AliasedVersion | None:
    """The version behind `alias`, or None when the model or the alias does not exist."""
    try:
        version: ModelVersion = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return AliasedVersion(name, str(version.version), alias, version.run_id, version.source)


def set_alias(client: MlflowClient, name: str, version: str, alias: str = CHAMPION) -> None:
    """Point `alias` at `version`; raises RegistryError naming a missing model or version."""
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"model '{name}' has no version {version}") from None
    client.set_registered_model_alias(name, alias, str(version))
    log.info("alias %s of %s now points at version %s", alias, name, version)


def model_uri(name: str, alias: str = CHAMPION) -> str:
    """The registry URI of an alias."""
    return f"models:/{name}@{alias}"
