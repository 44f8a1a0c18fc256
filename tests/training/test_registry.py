"""MLflow names built from catalog text."""

from __future__ import annotations

import pytest
from mlflow.utils.validation import _validate_metric, _validate_metric_name

from training.registry import metric_name


@pytest.mark.parametrize("name", ["qini_free_shipping", "auuc_réduc_été", "policy_value_x-1.2"])
def test_metric_name_keeps_names_mlflow_accepts(name):
    assert metric_name(name) == name


@pytest.mark.parametrize("name", ["qini_réduc_été_🌞", "qini_a/../b", "qini_a/b", "qini_50%_off",
                                  "qini_x.", "qini_"  + "☃" * 3])
def test_metric_name_makes_any_offer_id_a_valid_distinct_metric(name):
    safe = metric_name(name)
    _validate_metric_name(safe)  # MLflow's own check: raises on a name it would refuse
    assert safe.startswith("qini_") and safe != metric_name(name + "?")


def test_metric_name_cuts_a_long_offer_id_to_a_length_mlflow_accepts():
    long_id = "qini_" + "x" * 300
    safe = metric_name(long_id)
    _validate_metric(safe, 0.1, 0, 0)  # the length check MLflow runs when the metric is logged
    assert safe.startswith("qini_xxx") and safe != metric_name(long_id[:-1] + "y")
