"""The model matrix (features/build.py): the one function training and serving share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import io
from features.build import build_matrix, build_row, categorical_feature, infer_spec
from features.context import situate
from features.customers import CustomerTable
from features.schema import (
    CONTEXT_COLUMNS,
    MAX_CODES,
    MAX_LEVELS,
    Feature,
    FeatureSpec,
    feature_columns,
)
from nba import demo

SPEC = FeatureSpec((
    Feature("channel", "categorical", ("app", "store", "web")),
    Feature("monetary", "numeric"),
    Feature("newbie", "bool"),
))


def test_matrix_one_hot_numeric_and_bool() -> None:
    frame = pd.DataFrame({
        "newbie": [True, False, True, False],
        "monetary": [1.5, np.nan, -3.0, 0.0],
        "channel": ["web", "app", "fax", None],  # fax: unseen in training; None: missing
        "ignored": ["x", "y", "z", "w"],
    })
    matrix = build_matrix(frame, SPEC)
    assert SPEC.matrix_names == ["channel=app", "channel=store", "channel=web", "monetary",
                                 "newbie"]
    assert matrix.dtype == np.float32
    expected = np.array([
        [0, 0, 1, 1.5, 1],
        [1, 0, 0, np.nan, 0],
        [0, 0, 0, -3.0, 1],
        [0, 0, 0, 0.0, 0],
    ], dtype=np.float32)
    np.testing.assert_array_equal(matrix, expected)  # NaN == NaN here


def test_bool_and_int_nulls_from_parquet_become_nan(tmp_path: Path) -> None:
    """Parquet nulls arrive as None in object (bool) or NaN in float (int) columns."""
    frame = pd.DataFrame({"channel": ["app", "web", "store"],
                          "monetary": pd.array([1, None, 3], dtype="Int64"),
                          "newbie": pd.array([True, None, False], dtype="boolean")})
    io.write_parquet(frame, tmp_path / "t.parquet")
    back = pq.read_table(tmp_path / "t.parquet").to_pandas()
    matrix = build_matrix(back, SPEC)
    np.testing.assert_array_equal(matrix[:, 3], [1, np.nan, 3])
    np.testing.assert_array_equal(matrix[:, 4], [1, np.nan, 0])
    np.testing.assert_array_equal(matrix[:, :3], np.eye(3)[[0, 2, 1]])


def test_matrix_columns_follow_spec_not_frame_order() -> None:
    train = pd.DataFrame({"b": ["y", "x", "y"], "a": [1.0, 2.0, 3.0], "c": [True, False, True]})
    spec = infer_spec(train, [("c", "bool"), ("b", "categorical"), ("a", "numeric")])
    assert spec.matrix_names == ["c", "b=x", "b=y", "a"]
    shuffled = train[["a", "c", "b"]]
    matrix = build_matrix(shuffled, spec)
    for j, name in enumerate(spec.matrix_names):
        if "=" in name:
            column, level = name.split("=")
            expected = (train[column] == level).to_numpy(dtype=np.float32)
        else:
            expected = train[name].to_numpy(dtype=np.float32)
        np.testing.assert_array_equal(matrix[:, j], expected, err_msg=name)


def test_missing_feature_column_is_an_error() -> None:
    with pytest.raises(KeyError):
        build_matrix(pd.DataFrame({"channel": ["app"], "monetary": [1.0]}), SPEC)


def test_infer_spec_sorted_levels_and_kinds() -> None:
    frame = pd.DataFrame({
        "tier": ["silver", "bronze", None, "gold", "bronze", "platinum"],
        "spend": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "newbie": [True, False, True, False, True, False],
    })
    spec = infer_spec(frame, [("spend", "numeric"), ("tier", "categorical"), ("newbie", "bool")])
    assert spec.names == ["spend", "tier", "newbie"]
    assert spec.features[1] == Feature("tier", "categorical",
                                       ("bronze", "gold", "platinum", "silver"))
    assert spec.features[0].levels == () and spec.features[2].levels == ()
    assert spec.width == 1 + 4 + 1


def test_training_and_serving_frames_agree(tmp_path: Path, demo_data) -> None:
    """A customer's serving row equals their training row when their features did not change."""
    paths = demo.write(demo_data, tmp_path)
    exposures = io.read_exposures(paths[io.EXPOSURES], io.read_catalog(paths[io.OFFERS]))
    spec = infer_spec(exposures,
                      feature_columns(pq.read_schema(paths[io.EXPOSURES]), io.EXPOSURES))
    customers = io.read_customers(paths[io.CUSTOMERS], spec).set_index("customer_id",
                                                                        drop=False)
    train = build_matrix(exposures, spec)
    table = CustomerTable.from_frame(customers.loc[exposures["customer_id"]], spec,
                                     lambda matrix: np.zeros(len(matrix)))
    assert train.shape == (1200, spec.width)
    # customers do not carry the request's context: a request does, and situates the row
    context = [f.name for f in spec.features if f.name in CONTEXT_COLUMNS]
    assert context == ["device", "page", "cart_value"]
    for row in range(0, 1200, 7):
        values = exposures.iloc[row][context].to_dict()
        np.testing.assert_array_equal(situate(table.take(row), values, spec).matrix[0],
                                      train[row])


