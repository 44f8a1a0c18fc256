"""Pure functions from contract tables to the model matrix; used by training and serving alike."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import MAX_LEVELS, Feature, FeatureSpec, Kind


def infer_spec(frame: pd.DataFrame, columns: list[tuple[str, Kind]]) -> FeatureSpec:
    """Fix the feature spec from training data: order, kinds, and the categorical levels seen."""
    features: list[Feature] = []
    for name, kind in columns:
        if kind == "categorical":
            counts = frame[name].dropna().astype(str).value_counts()
            levels = sorted(counts.index[:MAX_LEVELS])
            features.append(Feature(name, kind, tuple(levels)))
        else:
            features.append(Feature(name, kind))
    return FeatureSpec(tuple(features))


def build_matrix(frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The float32 model matrix of `frame` under `spec`.

    Numeric and bool columns pass through (nulls stay NaN, which LightGBM treats as missing);
    categoricals are one-hot over the training levels, an unseen level being all zeros.
    """
    n = len(frame)
    out = np.zeros((n, spec.width), dtype=np.float32)
    col = 0
    for feature in spec.features:
        values = frame[feature.name]
        if feature.kind == "categorical":
            # position among the training levels; -1 for an unseen level or a null
            codes = pd.Index(feature.levels, dtype=object).get_indexer(values.astype(object))
            rows = np.flatnonzero(codes >= 0)
            out[rows, col + codes[rows]] = 1.0
        else:
            out[:, col] = values.to_numpy(dtype=np.float32, na_value=np.nan)
        col += feature.width
    return out
