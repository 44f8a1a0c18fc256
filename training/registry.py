"""The MLflow model registry: configure, register, and move aliases.

The service picks its model by alias (`models:/<name>@champion`), never by a "best run" query.
Every move of the champion alias is appended to the registered model's `champion_history` tag
(a JSON list of versions), which is what `nba promote --rollback` walks back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from training.registry_lock import promotion_lock

if TYPE_CHECKING:
    from training.package import Policy

log = logging.getLogger(__name__)

CHAMPION = "champion"
HISTORY_TAG = "champion_history"
STATUS_TAG = "validation_status"
HISTORY_LIMIT = 100


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


_METRIC_NAME = re.compile(r"^[\w.\- ]+$")
# MLflow refuses a metric name over 250 characters (MAX_ENTITY_KEY_LENGTH), after the whole fit.
_METRIC_NAME_LIMIT = 250
_METRIC_NAME_KEPT = 240


def metric_name(name: str) -> str:
    """`name` as MLflow accepts a metric name (word characters, '.', '-', ' ').

    Per-offer metrics carry the offer id, which the catalog allows to be any text (an emoji, a
    '/', 300 characters): such a name is written with '_' for each other character, cut to
    240 characters, plus a hash of the original, so two offers never share a metric.
    """
    if (_METRIC_NAME.match(name) and posixpath.normpath(name) == name
            and len(name) <= _METRIC_NAME_LIMIT):
        return name
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return re.sub(r"[^\w\- ]", "_", name)[:_METRIC_NAME_KEPT] + "-" + digest


def driver_uri(tracking_uri: str) -> str:
    """The URI with the PostgreSQL driver this project installs (psycopg 3, not psycopg2)."""
    for scheme in ("postgresql://", "postgres://"):
        if tracking_uri.startswith(scheme):
            return "postgresql+psycopg://" + tracking_uri[len(scheme):]
    return tracking_uri


def configure(tracking_uri: str) -> MlflowClient:
    """Point MLflow (tracking and registry) at one store and return a client for it."""
    tracking_uri = driver_uri(tracking_uri)
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


#: MLflow error codes meaning "no such model or alias" (anything else is a registry failure)
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def get_alias(client: MlflowClient, name: str, alias: str = CHAMPION) -> AliasedVersion | None:
    """The version behind `alias`, or None when the model or the alias does not exist.

    A registry that fails (database gone, tables missing) raises: it is not "no alias".
    """
    try:
        version: ModelVersion = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return None
        raise
    # every registered version has a source; MLflow's type allows none
    return AliasedVersion(name, str(version.version), alias, version.run_id,
                          version.source or "")


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """The registered version; raises RegistryError naming a missing model or version."""
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"model '{name}' has no version {version}") from None


def require_artifacts(client: MlflowClient, name: str, version: str) -> None:
    """RegistryError unless the version's model files (its MLmodel) can be fetched."""
    import tempfile

    from mlflow.artifacts import download_artifacts

    found = get_version(client, name, version)
    try:
        with tempfile.TemporaryDirectory(prefix="nba-check-") as tmp:
            download_artifacts(artifact_uri=f"models:/{name}/{version}/MLmodel", dst_path=tmp)
    except (MlflowException, OSError):
        raise RegistryError(f"model '{name}' version {version} cannot be promoted: its model "
                            f"files are missing or unreadable at {found.source}") from None


