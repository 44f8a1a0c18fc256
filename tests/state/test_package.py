"""`import state` is light; its public names load from their modules on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import state


def test_every_public_name_loads_on_first_use() -> None:
    for name in state.__all__:
        assert getattr(state, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        state.nope  # noqa: B018 - the lookup is the test


def test_importing_the_package_and_its_urls_loads_no_sqlalchemy() -> None:
    script = ("import sys\n"
              "import state\n"
              "from state.urls import DEFAULT_URL, mask_url\n"
              "print('sqlalchemy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2], check=True)
    assert done.stdout.strip() == "False"
