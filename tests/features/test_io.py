"""Contract readers and writers (features/io.py) against ../shared/DATA_CONTRACT.md.

Every violation must surface as one ContractError naming the file, the column and the problem;
nothing may half-load or escape as another exception type.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from features import io
from features.build import infer_spec
from features.catalog import Catalog
from features.errors import ContractError
from features.io import CUSTOMERS, EXPOSURES, INVENTORY, INVENTORY_KEY, OFFERS
from features.schema import FeatureSpec, feature_columns

Modifier = Callable[[pd.DataFrame], pd.DataFrame | pa.Table]


def read(file: str, data_dir: Path, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Read one contract parquet file of `data_dir` with its reader."""
    path = data_dir / file
    if file == EXPOSURES:
        return io.read_exposures(path, io.read_catalog(data_dir / OFFERS))
    if file == CUSTOMERS:
        return io.read_customers(path, spec)
    if file == INVENTORY:
        return io.read_inventory(path)
    raise AssertionError(file)


def assert_contract_error(exc: ContractError, file: str, column: str | None, problem: str) -> None:
    """The error names the file, the column and the problem, in its fields and its message."""
    message = str(exc)
    assert exc.file.endswith(file), message
    assert file in message
    assert exc.column == column, message
    if column is not None:
        assert f"column '{column}'" in message
    assert problem in exc.problem, message
    assert problem in message


# ---------------------------------------------------------------- modifiers


def drop(column: str) -> Modifier:
    return lambda f: f.drop(columns=[column])


def assign(column: str, values: Callable[[pd.DataFrame], object]) -> Modifier:
    return lambda f: f.assign(**{column: values(f)})


def set_first(column: str, value: object) -> Modifier:
    """Set row 0 of `column` to `value`, keeping the column's dtype where pandas can."""
    def modify(f: pd.DataFrame) -> pd.DataFrame:
        f = f.copy()
        f.loc[0, column] = value
        return f
    return modify


def null_first(column: str) -> Modifier:
    """Make row 0 of `column` null while keeping its Arrow type (pandas would upcast ints)."""
    def modify(f: pd.DataFrame) -> pa.Table:
        table = pa.Table.from_pandas(f, preserve_index=False)
        values = table.column(column)
        mask = pa.array(np.arange(len(values)) == 0)
        nulled = pc.if_else(mask, pa.scalar(None, values.type), values)
        return table.set_column(table.schema.get_field_index(column), column, nulled)
    return modify


def nan_first(column: str) -> Modifier:
    """Make row 0 of a float column NaN *as NaN* (not null), as polars or Spark would write it."""
    def modify(f: pd.DataFrame) -> pa.Table:
        table = pa.Table.from_pandas(f, preserve_index=False)
        values = f[column].to_numpy(dtype=np.float64).copy()
        values[0] = np.nan
        array = pa.array(values, from_pandas=False)
        assert array.null_count == 0  # really a NaN, not a null
        return table.set_column(table.schema.get_field_index(column), column, array)
    return modify


