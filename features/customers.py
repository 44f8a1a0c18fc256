"""The online feature table: every customer's model-matrix row, ready for per-request lookup.

Built once per (model, customers.parquet) with the same `build_matrix` training used, so a
request only looks up a row index: no pandas on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.build import build_matrix, build_row
from features.context import with_defaults
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
        """Build from a validated customers frame; `predict_value` fills missing customer_value.

        Context features the frame lacks (the request carries them) are null here.
        """
        frame = with_defaults(frame, spec)
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

    @classmethod
    def from_profile(cls, customer_id: str, profile: Mapping[str, object], spec: FeatureSpec,
                     predict_value: Callable[[np.ndarray], np.ndarray]) -> CustomerTable:
        """A one-row table from a stored profile ({column: value}): the per-request form.

        Encoded by `build_row` (build_matrix's encoding, no pandas); the special columns read
        as `from_frame` reads them (contactable missing or null = True).
        """
        matrix = build_row(profile, spec)
        given = profile.get("customer_value")
        missing = given is None
        value = (predict_value(matrix) if missing
                 else np.array([float(given)]))  # type: ignore[arg-type]
        contactable = profile.get("contactable")

        def one(column: str) -> np.ndarray:
            return np.array([profile.get(column)], dtype=object)

        return cls(
            ids=[customer_id], index={customer_id: 0}, matrix=matrix,
            contactable=np.array([contactable is None or bool(contactable)]),
            loyalty_tier=one("loyalty_tier"), preferred_size=one("preferred_size"),
            preferred_color=one("preferred_color"), value=np.asarray(value, dtype=np.float64),
            value_is_predicted=np.array([missing]),
            features={f.name: one(f.name) for f in spec.features})

    def take(self, row: int) -> CustomerTable:
        """The one-row table of `row` (views, no copy of the matrix)."""
        one = slice(row, row + 1)
        return CustomerTable(
            ids=self.ids[one], index={self.ids[row]: 0}, matrix=self.matrix[one],
            contactable=self.contactable[one], loyalty_tier=self.loyalty_tier[one],
            preferred_size=self.preferred_size[one], preferred_color=self.preferred_color[one],
            value=self.value[one], value_is_predicted=self.value_is_predicted[one],
            features={name: column[one] for name, column in self.features.items()})

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


def profile_documents(frame: pd.DataFrame, batch_rows: int = 50_000
                      ) -> Iterator[list[tuple[str, str]]]:
    """A validated customers frame as batches of (customer_id, JSON profile document).

    The document holds every other column of the row (nulls as null): what the state store's
    profiles keep, and what `CustomerTable.from_profile` reads back.
    """
    ids = frame["customer_id"].astype(str)
    rest = frame.drop(columns=["customer_id"])
    for start in range(0, len(frame), batch_rows):
        chunk = rest.iloc[start:start + batch_rows]
        # pandas' C JSON writer: fast in bulk; 15 digits keep float64 values as they were
        lines = chunk.to_json(orient="records", lines=True, double_precision=15)
        documents = lines.splitlines() if len(chunk.columns) else ["{}"] * len(chunk)
        yield list(zip(ids.iloc[start:start + batch_rows], documents, strict=True))