def test_an_omitted_context_column_is_null_and_situating_leaves_the_table_alone() -> None:
    spec = FeatureSpec((Feature("recency", "numeric"), Feature("page", "categorical", ("a", "b")),
                        Feature("cart_value", "numeric")))
    table = CustomerTable.from_frame(pd.DataFrame({"customer_id": ["x", "y"], "recency": [3, 4]}),
                                     spec, lambda matrix: np.zeros(len(matrix)))
    np.testing.assert_array_equal(table.matrix, [[3, 0, 0, np.nan], [4, 0, 0, np.nan]])

    situated = situate(table, {"page": "b"}, spec)

    np.testing.assert_array_equal(situated.matrix, [[3, 0, 1, np.nan], [4, 0, 1, np.nan]])
    assert situated.feature_row(1) == {"recency": 4, "page": "b", "cart_value": None}
    assert table.feature_row(1)["page"] is None  # a new table: the old one is unchanged


# ---------------------------------------------------------------- property


LEVELS = st.sampled_from(["a", "b", "c", "d", "e", "ü", ""])


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """A training frame and a serving frame over the same random feature columns."""
    kinds = draw(st.lists(st.sampled_from(["numeric", "bool", "categorical"]),
                          min_size=1, max_size=6))
    columns = [(f"f{i}", kind) for i, kind in enumerate(kinds)]

    def frame(n: int) -> pd.DataFrame:
        data = {}
        for name, kind in columns:
            if kind == "numeric":
                cells = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False,
                                                       width=32))
                data[name] = pd.array(draw(st.lists(cells, min_size=n, max_size=n)),
                                      dtype="float64")
            elif kind == "bool":
                data[name] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
            else:
                cells = st.one_of(st.none(), LEVELS)
                data[name] = pd.Series(draw(st.lists(cells, min_size=n, max_size=n)),
                                       dtype=object)
        return pd.DataFrame(data, index=pd.RangeIndex(n))

    train = frame(draw(st.integers(0, 20)))
    serve = frame(draw(st.integers(0, 20)))
    return train, serve, columns


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_matrix_shape_and_one_hot_property(case: tuple[pd.DataFrame, pd.DataFrame, list]) -> None:
    train, serve, columns = case
    spec = infer_spec(train, columns)
    assert spec.names == [name for name, _ in columns]
    assert len(spec.matrix_names) == spec.width
    for feature in spec.features:
        if feature.kind == "categorical":
            assert list(feature.levels) == sorted(set(train[feature.name].dropna()))
        else:
            assert feature.levels == ()

    for frame in (train, serve):
        matrix = build_matrix(frame, spec)
        assert matrix.shape == (len(frame), spec.width)
        col = 0
        for feature in spec.features:
            block = matrix[:, col:col + feature.width]
            values = frame[feature.name]
            if feature.kind == "categorical":
                assert set(np.unique(block)) <= {0.0, 1.0}
                assert (block.sum(axis=1) <= 1).all()
                # exactly one 1 iff the value is a training level, and in the right place
                known = values.isin(feature.levels).to_numpy()
                np.testing.assert_array_equal(block.sum(axis=1), known.astype(np.float32))
                for row in np.flatnonzero(known):
                    assert feature.levels[int(block[row].argmax())] == values.iloc[row]
            else:
                expected = values.to_numpy(dtype=np.float32, na_value=np.nan)
                np.testing.assert_array_equal(block[:, 0], expected)
            col += feature.width
        assert col == spec.width



def test_build_row_encodes_each_row_as_build_matrix_does(demo_data: demo.DemoData) -> None:
    frame = demo_data.customers.head(60).copy()
    exposures = pa.Schema.from_pandas(demo_data.exposures, preserve_index=False)
    columns = [c for c in feature_columns(exposures, io.EXPOSURES) if c[0] in frame]
    spec = infer_spec(frame.iloc[:30], columns)  # later rows may hold unseen levels
    frame = frame.astype(object)
    frame.iloc[::7, 1:] = None  # nulls in every column of some rows
    matrix = build_matrix(frame, spec)
    for row, record in enumerate(frame.to_dict("records")):
        np.testing.assert_array_equal(build_row(record, spec)[0], matrix[row])


