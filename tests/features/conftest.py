"""Fixtures for the feature-layer tests: a small valid contract data set on disk, and a way to
break one file of it in a controlled way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nba import demo

Modifier = Callable[[pd.DataFrame], pd.DataFrame | pa.Table]


@pytest.fixture(scope="session")
def demo_data() -> demo.DemoData:
    """The demo retailer in memory (generated once; tests must not mutate its frames)."""
    return demo.generate(300, 1200, seed=1)


@pytest.fixture
def data_dir(tmp_path: Path, demo_data: demo.DemoData) -> Path:
    """A fresh folder holding a valid contract data set (exposures, customers, inventory,
    offers.yaml)."""
    out = tmp_path / "data"
    demo.write(demo_data, out)
    return out


def rewrite_parquet(path: Path, modify: Modifier) -> Path:
    """Replace the parquet file at `path` with `modify(its frame)`.

    `modify` gets a copy of the file as a pandas frame and returns either a frame (written with
    pandas) or a pyarrow Table (written as is, for types pandas would not produce).
    """
    frame = pq.read_table(path).to_pandas()
    result = modify(frame)
    if isinstance(result, pa.Table):
        pq.write_table(result, path)
    else:
        result.to_parquet(path, index=False)
    return path


@pytest.fixture
def rewrite() -> Callable[[Path, Modifier], Path]:
    """The `rewrite_parquet` helper as a fixture."""
    return rewrite_parquet
