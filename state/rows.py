"""Inventory frames (the data contract) to and from the store's rows."""

from __future__ import annotations

import pandas as pd

from state.records import StockRow, StockSnapshot


def stock_rows(frame: pd.DataFrame) -> list[StockRow]:
    """Rows of a validated inventory frame (features.io.read_inventory)."""
    return [StockRow(sku, _opt(size), _opt(color), _opt(location), int(on_hand))
            for sku, size, color, location, on_hand in frame[
                ["sku", "size", "color", "location", "on_hand"]].itertuples(index=False)]


def _opt(value: object) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def snapshot_of(frame: pd.DataFrame) -> StockSnapshot:
    """An in-memory stock lookup over an inventory frame (batch scoring, tests)."""
    return StockSnapshot.from_rows(stock_rows(frame))
