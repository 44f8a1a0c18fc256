"""Request context as model features: the columns a decision request carries, not a profile.

`exposures.parquet` may hold the context each exposure happened in (the data contract's
context columns); they are then features like any other, learned through the same feature
spec. A customer table (customers.parquet, a stored profile) never carries them: the request
does, and a request that omits one gets the documented default, null (the model's "not given"
branch, learned from exposures whose context was not recorded). Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.build import build_row
from features.schema import CONTEXT_COLUMNS, FeatureSpec

if TYPE_CHECKING:
    from features.customers import CustomerTable

__all__ = ["CONTEXT_COLUMNS", "context_values", "has_context", "situate", "with_defaults"]


def context_values(context: object) -> dict[str, object]:
    """The context columns' values of a decision context (an attribute per column; a missing
    or None attribute is the default, null)."""
    return {name: getattr(context, name, None) for name in CONTEXT_COLUMNS}


def has_context(spec: FeatureSpec) -> bool:
    """True when the model learned from any context column."""
    return any(f.name in CONTEXT_COLUMNS for f in spec.features)


def with_defaults(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """`frame` with every context feature of `spec` it lacks added as null (the default)."""
    missing = [f.name for f in spec.features if f.name in CONTEXT_COLUMNS
               and f.name not in frame.columns]
    if not missing:
        return frame
    return frame.assign(**{name: pd.Series([None] * len(frame), index=frame.index,
                                           dtype=object) for name in missing})


def situate(table: CustomerTable, values: Mapping[str, object], spec: FeatureSpec
            ) -> CustomerTable:
    """Every row of `table` in the context `values` ({column: value}; absent or None: null).

    The context features' model-matrix columns are encoded by `build_row` (the encoding of
    training's `build_matrix`) and the raw values kept in `features`, so the decision log
    records the context each decision saw. A new table; `table` is left as it was.
    """
    matrix = table.matrix.copy()
    features = dict(table.features)
    col = 0
    for feature in spec.features:
        if feature.name in CONTEXT_COLUMNS:
            value = values.get(feature.name)
            encoded = build_row({feature.name: value}, FeatureSpec((feature,)))
            matrix[:, col:col + feature.width] = encoded
            features[feature.name] = np.full(len(table), value, dtype=object)
        col += feature.width
    return replace(table, matrix=matrix, features=features)
