"""bench/categorical_truth.py's probes (issue 12, native categoricals): the old one-hot cap and
extra LightGBM parameters, on while inside and gone after."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import categorical_truth as ct  # noqa: E402

from features.build import infer_spec  # noqa: E402
from features.schema import MAX_LEVELS  # noqa: E402
from training.settings import BoosterParams  # noqa: E402

#: store i seen i + 1 times: the 20 rarest are past the old cap
FRAME = pd.DataFrame({"store": [f"st{i:03d}" for i in range(MAX_LEVELS + 20)
                                for _ in range(i + 1)]})


def test_one_hot_probe_restores_the_old_cap_and_then_the_codes() -> None:
    with ct.probe(one_hot=True, lgb={}):
        capped = infer_spec(FRAME, [("store", "categorical")]).features[0]
    assert capped.encoding == "one_hot" and len(capped.levels) == MAX_LEVELS
    assert capped.levels[0] == "st020"  # the 20 rarest folded away
    after = infer_spec(FRAME, [("store", "categorical")]).features[0]
    assert after.encoding == "codes" and len(after.levels) == MAX_LEVELS + 20


def test_lgb_probe_only_touches_boosters_with_level_codes() -> None:
    extra = ct.parse_lgb(["max_cat_to_onehot=1001", "cat_smooth=2.5", "min_data_per_group=leaf"])
    assert extra == {"max_cat_to_onehot": 1001, "cat_smooth": 2.5, "min_data_per_group": "leaf"}
    coded = BoosterParams(min_child_samples=200, categorical=(0,))
    with ct.probe(one_hot=False, lgb=extra):
        inside = coded.as_lightgbm(1)
        plain = BoosterParams().as_lightgbm(1)
    assert inside["max_cat_to_onehot"] == 1001 and inside["min_data_per_group"] == 200
    assert "max_cat_to_onehot" not in plain
    assert "max_cat_to_onehot" not in coded.as_lightgbm(1)  # restored
    with pytest.raises(SystemExit):
        ct.parse_lgb(["no_value"])