def _old_one_hot(frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The encoding before level codes existed, written out longhand: the reference."""
    columns = []
    for feature in spec.features:
        values = frame[feature.name].tolist()
        if feature.kind == "categorical":
            columns += [[1.0 if v == level else 0.0 for v in values] for level in feature.levels]
        else:
            columns.append([np.nan if v is None or v != v else float(v) for v in values])
    return np.array(columns, dtype=np.float32).T


def test_at_most_max_levels_is_one_hot_as_before() -> None:
    """A categorical of up to MAX_LEVELS levels keeps its one-hot columns, byte for byte."""
    rng = np.random.default_rng(3)
    levels = np.array([f"L{i:02d}" for i in range(MAX_LEVELS)], dtype=object)
    frame = pd.DataFrame({"x": levels[rng.integers(0, MAX_LEVELS, 2_000)],
                          "n": rng.normal(size=2_000)})
    frame.loc[::11, "x"] = None
    spec = infer_spec(frame, [("x", "categorical"), ("n", "numeric")])
    assert spec.features[0] == Feature("x", "categorical", tuple(levels))  # default encoding
    assert spec.features[0].encoding == "one_hot" and spec.categorical_columns == ()
    serving = frame.assign(x=frame["x"].where(frame.index % 13 > 0, "new level"))
    matrix = build_matrix(serving, spec)
    assert matrix.tobytes() == _old_one_hot(serving, spec).tobytes()
    assert spec.matrix_names[:2] == ["x=L00", "x=L01"] and spec.width == MAX_LEVELS + 1


def test_more_than_max_levels_is_one_column_of_level_codes() -> None:
    levels = [f"L{i:02d}" for i in range(MAX_LEVELS + 10)]
    values = [level for i, level in enumerate(levels) for _ in range(i + 1)]
    spec = infer_spec(pd.DataFrame({"n": 1.0, "x": values}),
                      [("n", "numeric"), ("x", "categorical")])
    feature = spec.features[1]
    assert feature == Feature("x", "categorical", tuple(levels), "codes")  # every level kept
    assert feature.width == 1 and spec.width == 2 and spec.matrix_names == ["n", "x"]
    assert spec.categorical_columns == (1,)
    frame = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "x": ["L00", "L59", "unseen", None]})
    matrix = build_matrix(frame, spec)
    np.testing.assert_array_equal(matrix, np.array([[1, 0], [2, 59], [3, np.nan],
                                                    [4, np.nan]], dtype=np.float32))
    for row, record in enumerate(frame.astype(object).to_dict("records")):
        np.testing.assert_array_equal(build_row(record, spec)[0], matrix[row])
    assert build_row({}, spec)[0, 1] != build_row({}, spec)[0, 1]  # absent: NaN


def test_level_codes_keep_the_max_codes_most_frequent() -> None:
    counts = pd.Series(np.arange(MAX_CODES + 20, 0, -1),
                       index=[f"L{i:04d}" for i in range(MAX_CODES + 20)])
    feature = categorical_feature("x", counts)
    assert feature.encoding == "codes" and len(feature.levels) == MAX_CODES
    assert feature.levels == tuple(sorted(counts.index[:MAX_CODES]))


def test_level_codes_break_ties_at_the_cut_by_name_not_row_order() -> None:
    """1,200 levels of 2 rows each: a shuffled frame keeps the same 1,000 levels."""
    levels = [f"L{i:04d}" for i in range(MAX_CODES + 200)]
    frame = pd.DataFrame({"x": levels * 2})
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    kept = infer_spec(frame, [("x", "categorical")]).features[0]
    assert infer_spec(shuffled, [("x", "categorical")]).features[0] == kept
    assert kept.levels == tuple(levels[:MAX_CODES])
    reversed_counts = pd.Series(2, index=levels[::-1])
    assert categorical_feature("x", reversed_counts) == kept


def test_a_coded_context_column_is_situated_like_training() -> None:
    """A request's store (a context column) is encoded as its code, like training's matrix."""
    levels = tuple(f"st{i:03d}" for i in range(MAX_LEVELS + 1))
    spec = FeatureSpec((Feature("recency", "numeric"),
                        Feature("store_id", "categorical", levels, "codes")))
    table = CustomerTable.from_frame(pd.DataFrame({"customer_id": ["a"], "recency": [3.0]}),
                                     spec, lambda matrix: np.zeros(len(matrix)))
    np.testing.assert_array_equal(situate(table, {"store_id": "st050"}, spec).matrix[0], [3, 50])
    assert np.isnan(situate(table, {"store_id": "st999"}, spec).matrix[0, 1])


def test_a_feature_keeps_its_level_positions_out_of_equality_and_the_saved_spec() -> None:
    """build_row's lookup is built once per Feature (not rehashing the levels per request)
    and is no part of what a spec compares, hashes or saves."""
    import pickle
    from dataclasses import asdict

    levels = tuple(f"L{i:04d}" for i in range(MAX_CODES))
    feature = Feature("x", "categorical", levels, "codes")
    assert feature.positions is feature.positions and feature.positions["L0500"] == 500
    fresh = Feature("x", "categorical", levels, "codes")
    assert fresh == feature and hash(fresh) == hash(feature)
    assert "positions" not in asdict(feature)
    assert pickle.loads(pickle.dumps(feature)) == feature


def test_an_all_null_feature_column_says_so() -> None:
    """pandas writes a column of only None as type null; the message said only 'type null'."""
    from features.errors import ContractError
    from features.schema import feature_columns

    schema = pa.schema([("customer_id", pa.string()), ("treatment", pa.string()),
                        ("empty", pa.null())])
    with pytest.raises(ContractError, match="column 'empty': type null is not allowed for a "
                       r"feature \(numeric, bool or string\); every value is null: drop"):
        feature_columns(schema, "exposures.parquet")
