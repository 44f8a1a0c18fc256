"""The feature columns and their kinds: the one contract training and serving agree on."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from features.errors import ContractError

Kind = Literal["numeric", "bool", "categorical"]
#: How a categorical enters the model matrix: one-hot columns, or one column of level codes
#: that LightGBM splits as a native categorical.
Encoding = Literal["one_hot", "codes"]

#: Columns of exposures.parquet that are not features.
EXPOSURE_RESERVED: tuple[str, ...] = (
    "customer_id",
    "treatment",
    "converted",
    "revenue",
    "propensity",
    "exposed_at",
    "new_customer",
)
#: The optional exposures column marking a visitor without a profile (a first visit).
NEW_CUSTOMER = "new_customer"
#: Columns of customers.parquet with a meaning of their own; features only if exposures has them.
CUSTOMER_SPECIAL: tuple[str, ...] = (
    "contactable",
    "loyalty_tier",
    "preferred_size",
    "preferred_color",
    "customer_value",
)
#: Optional columns of exposures.parquet that describe the request, not the customer: features
#: a decision request passes in its `context` (docs/data-contract.md). Customer tables do not
#: carry them; a request that omits one gets null, the documented default.
CONTEXT_COLUMNS: dict[str, Kind] = {
    "store_id": "categorical",
    "device": "categorical",
    "page": "categorical",
    "cart_value": "numeric",
}
#: A categorical with at most this many levels in training is one-hot encoded over them.
MAX_LEVELS = 50
#: A categorical with more levels is one column of level codes over its this-many most
#: frequent ones (LightGBM's native categorical splits); rarer levels are missing (NaN).
#: LightGBM itself bins a categorical's most frequent levels (up to max_bin, 255, or more
#: until 99% of rows are covered) and a split needs min_data_per_group (100) rows a side, so a
#: level past the 1,000th (under 1 row in 1,000 on average) could not earn a split of its own;
#: the cap bounds the spec shipped with the model and the request-time lookup.
MAX_CODES = 1_000


def kind_of(arrow_type: pa.DataType) -> Kind | None:
    """The feature kind of an Arrow type, or None when the contract does not allow it."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "categorical"
    return None


@dataclass(frozen=True)
class Feature:
    """One feature column: its name, kind and, for categoricals, the levels seen in training
    and their encoding (a spec saved before encodings existed is one-hot throughout)."""

    name: str
    kind: Kind
    levels: tuple[str, ...] = ()
    encoding: Encoding = "one_hot"

    @property
    def one_hot(self) -> bool:
        """True for a categorical one-hot encoded over its levels."""
        return self.kind == "categorical" and self.encoding == "one_hot"

    @property
    def codes(self) -> bool:
        """True for a categorical encoded as one column of level codes (NaN: unseen or null)."""
        return self.kind == "categorical" and self.encoding == "codes"

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        """Each level's index in `levels`: the per-request lookup of `build_row` (kept here,
        as a cache keyed by the levels tuple rehashes its 1,000 strings on every call)."""
        return {level: i for i, level in enumerate(self.levels)}

    @property
    def width(self) -> int:
        """Columns this feature takes in the model matrix (one per level when one-hot)."""
        return len(self.levels) if self.one_hot else 1

    @property
    def matrix_names(self) -> list[str]:
        """Names of this feature's model-matrix columns."""
        if self.one_hot:
            return [f"{self.name}={level}" for level in self.levels]
        return [self.name]


@dataclass(frozen=True)
class FeatureSpec:
    """The ordered features of a model; fixed at training time and shipped with the model."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        """Source column names, in order."""
        return [f.name for f in self.features]

    @property
    def matrix_names(self) -> list[str]:
        """Model-matrix column names, in order."""
        return [name for f in self.features for name in f.matrix_names]

    @property
    def width(self) -> int:
        """Number of model-matrix columns."""
        return sum(f.width for f in self.features)

    @property
    def categorical_columns(self) -> tuple[int, ...]:
        """Model-matrix indices of the level-code columns: LightGBM's categorical_feature."""
        indices: list[int] = []
        col = 0
        for feature in self.features:
            if feature.codes:
                indices.append(col)
            col += feature.width
        return tuple(indices)

    def check_schema(self, schema: pa.Schema, file: str) -> None:
        """Raise ContractError unless `schema` has every feature column with a matching kind.

        Context columns may be absent (the request carries them); a table that has one is
        checked like any other feature column.
        """
        for feature in self.features:
            if feature.name not in schema.names and feature.name in CONTEXT_COLUMNS:
                continue
            if feature.name not in schema.names:
                raise ContractError(file, "missing feature column (the model needs it)",
                                    feature.name)
            kind = kind_of(schema.field(feature.name).type)
            if kind != feature.kind:
                raise ContractError(
                    file,
                    f"type {schema.field(feature.name).type} does not match the training data "
                    f"({feature.kind})",
                    feature.name,
                )


_KIND_TYPES: dict[Kind, str] = {"categorical": "a string", "numeric": "a number",
                                "bool": "a bool"}


def feature_columns(schema: pa.Schema, file: str) -> list[tuple[str, Kind]]:
    """The feature columns of an exposures schema (everything not reserved), validated by type."""
    columns: list[tuple[str, Kind]] = []
    for field in schema:
        if field.name in EXPOSURE_RESERVED:
            continue
        kind = kind_of(field.type)
        if kind is None:
            # pandas writes a column of nothing but None/NaN objects as type null
            hint = ("; every value is null: drop the column or write it with a type"
                    if pa.types.is_null(field.type) else "")
            raise ContractError(
                file, f"type {field.type} is not allowed for a feature (numeric, bool or "
                f"string){hint}", field.name,
            )
        declared = CONTEXT_COLUMNS.get(field.name)
        if declared is not None and kind != declared:
            raise ContractError(
                file, f"context column must be {_KIND_TYPES[declared]}, got {field.type}",
                field.name)
        columns.append((field.name, kind))
    if not columns:
        raise ContractError(file, "no feature columns: the models need at least one")
    return columns
