"""The integration tests' in-process `nba`: the console script's entry point without a process.

A fresh `nba` process imports MLflow, causalml and LightGBM before it does anything (seconds
each, more under load); tests whose subject is a command's answer, not the process around it,
call the same `nba.cli.main` here. Each file keeps at least one real console-script run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest


@pytest.fixture
def nba_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
             ) -> Callable[..., subprocess.CompletedProcess]:
    """`nba *args` through `nba.cli.main` in this process with `env` set in os.environ; the
    same (args, returncode, stdout, stderr) as running the console script."""
    from nba.cli import main

    def call(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            capsys.readouterr()  # only this command's output
            code = main(list(args))
            out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["nba", *args], code, out, err)

    return call
