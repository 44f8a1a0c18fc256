"""Gated promotion and rollback through the `nba` CLI against the real registry.

The suite's registry is shared, so these tests promote under their own registered model name
in the same store: version 1 is a genuinely worse policy (2 trees per learner, trained by the
real pipeline, which makes it the first champion), version 2 is the suite's trained champion
registered again under this name.

The first promotion runs the `nba` console script in a process of its own (the environment,
the entry point, the exit status); the later commands call the same `nba.cli.main` in this
process (`nba_main`, tests/integration/conftest.py), which spares each a fresh interpreter
importing MLflow, causalml and LightGBM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import ONE_CANDIDATE
from training import registry

pytestmark = pytest.mark.slow  # trains and registers real versions

NBA = str(Path(sys.executable).parent / "nba")
NAME = "nba-policy-gate-test"


def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    """`nba *args` in a process of its own."""
    return subprocess.run([NBA, *args], capture_output=True, text=True, timeout=300,
                          env=os.environ | env)


@pytest.fixture(scope="module")
def gate(trained):
    """(client, env) for NAME: version 1 worse and champion, version 2 the trained policy."""
    from training.pipeline import train
    from training.settings import BoosterParams, TrainSettings

    worse = train(TrainSettings(data_dir=trained.data_dir, tracking_uri=trained.tracking_uri,
                                artifact_root=trained.root / "mlruns", model_name=NAME,
                                params=replace(BoosterParams(), n_estimators=2, n_jobs=1),
                                select_rows=20_000, **ONE_CANDIDATE))
    client = registry.configure(trained.tracking_uri)
    good = client.get_model_version(trained.model_name, trained.version)
    copy = client.create_model_version(NAME, source=good.source, run_id=good.run_id)
    assert (worse.version, worse.promoted, str(copy.version)) == ("1", True, "2")
    env = {"MLFLOW_TRACKING_URI": trained.tracking_uri, "NBA_DATA_DIR": str(trained.data_dir),
           "NBA_MODEL_NAME": NAME}
    return client, env


def champion(client) -> str:
    return registry.get_alias(client, NAME).version


def tags(client, version: str) -> dict[str, str]:
    return client.get_model_version(NAME, version).tags


def history(client) -> list[str]:
    return json.loads(client.get_registered_model(NAME).tags[registry.HISTORY_TAG])


def test_gate_passes_better_refuses_worse_records_force_and_rolls_back(gate, trained, nba_main):
    client, env = gate
    assert champion(client) == "1" and history(client) == ["1"]  # the pipeline's first promotion
    assert tags(client, "1")["validation_status"] == "first_champion"

    better = run("promote", "--version", "2", env=env)
    assert better.returncode == 0, better.stderr
    assert "verdict: candidate is better than champion beyond noise" in better.stdout
    assert "policy value, revenue/customer" in better.stdout and "qini_" in better.stdout
    assert f"{NAME}@champion -> version 2 (validation_status=passed)" in better.stdout
    passed = tags(client, "2")
    assert passed["validation_status"] == "passed" and passed["compared_to"] == "1"
    assert float(passed["difference_ci_low"]) > 0
    # the gate's values are doubly robust, clustered by customer, on the recorded holdout
    assert passed["validation_method"] == "DR"
    assert float(passed["candidate_policy_value"]) > float(passed["champion_policy_value"])
    assert champion(client) == "2" and history(client) == ["1", "2"]

    refused = nba_main("promote", "--version", "1", env=env)
    assert refused.returncode == 1, refused.stderr
    line = next(x for x in refused.stderr.splitlines() if x.startswith("nba promote: refused"))
    assert "version 1 is worse than champion version 2 beyond noise" in line
    assert "difference -" in line and "95% CI" in line and "--force" in line
    assert "Traceback" not in refused.stderr
    failed = tags(client, "1")
    assert failed["validation_status"] == "failed" and failed["compared_to"] == "2"
    assert float(failed["difference_ci_high"]) < 0
    assert champion(client) == "2" and history(client) == ["1", "2"]

    # reuses the refusal's numbers
    forced = nba_main("promote", "--version", "1", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "reused the comparison recorded on version 1 against champion version 2" in forced.stdout
    assert "validation_status=forced" in forced.stdout
    assert tags(client, "1")["validation_status"] == "forced"
    assert tags(client, "1")["difference_ci_high"] == failed["difference_ci_high"]
    assert champion(client) == "1" and history(client) == ["1", "2", "1"]

    rolled = nba_main("promote", "--rollback", env=env)
    assert rolled.returncode == 0, rolled.stderr
    assert "-> version 2 (rolled back from version 1)" in rolled.stdout
    assert champion(client) == "2" and history(client) == ["1", "2"]


def test_compare_prints_identical_versions_as_not_worse(gate, nba_main):
    _, env = gate
    result = nba_main("compare", "--candidate", "1", "--champion", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert "candidate v1" in result.stdout and "champion v1" in result.stdout
    assert "verdict: candidate is not worse than champion" in result.stdout
    assert "difference +0.000 (95% CI +0.000 to +0.000)" in result.stdout


def test_history_adopts_a_champion_set_before_the_history_existed(trained):
    client = registry.configure(trained.tracking_uri)
    name = "nba-policy-history-test"
    good = client.get_model_version(trained.model_name, trained.version)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=good.source, run_id=good.run_id)
    client.set_registered_model_alias(name, registry.CHAMPION, "1")  # as older code did
    registry.set_alias(client, name, "2")
    assert json.loads(client.get_registered_model(name).tags[registry.HISTORY_TAG]) == ["1", "2"]
    assert client.get_model_version(name, "2").tags["validation_status"] == "unvalidated"
    assert registry.rollback(client, name) == ("2", "1")
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        registry.rollback(client, name)


@pytest.mark.parametrize(("args", "message"), [
    (["promote", "--rollback", "--model-name", "no-such-model"], "no registered model"),
    (["compare", "--candidate", "9"], "has no version 9"),
])
def test_rollback_and_compare_errors_exit_2_with_one_line(gate, args, message, capsys):
    from nba.cli import main

    _, env = gate
    code = main([*args, "--tracking-uri", env["MLFLOW_TRACKING_URI"],
                 *([] if "--model-name" in args else ["--model-name", NAME])])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"nba {args[0]}: error:") and message in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["promote", "compare"])
def test_help_shows_examples(command):
    result = subprocess.run([NBA, command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "examples:" in result.stdout
    assert f"nba {command} --" in result.stdout
