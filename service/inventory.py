"""Stock lookup over inventory rows: sum the units that fit a customer's size and colour."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd


class InventoryIndex:
    """Read-only index of inventory.parquet rows by SKU; implements decide.StockLookup."""

    def __init__(self, rows: dict[str, list[tuple[str | None, str | None, str | None, int]]]):
        self._rows = rows

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> InventoryIndex:
        """Build from a validated inventory frame (features.io.read_inventory)."""
        rows: dict[str, list[tuple[str | None, str | None, str | None, int]]] = defaultdict(list)
        for sku, size, color, location, on_hand in frame[
            ["sku", "size", "color", "location", "on_hand"]
        ].itertuples(index=False):
            rows[sku].append((_opt(size), _opt(color), _opt(location), int(on_hand)))
        return cls(dict(rows))

    @classmethod
    def empty(cls) -> InventoryIndex:
        """No stock information at all: every SKU-linked offer is out of stock."""
        return cls({})

    def units(self, sku: str, size: str | None, color: str | None,
              location: str | None) -> int:
        """Units of `sku` at `location` (None = online) that fit the size and colour.

        A row with no size (or colour) fits any; a customer with no preference takes any.
        """
        total = 0
        for row_size, row_color, row_location, on_hand in self._rows.get(sku, ()):
            if row_location != location:
                continue
            if row_size is not None and size is not None and row_size != size:
                continue
            if row_color is not None and color is not None and row_color != color:
                continue
            total += on_hand
        return total


def _opt(value: object) -> str | None:
    return None if value is None or pd.isna(value) else str(value)
