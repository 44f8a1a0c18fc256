"""An empty SQLite state store per report test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from state import StateStore, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """An empty SQLite state store in tmp_path."""
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()