def list_feature(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(basket=[[1, 2]] * len(f))


def duplicate_unsized_inventory_row(f: pd.DataFrame) -> pd.DataFrame:
    """Repeat a row whose size/color/location are all null: nulls must compare equal in keys."""
    row = f[f["sku"] == "DENIM-B"]
    assert row[["size", "color", "location"]].isna().all(axis=None)
    return pd.concat([f, row], ignore_index=True)


# ---------------------------------------------------------------- parquet violations


VIOLATIONS = [
    # missing required columns, each reader
    *[pytest.param(EXPOSURES, drop(c), c, "missing required column", id=f"exposures-missing-{c}")
      for c in ("customer_id", "treatment", "converted", "revenue")],
    pytest.param(CUSTOMERS, drop("customer_id"), "customer_id", "missing required column",
                 id="customers-missing-customer_id"),
    *[pytest.param(INVENTORY, drop(c), c, "missing required column", id=f"inventory-missing-{c}")
      for c in ("sku", "on_hand")],
    # wrong types
    pytest.param(EXPOSURES, assign("customer_id", lambda f: np.arange(len(f))), "customer_id",
                 "expected string", id="exposures-customer_id-int"),
    pytest.param(CUSTOMERS, assign("customer_id", lambda f: np.arange(len(f))), "customer_id",
                 "expected string", id="customers-customer_id-int"),
    pytest.param(EXPOSURES, assign("treatment", lambda f: np.arange(len(f))), "treatment",
                 "expected string", id="exposures-treatment-int"),
    pytest.param(EXPOSURES, assign("converted", lambda f: f["converted"].astype(float)),
                 "converted", "expected int 0/1 or bool", id="exposures-converted-float"),
    pytest.param(EXPOSURES, assign("revenue", lambda f: f["revenue"].astype(str)), "revenue",
                 "expected float >= 0", id="exposures-revenue-string"),
    pytest.param(EXPOSURES, assign("propensity", lambda f: f["propensity"].astype(str)),
                 "propensity", "expected float in (0, 1]", id="exposures-propensity-string"),
    pytest.param(EXPOSURES, assign("exposed_at", lambda f: f["exposed_at"].astype(str)),
                 "exposed_at", "expected timestamp", id="exposures-exposed_at-string"),
    pytest.param(CUSTOMERS,
                 assign("contactable", lambda f: f["contactable"].map({True: "yes", False: "no"})),
                 "contactable", "expected bool", id="customers-contactable-string"),
    pytest.param(CUSTOMERS, assign("customer_value", lambda f: f["customer_value"].astype(str)),
                 "customer_value", "expected number", id="customers-customer_value-string"),
    pytest.param(CUSTOMERS, assign("loyalty_tier", lambda f: np.arange(len(f))), "loyalty_tier",
                 "expected string", id="customers-loyalty_tier-int"),
    pytest.param(INVENTORY, assign("on_hand", lambda f: f["on_hand"].astype(float)), "on_hand",
                 "expected int >= 0", id="inventory-on_hand-float"),
    pytest.param(INVENTORY, assign("size", lambda f: np.arange(len(f))), "size",
                 "expected string", id="inventory-size-int"),
    # nulls where none is allowed (NaN in a float column counts as null)
    *[pytest.param(EXPOSURES, null_first(c), c, "null value(s) where none is allowed",
                   id=f"exposures-null-{c}")
      for c in ("customer_id", "treatment", "converted", "revenue", "propensity")],
    *[pytest.param(EXPOSURES, nan_first(c), c, "null value(s) where none is allowed",
                   id=f"exposures-nan-{c}")
      for c in ("revenue", "propensity")],
    pytest.param(CUSTOMERS, null_first("customer_id"), "customer_id",
                 "null value(s) where none is allowed", id="customers-null-customer_id"),
    *[pytest.param(INVENTORY, null_first(c), c, "null value(s) where none is allowed",
                   id=f"inventory-null-{c}")
      for c in ("sku", "on_hand")],
    # values out of range
    pytest.param(EXPOSURES, set_first("converted", 2), "converted", "values must be 0 or 1",
                 id="exposures-converted-2"),
    pytest.param(EXPOSURES, set_first("revenue", -0.01), "revenue", "negative revenue",
                 id="exposures-revenue-negative"),
    pytest.param(EXPOSURES, set_first("revenue", np.inf), "revenue", "infinite revenue",
                 id="exposures-revenue-inf"),
    pytest.param(EXPOSURES, set_first("propensity", 0.0), "propensity", "must lie in (0, 1]",
                 id="exposures-propensity-0"),
    pytest.param(EXPOSURES, set_first("propensity", 1.5), "propensity", "must lie in (0, 1]",
                 id="exposures-propensity-1.5"),
    pytest.param(CUSTOMERS, set_first("customer_value", -1.0), "customer_value",
                 "negative customer_value", id="customers-customer_value-negative"),
    pytest.param(INVENTORY, set_first("on_hand", -1), "on_hand", "negative stock",
                 id="inventory-on_hand-negative"),
    # referential and key integrity
    pytest.param(EXPOSURES, set_first("treatment", "mystery_offer"), "treatment",
                 "unknown offer id(s) ['mystery_offer'] in 1 row(s)", id="exposures-unknown-offer"),
    pytest.param(EXPOSURES, lambda f: f[f["treatment"] != "control"], "treatment",
                 "no control rows", id="exposures-no-control"),
    pytest.param(EXPOSURES, lambda f: f.assign(treatment="control"), "treatment",
                 "every row is control", id="exposures-all-control"),
    pytest.param(CUSTOMERS, set_first("customer_id", "C0000002"), "customer_id",
                 "duplicate key {'customer_id': 'C0000002'} (2 rows share a key)",
                 id="customers-duplicate-id"),
    pytest.param(INVENTORY, lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "sku",
                 "duplicate key", id="inventory-duplicate-key"),
    pytest.param(INVENTORY, duplicate_unsized_inventory_row, "sku",
                 "duplicate key", id="inventory-duplicate-key-with-null-parts"),
    # feature columns of a disallowed type
    pytest.param(EXPOSURES, list_feature, "basket", "type list<element: int64> is not allowed",
                 id="exposures-feature-list"),
    pytest.param(CUSTOMERS, list_feature, "basket", "type list<element: int64> is not allowed",
                 id="customers-feature-list"),
    # rows of new customers (first visits): a bool flag, and only offers for new customers
    pytest.param(EXPOSURES, lambda f: f.assign(new_customer=1), "new_customer",
                 "expected bool, got int64", id="exposures-new_customer-int"),
    pytest.param(EXPOSURES, lambda f: f.assign(new_customer=f["treatment"] != "control"),
                 "treatment", "of new customers; their treatment must be an offer with "
                 "audience: new", id="exposures-new-customer-modelled-offer"),
    pytest.param(EXPOSURES, lambda f: f.assign(new_customer=False, treatment=np.where(
        f["treatment"] == "control", "control", "first_purchase_gift")), "treatment",
                 "only in rows with new_customer true", id="exposures-new-offer-known-row"),
    pytest.param(EXPOSURES, lambda f: f.assign(device=np.arange(len(f))), "device",
                 "context column must be a string, got int64", id="exposures-context-type"),
    # tables with nothing to learn from
    pytest.param(EXPOSURES, lambda f: f.iloc[:0], None, "no rows", id="exposures-empty"),
    pytest.param(EXPOSURES,
                 lambda f: f[["customer_id", "treatment", "converted", "revenue", "propensity"]],
                 None, "no feature columns", id="exposures-no-features"),
]


@pytest.mark.parametrize(("file", "modify", "column", "problem"), VIOLATIONS)
def test_violation_raises_contract_error(rewrite, data_dir: Path, file: str, modify: Modifier,
                                         column: str | None, problem: str) -> None:
    rewrite(data_dir / file, modify)
    with pytest.raises(ContractError) as info:
        read(file, data_dir)
    assert_contract_error(info.value, file, column, problem)


@pytest.mark.parametrize("file", [EXPOSURES, CUSTOMERS, INVENTORY])
def test_not_a_parquet_file(data_dir: Path, file: str) -> None:
    (data_dir / file).write_bytes(b"PAR1 this is not really parquet \x00\xff\x13" * 10)
    with pytest.raises(ContractError) as info:
        read(file, data_dir)
    assert_contract_error(info.value, file, None, "not a readable parquet file")


@pytest.mark.parametrize("file", [EXPOSURES, CUSTOMERS, INVENTORY])
def test_empty_directory_in_place_of_a_file(data_dir: Path, file: str) -> None:
    (data_dir / file).unlink()
    (data_dir / file).mkdir()
    with pytest.raises(ContractError) as info:
        read(file, data_dir)
    assert_contract_error(info.value, file, None, "a directory holding no parquet file")


@pytest.mark.parametrize("file", [EXPOSURES, CUSTOMERS, INVENTORY])
def test_missing_file(data_dir: Path, file: str) -> None:
    (data_dir / file).unlink()
    with pytest.raises(ContractError) as info:
        read(file, data_dir)
    assert_contract_error(info.value, file, None, "file not found")


def test_unknown_offer_error_quotes_control_label(rewrite, data_dir: Path) -> None:
    """The message tells the user what a valid treatment is."""
    rewrite(data_dir / EXPOSURES, set_first("treatment", "CONTROL"))
    with pytest.raises(ContractError) as info:
        read(EXPOSURES, data_dir)
    assert "'CONTROL'" in str(info.value)
    assert "control label 'control'" in str(info.value)


# ---------------------------------------------------------------- customers against the spec


@pytest.fixture
def spec(data_dir: Path) -> FeatureSpec:
    """The feature spec a model trained on the demo exposures would carry."""
    frame = read(EXPOSURES, data_dir)
    return infer_spec(frame, feature_columns(pq.read_schema(data_dir / EXPOSURES), EXPOSURES))


def test_customers_missing_a_spec_feature(rewrite, data_dir: Path, spec: FeatureSpec) -> None:
    assert "monetary" in spec.names
    rewrite(data_dir / CUSTOMERS, drop("monetary"))
    read(CUSTOMERS, data_dir)  # fine on its own: the contract only knows customer_id
    with pytest.raises(ContractError) as info:
        read(CUSTOMERS, data_dir, spec)
    assert_contract_error(info.value, CUSTOMERS, "monetary", "missing feature column")


@pytest.mark.parametrize(("column", "values", "kind"), [
    pytest.param("recency_days", lambda f: f["recency_days"].astype(str), "numeric",
                 id="numeric-as-string"),
    pytest.param("channel", lambda f: f["channel"] == "web", "categorical",
                 id="categorical-as-bool"),
    pytest.param("frequency", lambda f: f["frequency"] > 3, "numeric", id="numeric-as-bool"),
])
def test_customers_feature_of_mismatched_kind(rewrite, data_dir: Path, spec: FeatureSpec,
                                              column: str, values: Callable, kind: str) -> None:
    rewrite(data_dir / CUSTOMERS, assign(column, values))
    read(CUSTOMERS, data_dir)  # every kind is a valid feature without a spec
    with pytest.raises(ContractError) as info:
        read(CUSTOMERS, data_dir, spec)
    assert_contract_error(info.value, CUSTOMERS, column,
                          f"does not match the training data ({kind})")


def test_customers_numeric_width_change_still_matches(rewrite, data_dir: Path,
                                                      spec: FeatureSpec) -> None:
    """int64 in training, float in serving: both numeric, so the model can use it."""
    rewrite(data_dir / CUSTOMERS, assign("frequency", lambda f: f["frequency"] * 1.0))
    frame = read(CUSTOMERS, data_dir, spec)
    assert frame["frequency"].dtype == np.float64


# ---------------------------------------------------------------- valid files


def test_demo_files_load(data_dir: Path, demo_data, spec: FeatureSpec) -> None:
    catalog = io.read_catalog(data_dir / OFFERS)
    assert catalog == demo_data.catalog

    exposures = io.read_exposures(data_dir / EXPOSURES, catalog)
    assert len(exposures) == 1200
    assert exposures["converted"].dtype == np.int8
    assert exposures["revenue"].dtype == np.float64
    np.testing.assert_array_equal(exposures["propensity"], demo_data.exposures["propensity"])
    assert set(exposures["treatment"]) <= set(catalog.offer_ids) | {"control"}

    customers = io.read_customers(data_dir / CUSTOMERS, spec)
    assert len(customers) == 300
    assert customers["customer_id"].is_unique
    assert customers["contactable"].dtype == bool

    inventory = io.read_inventory(data_dir / INVENTORY)
    assert list(inventory.columns) == INVENTORY_KEY + ["on_hand"]
    assert inventory["on_hand"].dtype == np.int64
    assert len(inventory) == len(demo_data.inventory)
    assert int(inventory["on_hand"].sum()) == int(demo_data.inventory["on_hand"].sum())


def test_converted_may_be_bool(rewrite, data_dir: Path) -> None:
    rewrite(data_dir / EXPOSURES, assign("converted", lambda f: f["converted"] == 1))
    frame = read(EXPOSURES, data_dir)
    assert frame["converted"].dtype == np.int8
    assert set(frame["converted"]) <= {0, 1}


def test_an_empty_exposures_part_passes_the_row_checks(data_dir: Path) -> None:
    """Dask validates partition by partition and builds its meta from an empty table: no rows
    is no infinite revenue (pyarrow's `all` of nothing is null, not true)."""
    catalog = io.read_catalog(data_dir / OFFERS)
    empty = pq.read_table(data_dir / EXPOSURES).slice(0, 0)
    frame = io.exposures_frame(empty, EXPOSURES, catalog, part=True,
                               arms=len(catalog.offers) + 1)
    assert len(frame) == 0 and "revenue" in frame


def test_propensity_defaults_to_uniform_over_arms(rewrite, data_dir: Path) -> None:
    arms = ["control", "sitewide_10_off", "free_shipping"]
    rewrite(
        data_dir / EXPOSURES,
        lambda f: f[f["treatment"].isin(arms)].drop(columns=["propensity"]),
    )
    frame = read(EXPOSURES, data_dir)
    assert set(frame["treatment"]) == set(arms)
    np.testing.assert_array_equal(frame["propensity"], np.full(len(frame), 1 / 3))


def test_propensity_default_counts_all_arms_present(rewrite, data_dir: Path) -> None:
    rewrite(data_dir / EXPOSURES, drop("propensity"))
    frame = read(EXPOSURES, data_dir)
    arms = frame["treatment"].nunique()
    assert arms == 13  # control + the 12 demo offers all occur in 1200 rows
    assert np.allclose(frame["propensity"], 1 / arms)


def test_inventory_optional_columns_added_as_nulls(rewrite, data_dir: Path) -> None:
    rewrite(data_dir / INVENTORY,
                    lambda f: f.drop(columns=["size", "color", "location"])
                    .drop_duplicates("sku"))
    frame = read(INVENTORY, data_dir)
    assert list(frame.columns) == INVENTORY_KEY + ["on_hand"]
    assert frame[["size", "color", "location"]].isna().all(axis=None)
    assert frame["sku"].is_unique


def test_inventory_all_null_optional_column_is_valid(rewrite, data_dir: Path) -> None:
    rewrite(data_dir / INVENTORY,
                    lambda f: f[f["color"].isna()].reset_index(drop=True).assign(
                        color=pd.Series([None] * int(f["color"].isna().sum()), dtype=object)))
    assert pq.read_schema(data_dir / INVENTORY).field("color").type == pa.null()
    frame = read(INVENTORY, data_dir)
    assert frame["color"].isna().all()


# ---------------------------------------------------------------- offers.yaml


def _set(path: tuple, value: object) -> Callable[[dict], dict]:
    def edit(raw: dict) -> dict:
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return raw
    return edit


def _launch_backwards(raw: dict) -> dict:
    launch = raw["offers"][0]["launch"]
    starts = datetime.fromisoformat(launch["starts_at"])
    launch["ends_at"] = (starts - timedelta(days=1)).isoformat()
    return raw


def _rename_key(index: int, old: str, new: str) -> Callable[[dict], dict]:
    def edit(raw: dict) -> dict:
        raw["offers"][index][new] = raw["offers"][index].pop(old)
        return raw
    return edit


CATALOG_VIOLATIONS = [
    pytest.param("offers:\n  - offer_id: a\n    name: [unclosed\n", ["not valid YAML"],
                 id="invalid-yaml"),
    pytest.param(b"\xff\xfe\x00\x80 binary junk", ["not valid YAML"], id="binary-garbage"),
    pytest.param("- offer_id: a\n- offer_id: b\n", ["expected a mapping"], id="top-level-list"),
    pytest.param("", ["expected a mapping"], id="empty-file"),
    pytest.param(lambda raw: {"control_label": "control"}, ["offers: Field required"],
                 id="missing-offers"),
    pytest.param(_set(("offers",), []), ["offers:", "at least 1"], id="empty-offers"),
    pytest.param(_set(("offers", 3, "offer_id"), "sitewide_10_off"),
                 ["duplicate offer_id 'sitewide_10_off'"], id="duplicate-offer-id"),
    pytest.param(_set(("offers", 2, "margin"), -1.0),
                 ["offers[2 'sitewide_10_off'].margin", "greater than or equal to 0"],
                 id="negative-margin"),
    pytest.param(_set(("offers", 2, "cost"), -0.1),
                 ["offers[2 'sitewide_10_off'].cost", "greater than or equal to 0"],
                 id="negative-cost"),
    pytest.param(_set(("offers", 3, "channels"), ["web", "fax"]),
                 ["offers[3 'free_shipping'].channels", "unknown channel(s) ['fax']"],
                 id="unknown-channel"),
    pytest.param(_rename_key(3, "channels", "chanels"),
                 ["offers[3 'free_shipping'].chanels", "Extra inputs are not permitted"],
                 id="unknown-offer-key"),
    pytest.param(_rename_key(0, "launch", "lauch"),
                 ["offers[0 'collab_sneaker_early_access'].lauch", "Extra inputs"],
                 id="unknown-offer-key-launch"),
    pytest.param(_set(("control_lable",), "holdout"),
                 ["control_lable", "Extra inputs are not permitted"], id="unknown-top-level-key"),
    pytest.param(_set(("offers", 0, "launch", "supply_cap"), 5),
                 ["offers[0 'collab_sneaker_early_access'].launch.supply_cap", "Extra inputs"],
                 id="unknown-launch-key"),
    pytest.param(_launch_backwards,
                 ["offers[0 'collab_sneaker_early_access'].launch",
                  "ends_at must be after starts_at"], id="launch-ends-before-start"),
    pytest.param(_set(("offers", 1, "launch", "supply"), 0),
                 ["offers[1 'puffer_jacket_drop'].launch.supply", "greater than 0"],
                 id="launch-zero-supply"),
    pytest.param(_set(("offers", 2, "fallback"), "raincheck"),
                 ["offers[2 'sitewide_10_off'].fallback", "'waitlist' or 'preorder'"],
                 id="unknown-fallback"),
    pytest.param(_set(("offers", 2, "offer_id"), "control"),
                 ["offer_id 'control' equals the control label"], id="offer-is-control"),
    pytest.param(lambda raw: _set(("offers", 4, "offer_id"), "holdout")(
                     _set(("control_label",), "holdout")(raw)),
                 ["offer_id 'holdout' equals the control label"], id="offer-is-custom-control"),
]


@pytest.mark.parametrize(("content", "expected"), CATALOG_VIOLATIONS)
def test_catalog_violation(data_dir: Path, content: str | bytes | Callable[[dict], object],
                           expected: list[str]) -> None:
    path = data_dir / OFFERS
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        path.write_text(yaml.safe_dump(content(raw), sort_keys=False), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        io.read_catalog(path)
    message = str(info.value)
    assert info.value.file == OFFERS
    assert message.startswith(f"{OFFERS}: ")
    for part in expected:
        assert part in message


def test_catalog_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as info:
        io.read_catalog(tmp_path / OFFERS)
    assert OFFERS in str(info.value)
    assert "file not found" in str(info.value)


def test_catalog_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / OFFERS).mkdir()
    with pytest.raises(ContractError):
        io.read_catalog(tmp_path / OFFERS)


def test_catalog_defaults(tmp_path: Path) -> None:
    path = tmp_path / OFFERS
    path.write_text("offers:\n  - {offer_id: a, name: A, category: c, margin: 1.5}\n")
    catalog = io.read_catalog(path)
    assert catalog.control_label == "control"
    offer = catalog.get("a")
    assert offer is not None
    assert offer.cost == 0.0
    assert offer.allows_channel("sms")
    assert offer.allows_tier(None)
    assert offer.launch is None


def test_write_catalog_round_trips(tmp_path: Path, demo_data) -> None:
    path = tmp_path / OFFERS
    io.write_catalog(demo_data.catalog, path)
    assert io.read_catalog(path) == demo_data.catalog
    assert isinstance(io.read_catalog(path), Catalog)


# ---------------------------------------------------------------- atomic writes


def _only_file(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))  # includes the hidden .name.XXXX temp files