def latest_version(client: MlflowClient, name: str) -> str:
    """The highest registered version number of `name`; RegistryError when there is none."""
    try:
        versions = list(client.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        versions = []
    if not versions:
        raise RegistryError(f"model '{name}' has no registered version")
    return str(max(int(v.version) for v in versions))


_ANY = object()


def set_alias(client: MlflowClient, name: str, version: str, alias: str = CHAMPION, *,
              expected: object = _ANY) -> None:
    """Point `alias` at `version`; a champion move is recorded in the champion history.

    Raises RegistryError naming a missing model or version, or when `expected` (a version, or
    None for "no champion") is given and the champion is no longer it (another promotion came
    first). The champion being replaced is added to the history first if missing (registries
    older than the history tag). A new champion without a `validation_status` tag gets
    `first_champion` or `unvalidated`. Promotions are serialized (training.registry_lock), so
    the history and the alias always agree.
    """
    with promotion_lock(_registry_uri(client), name):
        _set_alias_locked(client, name, str(version), alias, expected)


def _set_alias_locked(client: MlflowClient, name: str, version: str, alias: str,
                      expected: object) -> None:
    found = get_version(client, name, version)
    previous = get_alias(client, name) if alias == CHAMPION else None
    if expected is not _ANY and alias == CHAMPION and (
            previous.version if previous else None) != expected:
        raise RegistryError(f"the champion of '{name}' moved to version "
                            f"{previous.version if previous else None} (was {expected}) while "
                            "this promotion ran; run it again to compare with the new champion")
    if alias == CHAMPION and STATUS_TAG not in (found.tags or {}):
        client.set_model_version_tag(name, version, STATUS_TAG,
                                     "unvalidated" if previous else "first_champion")
    client.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION:
        history = champion_history(client, name)
        if previous is not None:
            history = push_history(history, previous.version)
        _write_history(client, name, push_history(history, version))
    log.info("alias %s of %s now points at version %s", alias, name, version)


def push_history(history: list[str], version: str) -> list[str]:
    """The history with `version` appended (not repeated; only the last HISTORY_LIMIT kept)."""
    if history and history[-1] == version:
        return history
    return [*history, version][-HISTORY_LIMIT:]


def rollback_target(history: list[str], current: str | None) -> tuple[str, list[str]] | None:
    """(previous champion, history ending at it), or None when there is nothing to go back to."""
    trimmed = list(history)
    while trimmed and trimmed[-1] == current:
        trimmed.pop()
    return (trimmed[-1], trimmed) if trimmed else None


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """Champion versions, oldest first, from the registered model's history tag."""
    try:
        raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    except MlflowException:
        raise RegistryError(f"no registered model '{name}'") from None
    if not raw:
        return []
    try:
        return [str(v) for v in json.loads(raw)]
    except (ValueError, TypeError):
        log.warning("ignoring unreadable %s tag on %s: %r", HISTORY_TAG, name, raw)
        return []


def _write_history(client: MlflowClient, name: str, history: list[str]) -> None:
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))


def rollback(client: MlflowClient, name: str) -> tuple[str | None, str]:
    """Put the previous champion back; returns (demoted version, restored version)."""
    current = get_alias(client, name)
    current_version = current.version if current else None
    target_history = champion_history(client, name)
    target = rollback_target(target_history, current_version)
    if target is None:
        raise RegistryError(f"model '{name}' has no previous champion to roll back to "
                            f"(champion history: {champion_history(client, name)})")
    version, history = target
    get_version(client, name, version)
    with promotion_lock(_registry_uri(client), name):
        if (getattr(get_alias(client, name), "version", None) != current_version
                or champion_history(client, name) != target_history):
            raise RegistryError(f"the champion of '{name}' moved while rolling back; run "
                                "`nba promote --rollback` again")
        client.set_registered_model_alias(name, CHAMPION, version)
        _write_history(client, name, history)
    log.info("rolled %s champion back from version %s to %s", name, current_version, version)
    return current_version, version


def _registry_uri(client: MlflowClient) -> str:
    return driver_uri(getattr(client, "_registry_uri", None) or mlflow.get_registry_uri())


def tag_version(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    """Set tags on a model version (shown in the MLflow UI)."""
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def model_uri(name: str, alias: str = CHAMPION) -> str:
    """The registry URI of an alias."""
    return f"models:/{name}@{alias}"


def load_policy(uri: str) -> Policy:
    """The decision policy inside a logged pyfunc model (`models:/<name>/<version>`, ...).

    MLflow prepends the model's own copy of our packages (its `code_paths`) to sys.path on
    every load: a package first imported afterwards would come from that copy instead of the
    installed code, and the path would grow with every hot reload. sys.path is put back.
    """
    import mlflow.pyfunc

    saved = list(sys.path)
    try:
        return mlflow.pyfunc.load_model(uri).unwrap_python_model().policy
    finally:
        sys.path[:] = saved
