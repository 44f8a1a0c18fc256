"""The `nba` parser: settings read once, in main(); one module per subcommand; no cycles."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from unittest import mock

import pytest

from nba.cli import build_parser, main
from nba.commands import COMMANDS
from nba.settings import CliSettings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


class RecordingEnviron(MutableMapping[str, str]):
    """An os.environ stand-in that remembers every key read."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self.real = real
        self.read: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.read.append(key)
        return self.real[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.real[key] = value

    def __delitem__(self, key: str) -> None:
        del self.real[key]

    def __iter__(self) -> Iterator[str]:
        self.read.append("*")
        return iter(self.real)

    def __len__(self) -> int:
        return len(self.real)


def test_building_the_parser_reads_no_environment():
    settings = CliSettings()
    recording = RecordingEnviron(os.environ)
    with mock.patch.object(os, "environ", recording):  # only while the parser is built
        parser = build_parser(settings)
    # argparse's gettext reads LANGUAGE/LC_*; none of ours may be read here
    assert [key for key in recording.read if key.startswith(("NBA_", "MLFLOW_", "*"))] == []
    assert parser.parse_args(["model"]).tracking_uri == settings.tracking_uri


def test_flag_defaults_come_from_the_settings_object(tmp_path):
    settings = CliSettings(data_dir=tmp_path, state_url="sqlite:///x.db", port=9001,
                           MLFLOW_TRACKING_URI="sqlite:///elsewhere.db")
    parser = build_parser(settings)
    serve = parser.parse_args(["serve"])
    assert (serve.data_dir, serve.state_url, serve.port, serve.tracking_uri) == (
        tmp_path, "sqlite:///x.db", 9001, "sqlite:///elsewhere.db")
    assert parser.parse_args(["report", "funnel"]).state_url == "sqlite:///x.db"


def test_settings_read_the_same_variables_as_before(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///t.db")
    monkeypatch.setenv("NBA_MODEL_NAME", "m")
    monkeypatch.setenv("NBA_STATE_URL", "")  # empty counts as unset
    monkeypatch.setenv("NBA_WORKERS", "4")
    monkeypatch.setenv("NBA_LEARNER", "t")
    settings = load_settings()
    assert (settings.tracking_uri, settings.model_name, settings.state_url, settings.workers,
            settings.learner) == ("sqlite:///t.db", "m", "sqlite:///state.db", 4, "t")


def test_a_bad_variable_is_one_line_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("NBA_PORT", "eighty")
    with pytest.raises(SettingsError, match="NBA_PORT"):
        load_settings()
    assert main(["model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nba: error: environment: NBA_PORT") and err.count("\n") == 1


def test_the_state_url_default_in_help_hides_a_password(capsys):
    parser = build_parser(CliSettings(state_url="postgresql://nba:s3cret@db/nba"))
    with pytest.raises(SystemExit):
        parser.parse_args(["inventory", "--help"])
    shown = capsys.readouterr().out
    assert "s3cret" not in shown and "postgresql://nba:***@db/nba" in shown


def test_train_help_names_the_default_learner(capsys):
    with pytest.raises(SystemExit):
        build_parser(CliSettings()).parse_args(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "S-learner" in shown and "T-learner" in shown and "X-learner" in shown
    assert "default s,t" in shown and "best_single" in shown and "confident" in shown


def test_train_help_names_every_capacity_and_rule(capsys):
    from training.learners import CAPACITIES
    from training.rules import RULES

    with pytest.raises(SystemExit):
        build_parser(CliSettings()).parse_args(["train", "--help"])
    shown = capsys.readouterr().out
    assert [c for c in CAPACITIES if c not in shown] == []
    assert [r for r in RULES if r not in shown] == []


def test_every_subcommand_module_defines_its_parser_and_handler():
    parser = build_parser(CliSettings())
    names = set(parser._subparsers._group_actions[0].choices)
    assert len(names) == len(COMMANDS) == 16
    for module in COMMANDS:
        assert callable(module.add_parser) and module.__name__.startswith("nba.commands.")


def imports_of(path: Path) -> set[str]:
    """Top-level package names a module imports (at any depth of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(("package", "above"), [
    ("state", {"nba", "service", "training", "reports", "features", "decisioning"}),
    ("features", {"nba", "service", "training", "reports", "state", "decisioning"}),
    ("stats", {"nba", "service", "training", "reports", "state", "features", "decisioning"}),
    # the decision core is pure: no Flask, no database, no MLflow, nothing above it
    ("decisioning", {"nba", "service", "training", "reports", "state", "flask", "sqlalchemy",
                     "mlflow", "psycopg", "lightgbm"}),
    ("reports", {"nba", "service", "training"}),
    ("training", {"nba", "reports", "service"}),
    ("service", {"nba"}),
])
def test_dependencies_point_one_way(package, above):
    offenders = {str(path.relative_to(ROOT)): sorted(imports_of(path) & above)
                 for path in (ROOT / package).rglob("*.py") if imports_of(path) & above}
    assert offenders == {}


def test_the_cli_parses_without_loading_the_heavy_libraries():
    """`nba --help` stays quick: settings and parsers need neither SQLAlchemy nor MLflow."""
    script = ("import sys\n"
              "from nba.cli import build_parser\n"
              "from nba.settings import load_settings\n"
              "build_parser(load_settings())\n"
              "print(sorted(m for m in ('sqlalchemy', 'mlflow', 'pandas', 'lightgbm', 'flask')"
              " if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"



@pytest.mark.parametrize("argv, message", [
    (["batch-score", "--customers", "c.parquet", "--out", "o", "--engine", "spark",
      "--partitions", "0"], "--partitions must be at least 1"),
    (["train", "--engine", "dask", "--shrinkage", "1.5"], "--shrinkage must lie between 0 and 1"),
    (["train", "--engine", "dask", "--dask-workers", "0"], "--dask-workers must be at least 1"),
    # the default menu's capacities are compared at run time (was a NameError)
    (["train", "--engine", "dask", "--capacity", "low,high"], "give one --capacity"),
    # dask does not cross-fit: the flag would be silently ignored
    (["train", "--engine", "dask", "--crossfit-workers", "2"],
     "--crossfit-workers is for --engine local"),
    (["train", "--contact-z", "-1"], "--contact-z must be 'off' or a number >= 0, not '-1'"),
    (["train", "--contact-z", "some"], "--contact-z must be 'off' or a number >= 0"),
    (["train", "--crossfit-workers", "0"],
     "--crossfit-workers must be 'auto' or a whole number >= 1, not '0'"),
    (["train", "--crossfit-workers", "two"], "--crossfit-workers must be 'auto' or a whole"),
])
def test_scale_engine_flags_are_checked_before_any_work(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_help_says_the_dask_engine_fits_one_fixed_candidate(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "ONE fixed candidate" in " ".join(capsys.readouterr().out.split())
