"""The online customer table (features/customers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import io
from features.build import build_matrix
from features.customers import CustomerTable
from features.schema import Feature, FeatureSpec

SPEC = FeatureSpec((Feature("monetary", "numeric"),
                    Feature("channel", "categorical", ("app", "web"))))


class Predictor:
    """A stand-in value model that records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        self.calls.append(matrix.copy())
        return 1000.0 + matrix[:, 0]  # recognizably predicted, and tied to the row


def never_called(matrix: np.ndarray) -> np.ndarray:
    raise AssertionError("predict_value must not be called when every value is given")


def customers(**extra: object) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4"],
                         "monetary": [10.0, 20.0, 30.0, 40.0],
                         "channel": ["app", "web", "store", None],
                         **extra})


def test_given_values_used_and_only_missing_ones_predicted() -> None:
    frame = customers(customer_value=[5.0, np.nan, 0.0, np.nan])
    predict = Predictor()
    table = CustomerTable.from_frame(frame, SPEC, predict)

    assert len(predict.calls) == 1
    np.testing.assert_array_equal(predict.calls[0], build_matrix(frame, SPEC)[[1, 3]])
    np.testing.assert_array_equal(table.value, [5.0, 1020.0, 0.0, 1040.0])  # 0.0 is a value
    np.testing.assert_array_equal(table.value_is_predicted, [False, True, False, True])


def test_all_values_predicted_without_the_column() -> None:
    predict = Predictor()
    table = CustomerTable.from_frame(customers(), SPEC, predict)
    assert len(predict.calls) == 1 and len(predict.calls[0]) == 4
    np.testing.assert_array_equal(table.value, [1010.0, 1020.0, 1030.0, 1040.0])
    assert table.value_is_predicted.all()


def test_no_prediction_when_every_value_given() -> None:
    table = CustomerTable.from_frame(customers(customer_value=[1.0, 2.0, 3.0, 4.0]), SPEC,
                                     never_called)
    np.testing.assert_array_equal(table.value, [1.0, 2.0, 3.0, 4.0])
    assert not table.value_is_predicted.any()


def test_contactable_defaults_to_true_without_the_column() -> None:
    table = CustomerTable.from_frame(customers(), SPEC, Predictor())
    assert table.contactable.dtype == bool
    assert table.contactable.tolist() == [True] * 4


def test_null_contactable_means_true_and_false_is_kept() -> None:
    frame = customers(contactable=pd.Series([True, None, False, None], dtype=object))
    table = CustomerTable.from_frame(frame, SPEC, Predictor())
    assert table.contactable.tolist() == [True, True, False, True]


def test_matrix_index_and_special_columns() -> None:
    frame = customers(loyalty_tier=["gold", None, "silver", np.nan])
    table = CustomerTable.from_frame(frame, SPEC, Predictor())
    np.testing.assert_array_equal(table.matrix, build_matrix(frame, SPEC))
    assert table.matrix.flags.c_contiguous
    assert len(table) == 4
    assert table.row("c3") == 2 and table.row("nobody") is None
    assert table.loyalty_tier.tolist() == ["gold", None, "silver", None]
    assert table.preferred_size.tolist() == [None] * 4


def test_from_a_read_customers_file(tmp_path: Path) -> None:
    """End to end through parquet: null values and null contactable survive the round trip."""
    frame = customers(customer_value=[5.0, None, 7.0, None],
                      contactable=pd.array([False, None, True, True], dtype="boolean"),
                      preferred_size=["42", None, "44", "39"])
    path = tmp_path / io.CUSTOMERS
    io.write_parquet(frame, path)
    predict = Predictor()
    table = CustomerTable.from_frame(io.read_customers(path, SPEC), SPEC, predict)
    assert table.contactable.tolist() == [False, True, True, True]
    np.testing.assert_array_equal(table.value, [5.0, 1020.0, 7.0, 1040.0])
    np.testing.assert_array_equal(table.value_is_predicted, [False, True, False, True])
    assert table.preferred_size.tolist() == ["42", None, "44", "39"]


@pytest.mark.parametrize("n_missing", [0, 1, 300])
def test_demo_customers(tmp_path: Path, demo_data, n_missing: int) -> None:
    frame = demo_data.customers.copy()
    frame.loc[frame.index[:n_missing], "customer_value"] = np.nan
    spec = FeatureSpec((Feature("monetary", "numeric"), Feature("frequency", "numeric")))
    predict = Predictor()
    table = CustomerTable.from_frame(frame, spec, predict)
    assert int(table.value_is_predicted.sum()) == n_missing
    assert sum(len(c) for c in predict.calls) == n_missing
    assert not np.isnan(table.value).any()
    np.testing.assert_array_equal(table.contactable, demo_data.customers["contactable"])


# ---------------------------------------------------------------- stored profiles


def _through_the_store(frame: pd.DataFrame) -> dict[str, dict]:
    """Each row as the state store keeps it: the JSON document `profile_documents` writes."""
    import json

    from features.customers import profile_documents

    return {cid: json.loads(doc) for batch in profile_documents(frame, batch_rows=3)
            for cid, doc in batch}


@pytest.mark.parametrize("extra", [
    {},
    {"customer_value": [5.0, np.nan, 0.0, np.nan], "contactable": [True, False, None, True],
     "loyalty_tier": ["gold", None, "silver", "gold"]},
])
def test_a_stored_profile_decides_like_the_in_memory_row(extra: dict) -> None:
    frame = customers(**extra)
    frame.loc[1, "monetary"] = np.nan
    whole = CustomerTable.from_frame(frame, SPEC, Predictor())
    stored = _through_the_store(frame)

    assert list(stored) == whole.ids
    for row, cid in enumerate(whole.ids):
        one = CustomerTable.from_profile(cid, stored[cid], SPEC, Predictor())
        np.testing.assert_array_equal(one.matrix[0], whole.matrix[row])
        for name in ("contactable", "loyalty_tier", "preferred_size", "preferred_color",
                     "value", "value_is_predicted"):
            np.testing.assert_array_equal(getattr(one, name), getattr(whole, name)[row:row + 1],
                                          err_msg=f"{name} of {cid}")
        assert one.feature_row(0) == whole.feature_row(row)


def test_profile_documents_come_in_bounded_batches() -> None:
    from features.customers import profile_documents

    batches = list(profile_documents(customers(), batch_rows=3))
    assert [len(b) for b in batches] == [3, 1]
