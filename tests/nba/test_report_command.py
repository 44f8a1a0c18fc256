"""`nba report ...` through nba's own parser (nba.commands.report), on a real store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
import pytest

from features.io import write_catalog
from nba.cli import CliError, build_parser, run
from nba.settings import CliSettings
from state import open_store
from tests.reports import CATALOG, decision, event, simulate, write


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    """`nba`'s parser, with defaults from the environment as `main()` reads it."""
    return build_parser(CliSettings())


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    """The test catalog as offers.yaml."""
    path = tmp_path / "offers.yaml"
    write_catalog(CATALOG, path)
    return path


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    """A SQLite store holding a simulated campaign with a real lift."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    records, outcomes = simulate(2000, p_treated=0.15, p_holdout=0.05, share=0.1, seed=4)
    records += [decision("b1", chosen="B", channel="app"), decision("b2", chosen="B")]
    outcomes += [event("b1", "shown", offer_id="B"), event("b1", "accepted", offer_id="B")]
    with open_store(url) as store:
        write(store, records, outcomes)
    return url


def current_umask() -> int:
    """The process umask (reading it means setting it: put straight back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def report(parser: argparse.ArgumentParser, *argv: str) -> int:
    return run(parser.parse_args(["report", *argv]))


def test_incrementality_prints_and_writes_csv_and_html(parser, state_url, catalog_path,
                                                       tmp_path, capsys):
    out, page = tmp_path / "out" / "lift.csv", tmp_path / "lift.html"
    assert report(parser, "incrementality", "--state-url", state_url, "--catalog",
               str(catalog_path), "--holdout-share", "0.1", "--out", str(out),
               "--html", str(page)) == 0
    text = capsys.readouterr().out
    assert text.startswith("sample ratio OK")
    assert "conversion lift [95% CI]" in text and "ROI [95% CI]" in text
    written = pd.read_csv(out)
    assert list(written["group"]) == ["A", "B", "all"]
    assert written.loc[0, "conversion_lift_low"] > 0
    html = page.read_text(encoding="utf-8")
    assert page.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # was 0600 (mkstemp)
    assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert html.count('src="data:image/png;base64,') == 3  # lift, revenue, funnel
    assert "http://" not in html and "https://" not in html  # no external assets
    assert "sample ratio OK" in html and "Funnel" in html
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temp files left


def test_incrementality_flags_srm_first_and_writes_parquet(parser, state_url, catalog_path,
                                                          tmp_path, capsys):
    out = tmp_path / "lift.parquet"
    assert report(parser, "incrementality", "--state-url", state_url, "--catalog",
               str(catalog_path), "--by", "channel", "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[1].startswith("SAMPLE RATIO MISMATCH")  # 10% held, 5% expected
    assert list(pd.read_parquet(out)["group"]) == ["app", "web", "all"]


def test_funnel_and_balance(parser, state_url, tmp_path, capsys):
    assert report(parser, "funnel", "--state-url", state_url) == 0
    text = capsys.readouterr().out
    assert "recommended" in text and "the constraint to work on next" in text
    out = tmp_path / "balance.csv"
    assert report(parser, "balance", "--state-url", state_url, "--out", str(out)) == 0
    assert "holdout customers" in capsys.readouterr().out
    assert out.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["incrementality", "--since", "last week"], "--since: 'last week' is not an ISO 8601"),
    (["incrementality", "--by", "model"], "unknown --by 'model'"),
    (["incrementality", "--holdout-share", "5%"], "--holdout-share must be a number"),
    (["incrementality", "--out", "lift.xlsx"], "--out: cannot write 'lift.xlsx'"),
    (["funnel", "--since", "2030-01-01"], "no decisions in the log at sqlite:///"),
])
def test_user_errors_are_one_line_cli_errors(parser, state_url, catalog_path, tmp_path,
                                             monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [*argv, "--state-url", state_url]
    if argv[0] == "incrementality":
        argv += ["--catalog", str(catalog_path)]
    with pytest.raises(CliError) as error:
        report(parser, *argv)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("argv", "message"), [
    (["incrementality", "--html", "."], "--html .: is a directory"),
    (["incrementality", "--html", "notes.txt/report.html"], "notes.txt is not a directory"),
    (["incrementality", "--out", "lift.xlsx"], "--out: cannot write 'lift.xlsx'"),
    (["funnel", "--out", "notes.txt/f.csv"], "notes.txt is not a directory"),
    (["balance", "--out", "."], "--out .: is a directory"),
])
def test_output_paths_are_checked_before_the_log_is_read(parser, tmp_path, monkeypatch, argv,
                                                         message):
    """A bad --html/--out failed only after the whole report was computed (and printed)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    missing = f"sqlite:///{tmp_path / 'missing.db'}"  # read first, it would be the error
    if argv[0] == "incrementality":
        argv += ["--catalog", "nope.yaml"]  # read second, it would be the error
    with pytest.raises(CliError) as error:
        report(parser, *argv, "--state-url", missing)
    assert message in str(error.value)


def test_store_problems_are_cli_errors(parser, tmp_path):
    with pytest.raises(CliError, match="no state store at .*missing.db"):
        report(parser, "funnel", "--state-url", f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()  # a report never creates a store
    with pytest.raises(CliError, match="unsupported scheme 'mysql'"):
        report(parser, "balance", "--state-url", "mysql://db/nba")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(empty).close()
    with pytest.raises(CliError, match="no decisions in the log"):
        report(parser, "balance", "--state-url", empty)


def test_missing_catalog_is_a_cli_error(parser, state_url, tmp_path):
    with pytest.raises(CliError, match="catalog: .*file not found .*--catalog"):
        report(parser, "incrementality", "--state-url", state_url, "--catalog",
            str(tmp_path / "nope.yaml"))


def test_defaults_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NBA_STATE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("NBA_HOLDOUT_SHARE", "0.1")
    monkeypatch.setenv("NBA_DATA_DIR", str(tmp_path))
    args = build_parser(CliSettings()).parse_args(["report", "incrementality"])
    assert (args.state_url, args.holdout_share, args.by) == ("sqlite:///elsewhere.db", "0.1",
                                                             "offer")
    assert args.catalog == tmp_path / "offers.yaml"


@pytest.mark.parametrize("name", ["incrementality", "funnel", "balance"])
def test_every_report_has_examples_in_its_help(parser, name, capsys):
    with pytest.raises(SystemExit):
        parser.parse_args(["report", name, "--help"])
    assert f"examples:\n  nba report {name}" in capsys.readouterr().out
