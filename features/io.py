"""The only place that reads and writes contract files; every reader validates on load.

A reader either returns a fully valid table or raises one ContractError naming the file, the
column and the problem. Writers write to a temporary file and rename, so a crash never leaves a
half-written file behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from pydantic import ValidationError

from features.catalog import Catalog
from features.errors import ContractError
from features.schema import (
    CUSTOMER_SPECIAL,
    NEW_CUSTOMER,
    FeatureSpec,
    feature_columns,
    kind_of,
)

EXPOSURES = "exposures.parquet"
CUSTOMERS = "customers.parquet"
INVENTORY = "inventory.parquet"
OFFERS = "offers.yaml"


# ---------------------------------------------------------------- offers.yaml


def read_catalog(path: str | Path) -> Catalog:
    """Read and validate offers.yaml."""
    path = Path(path)
    name = path.name
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(str(path), "file not found") from None
    except OSError as exc:
        raise ContractError(str(path), f"cannot be read ({exc.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ContractError(name, f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ContractError(name, "expected a mapping with 'offers' at the top level")
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _yaml_location(raw, first["loc"])
        raise ContractError(name, f"{where}: {first['msg']}") from None


def _yaml_location(raw: dict, loc: tuple) -> str:
    """Render a pydantic error location as offers[3 'offer_id'].margin for a human."""
    parts: list[str] = []
    node: object = raw
    for key in loc:
        if isinstance(key, int) and isinstance(node, list):
            item = node[key] if key < len(node) else None
            label = item.get("offer_id") if isinstance(item, dict) else None
            parts[-1] += f"[{key}{' ' + repr(label) if label else ''}]"
            node = item
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts) or "catalog"


def write_catalog(catalog: Catalog, path: str | Path) -> None:
    """Write offers.yaml atomically (used by the demo generator)."""
    data = catalog.model_dump(mode="json", exclude_none=True)
    _atomic_write_bytes(Path(path), yaml.safe_dump(data, sort_keys=False).encode())


# ---------------------------------------------------------------- parquet helpers


def _read_table(path: Path) -> pa.Table:
    if not path.exists():
        raise ContractError(str(path), "file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(path.name, f"not a readable parquet file ({exc})") from None
    if path.is_dir() and table.num_columns == 0:  # else: "missing required column"
        raise ContractError(str(path), "a directory holding no parquet file")
    return table


def _require(table: pa.Table, file: str, columns: tuple[str, ...]) -> None:
    for column in columns:
        if column not in table.column_names:
            raise ContractError(file, "missing required column", column)


def _no_nulls(table: pa.Table, file: str, column: str) -> None:
    nulls = pc.sum(pc.is_null(table.column(column), nan_is_null=True)).as_py() or 0
    if nulls:
        raise ContractError(file, f"{nulls} null value(s) where none is allowed", column)


def _strings_or_nulls(table: pa.Table, file: str, column: str) -> pa.Table:
    """An optional string column, an all-null one (Arrow type null) cast to string."""
    if pa.types.is_null(table.schema.field(column).type):
        index = table.schema.get_field_index(column)
        return table.set_column(index, column, table.column(column).cast(pa.string()))
    _is_string(table, file, column)
    return table


def _is_string(table: pa.Table, file: str, column: str) -> None:
    if kind_of(table.schema.field(column).type) != "categorical":
        raise ContractError(
            file, f"expected string, got {table.schema.field(column).type}", column
        )


def _is_numeric(table: pa.Table, file: str, column: str, what: str = "number") -> None:
    if kind_of(table.schema.field(column).type) != "numeric":
        raise ContractError(file, f"expected {what}, got {table.schema.field(column).type}", column)


def _unique(table: pa.Table, file: str, columns: list[str]) -> None:
    frame = table.select(columns).to_pandas()
    dupes = frame.duplicated(keep=False)
    if dupes.any():
        example = frame[dupes].iloc[0].to_dict()
        raise ContractError(
            file, f"duplicate key {example} ({int(dupes.sum())} rows share a key)", columns[0]
        )


def _sample(values: pa.Array | pa.ChunkedArray, limit: int = 3) -> list:
    return pc.unique(values).to_pylist()[:limit]


# ---------------------------------------------------------------- exposures.parquet


def _new_customer_rows(table: pa.Table, file: str) -> pa.Array:
    """The optional `new_customer` column as a bool mask (all false when absent)."""
    if NEW_CUSTOMER not in table.column_names:
        return pa.array([False] * table.num_rows, type=pa.bool_())
    if not pa.types.is_boolean(table.schema.field(NEW_CUSTOMER).type):
        raise ContractError(file, f"expected bool, got {table.schema.field(NEW_CUSTOMER).type}",
                            NEW_CUSTOMER)
    _no_nulls(table, file, NEW_CUSTOMER)
    return table[NEW_CUSTOMER].combine_chunks()


def read_exposures(path: str | Path, catalog: Catalog) -> pd.DataFrame:
    """Read and validate exposures.parquet against the catalog; returns a pandas frame."""
    path = Path(path)
    return exposures_frame(_read_table(path), path.name, catalog)


def exposures_frame(table: pa.Table, file: str, catalog: Catalog, part: bool = False,
                    arms: int | None = None) -> pd.DataFrame:
    """Validate an exposures table against the catalog; the pandas frame training reads.

    `part`: the table is one partition of a larger file (a Dask partition), so it may be
    empty or hold no control rows; `arms`: the whole file's arm count, for the default
    propensity (1 / arms) when the file has none.
    """
    _require(table, file, ("customer_id", "treatment", "converted", "revenue"))
    if table.num_rows == 0 and not part:
        raise ContractError(file, "no rows")
    for column in ("customer_id", "treatment"):
        _is_string(table, file, column)
        _no_nulls(table, file, column)

    new = _new_customer_rows(table, file)
    known = set(catalog.offer_ids) | {catalog.control_label}
    unknown = pc.filter(table["treatment"], pc.and_(
        pc.invert(new), pc.invert(pc.is_in(table["treatment"], pa.array(sorted(known))))))
    if len(unknown):
        raise ContractError(
            file,
            f"unknown offer id(s) {_sample(unknown)} in {len(unknown)} row(s); treatments must be "
            f"an offer_id of offers.yaml or the control label '{catalog.control_label}'"
            + ("" if not catalog.new_customer_offers else
               " (offers with audience: new only in rows with new_customer true)"),
            "treatment",
        )
    for_new = {o.offer_id for o in catalog.new_customer_offers} | {catalog.control_label}
    unknown = pc.filter(table["treatment"], pc.and_(
        new, pc.invert(pc.is_in(table["treatment"], pa.array(sorted(for_new))))))
    if len(unknown):
        raise ContractError(
            file,
            f"offer id(s) {_sample(unknown)} in {len(unknown)} row(s) of new customers; their "
            "treatment must be an offer with audience: new or the control label "
            f"'{catalog.control_label}'",
            "treatment",
        )
    if not part and not pc.any(pc.equal(table["treatment"], catalog.control_label)).as_py():
        raise ContractError(
            file, f"no control rows (label '{catalog.control_label}'): uplift needs a control arm",
            "treatment",
        )
    known_rows = pc.filter(table["treatment"], pc.invert(new))
    if not part and len(known_rows) and pc.all(
            pc.equal(known_rows, catalog.control_label)).as_py():
        raise ContractError(
            file, f"every row is control (label '{catalog.control_label}'): uplift needs rows "
            "of at least one offer of offers.yaml beside the control arm", "treatment",
        )

    converted_type = table.schema.field("converted").type
    if not (pa.types.is_boolean(converted_type) or pa.types.is_integer(converted_type)):
        raise ContractError(file, f"expected int 0/1 or bool, got {converted_type}", "converted")
    _no_nulls(table, file, "converted")
    if pa.types.is_integer(converted_type):
        bad = pc.filter(table["converted"], pc.invert(pc.is_in(table["converted"],
                                                               pa.array([0, 1]))))
        if len(bad):
            raise ContractError(file, f"values must be 0 or 1, found {_sample(bad)}", "converted")

    _is_numeric(table, file, "revenue", "float >= 0")
    _no_nulls(table, file, "revenue")
    if (pc.min(table["revenue"]).as_py() or 0) < 0:
        raise ContractError(file, "negative revenue; revenue must be >= 0", "revenue")
    if not pc.all(pc.is_finite(table["revenue"]), min_count=0).as_py():  # empty: true
        raise ContractError(file, "infinite revenue; revenue must be a finite number",
                            "revenue")

    if "propensity" in table.column_names:
        _is_numeric(table, file, "propensity", "float in (0, 1]")
        _no_nulls(table, file, "propensity")
        low, high = pc.min(table["propensity"]).as_py(), pc.max(table["propensity"]).as_py()
        if table.num_rows and (low <= 0 or high > 1):
            raise ContractError(
                file, f"values must lie in (0, 1], found range [{low}, {high}]", "propensity"
            )
    if "exposed_at" in table.column_names and not pa.types.is_timestamp(
            table.schema.field("exposed_at").type):
        raise ContractError(
            file, f"expected timestamp, got {table.schema.field('exposed_at').type}", "exposed_at"
        )

    feature_columns(table.schema, file)  # raises on a disallowed feature type
    frame = table.to_pandas()
    frame["converted"] = frame["converted"].astype(np.int8)
    frame["revenue"] = frame["revenue"].astype(np.float64)
    if "propensity" not in frame:
        frame["propensity"] = 1.0 / (arms or frame["treatment"].nunique())
    return frame


# ---------------------------------------------------------------- customers.parquet


def read_customers(path: str | Path, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Read and validate customers.parquet; with `spec`, require the model's feature columns."""
    path = Path(path)
    file = path.name
    table = _read_table(path)
    _require(table, file, ("customer_id",))
    _is_string(table, file, "customer_id")
    _no_nulls(table, file, "customer_id")
    _unique(table, file, ["customer_id"])
    for column in ("loyalty_tier", "preferred_size", "preferred_color"):
        if column in table.column_names:
            table = _strings_or_nulls(table, file, column)
    if "contactable" in table.column_names and not pa.types.is_boolean(
            table.schema.field("contactable").type):
        raise ContractError(
            file, f"expected bool, got {table.schema.field('contactable').type}", "contactable"
        )
    if "customer_value" in table.column_names:
        _is_numeric(table, file, "customer_value")
        low = pc.min(table["customer_value"]).as_py()
        if low is not None and low < 0:
            raise ContractError(file, "negative customer_value", "customer_value")
    if spec is not None:
        spec.check_schema(table.schema, file)
    for field in table.schema:
        special = field.name in CUSTOMER_SPECIAL or field.name == "customer_id"
        if not special and kind_of(field.type) is None:
            raise ContractError(file, f"type {field.type} is not allowed", field.name)
    return table.to_pandas()


