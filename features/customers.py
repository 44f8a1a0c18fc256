"""The online feature table: every customer's model-matrix row, ready for per-request lookup.

Built once per (model, customers.parquet) with the same `build_matrix` training used, so a
request only looks up a row index: no pandas on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.build import build_matrix
from features.schema import FeatureSpec


@dataclass(frozen=True)
class CustomerTable:
    """Customers' feature rows and the special columns the decision rules read."""

    ids: list[str]
    index: dict[str, int]
    matrix: np.ndarray
    contactable: np.ndarray
    loyalty_tier: np.ndarray
    preferred_size: np.ndarray
    preferred_color: np.ndarray
    value: np.ndarray
    value_is_predicted: np.ndarray
    #: the raw feature columns (before one-hot), for logging what a decision saw
    features: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, spec: FeatureSpec,
                   predict_value: Callable[[np.ndarray], np.ndarray]) -> CustomerTable:
        """Build from a validated customers frame; `predict_value` fills missing customer_value."""
        matrix = np.ascontiguousarray(build_matrix(frame, spec))
        n = len(frame)

        def strings(column: str) -> np.ndarray:
            if column not in frame:
                return np.full(n, None, dtype=object)
            values = frame[column].astype(object).to_numpy(copy=True)
            values[np.asarray(pd.isna(values), dtype=bool)] = None
            return values

        if "customer_value" in frame:
            given = frame["customer_value"].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            given = np.full(n, np.nan)
        missing = np.isnan(given)
        value = given.copy()
        if missing.any():
            value[missing] = predict_value(matrix[missing])
        contactable = (frame["contactable"].fillna(True).to_numpy(dtype=bool)
                       if "contactable" in frame else np.ones(n, dtype=bool))
        ids = frame["customer_id"].astype(str).tolist()
        return cls(
            ids=ids,
            index={cid: i for i, cid in enumerate(ids)},
            matrix=matrix,
            contactable=contactable,
            loyalty_tier=strings("loyalty_tier"),
            preferred_size=strings("preferred_size"),
            preferred_color=strings("preferred_color"),
            value=value,
            value_is_predicted=missing,
            features={f.name: frame[f.name].astype(object).to_numpy() for f in spec.features},
        )

    def __len__(self) -> int:
        return len(self.index)

    def row(self, customer_id: str) -> int | None:
        """Row index of a customer, or None when unknown."""
        return self.index.get(customer_id)

    def feature_row(self, row: int) -> dict[str, object]:
        """The customer's raw feature values (JSON-ready: None for missing)."""
        out: dict[str, object] = {}
        for name, column in self.features.items():
            value = column[row]
            out[name] = None if value is None or pd.isna(value) else (
                value.item() if hasattr(value, "item") else value)
        return out