def test_write_parquet_round_trips(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    io.write_parquet(frame, tmp_path / "sub" / "t.parquet")
    back = pd.read_parquet(tmp_path / "sub" / "t.parquet")
    assert back["a"].tolist() == [1, 2]
    assert back["b"].iloc[0] == "x" and pd.isna(back["b"].iloc[1])
    assert _only_file(tmp_path / "sub") == ["t.parquet"]


@pytest.mark.parametrize("bad", [
    pytest.param(pd.DataFrame({"a": [1, 2], "b": [object(), object()]}), id="unserializable"),
    pytest.param(pd.DataFrame({"a": [1, 2], "b": [1, "x"]}), id="mixed-types"),
])
def test_write_parquet_failure_keeps_old_file(tmp_path: Path, bad: pd.DataFrame) -> None:
    path = tmp_path / "t.parquet"
    io.write_parquet(pd.DataFrame({"a": [7, 8, 9]}), path)
    before = path.read_bytes()
    with pytest.raises(pa.ArrowException):
        io.write_parquet(bad, path)
    assert path.read_bytes() == before
    assert _only_file(tmp_path) == ["t.parquet"]


def test_write_parquet_failure_after_data_written(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The temp file is complete on disk when the rename fails: it must still be removed."""
    path = tmp_path / "t.parquet"
    io.write_parquet(pd.DataFrame({"a": [7, 8, 9]}), path)
    before = path.read_bytes()
    written: list[int] = []

    def failing_replace(src: str, dst: object) -> None:
        written.append(Path(src).stat().st_size)
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        io.write_parquet(pd.DataFrame({"a": np.arange(1000)}), path)
    monkeypatch.undo()
    assert written and written[0] > 0
    assert path.read_bytes() == before
    assert _only_file(tmp_path) == ["t.parquet"]


def test_chunk_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    path = tmp_path / "chunks.parquet"
    with pytest.raises(RuntimeError), io.ParquetChunkWriter(path) as writer:
        writer.write(pd.DataFrame({"a": [1, 2]}))
        raise RuntimeError("crash mid-stream")
    assert _only_file(tmp_path) == []


def test_chunk_writer_leaves_nothing_when_the_final_rename_fails(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.mkdir()  # the output path is a directory: os.replace fails at the very end
    with pytest.raises(OSError), io.ParquetChunkWriter(path) as writer:
        writer.write(pd.DataFrame({"a": [1, 2]}))
    assert _only_file(tmp_path) == ["out"]


def test_chunk_writer_appends_chunks(tmp_path: Path) -> None:
    path = tmp_path / "chunks.parquet"
    with io.ParquetChunkWriter(path) as writer:
        writer.write(pd.DataFrame({"a": [1, 2]}))
        writer.write(pd.DataFrame({"a": [3]}))
    assert pd.read_parquet(path)["a"].tolist() == [1, 2, 3]
    assert [len(b) for b in io.iter_parquet_batches(path, 2)] == [2, 1]
    assert _only_file(tmp_path) == ["chunks.parquet"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path, demo_data, umask):
    """Atomic writes went through tempfile.mkstemp: every output was 0600 whatever the umask."""
    frame = pd.DataFrame({"a": [1, 2]})
    old = os.umask(umask)
    try:
        io.write_parquet(frame, tmp_path / "out" / "frame.parquet")
        with io.ParquetChunkWriter(tmp_path / "chunks.parquet") as writer:
            writer.write(frame)
        io.write_catalog(demo_data.catalog, tmp_path / "offers.yaml")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.rglob("*.*")}
    assert modes == dict.fromkeys(["frame.parquet", "chunks.parquet", "offers.yaml"],
                                  0o666 & ~umask)
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_customer_level_outputs_stay_private_whatever_the_umask(tmp_path, umask):
    """batch-score and export-training write one row per customer: 0600, as before."""
    frame = pd.DataFrame({"customer_id": ["C1", "C2"]})
    old = os.umask(umask)
    try:
        io.write_parquet(frame, tmp_path / "export.parquet", private=True)
        with io.ParquetChunkWriter(tmp_path / "scores.parquet", private=True) as writer:
            writer.write(frame)
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {
        "export.parquet": 0o600, "scores.parquet": 0o600}