# ---------------------------------------------------------------- inventory.parquet


INVENTORY_KEY = ["sku", "size", "color", "location"]


def read_inventory(path: str | Path) -> pd.DataFrame:
    """Read and validate inventory.parquet; optional columns are added as nulls."""
    path = Path(path)
    file = path.name
    table = _read_table(path)
    _require(table, file, ("sku", "on_hand"))
    _is_string(table, file, "sku")
    _no_nulls(table, file, "sku")
    for column in ("size", "color", "location"):
        if column in table.column_names:
            table = _strings_or_nulls(table, file, column)
        else:
            table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
    if not pa.types.is_integer(table.schema.field("on_hand").type):
        raise ContractError(file, f"expected int >= 0, got {table.schema.field('on_hand').type}",
                            "on_hand")
    _no_nulls(table, file, "on_hand")
    if table.num_rows and pc.min(table["on_hand"]).as_py() < 0:
        raise ContractError(file, "negative stock; on_hand must be >= 0", "on_hand")
    _unique(table, file, INVENTORY_KEY)
    frame = table.select(INVENTORY_KEY + ["on_hand"]).to_pandas()
    frame["on_hand"] = frame["on_hand"].astype(np.int64)
    return frame


# ---------------------------------------------------------------- writing and hashing


def temp_beside(path: Path, *, private: bool = False) -> str:
    """A new empty file in `path`'s folder for an atomic write, made as any new file is.

    Its mode is 0666 less the umask, like `open()`'s: `tempfile.mkstemp` makes 0600, which the
    rename kept, so a report, table or catalog was readable by its writer alone. `private`
    (customer-level rows: batch scores, exported logs) keeps 0600 whatever the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600 if private else 0o666))
        except FileExistsError:  # a 48-bit name taken: try another
            continue
        return str(tmp)


def write_parquet(frame: pd.DataFrame, path: str | Path, *, private: bool = False) -> None:
    """Write a frame as parquet atomically: readers see the old file or the whole new one.
    `private`: mode 0600 (`temp_beside`)."""
    path = Path(path)
    tmp = temp_beside(path, private=private)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ParquetChunkWriter:
    """Append record batches to one parquet file; the file appears only when closed cleanly.
    `private`: mode 0600 (`temp_beside`)."""

    def __init__(self, path: str | Path, *, private: bool = False) -> None:
        self.path = Path(path)
        self._tmp = temp_beside(self.path, private=private)
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append one chunk; the first chunk fixes the schema."""
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def __enter__(self) -> ParquetChunkWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._writer is not None:
            self._writer.close()
        try:
            if exc_type is None and self._writer is not None:
                os.replace(self._tmp, self.path)
        finally:  # a failed replace (the path a directory, ...) leaves no temporary file
            Path(self._tmp).unlink(missing_ok=True)


def iter_parquet_batches(path: str | Path, batch_size: int) -> Iterator[pd.DataFrame]:
    """Stream a parquet file in chunks of at most `batch_size` rows."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=batch_size):
        yield batch.to_pandas()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | Path) -> str:
    """Content hash of a file, logged with every training run."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
