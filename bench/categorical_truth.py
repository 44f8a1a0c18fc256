"""High-cardinality categoricals (issue 12): each menu candidate's out-of-fold truth on the
unseen worlds, with level codes (the library's encoding past 50 levels) or the old one-hot cap.

    nice .venv/bin/python bench/categorical_truth.py --seeds 5                 # level codes
    nice .venv/bin/python bench/categorical_truth.py --seeds 5 --one-hot       # the old cap
    nice .venv/bin/python bench/categorical_truth.py --seeds 5 --lgb max_cat_to_onehot=1001

`--one-hot` encodes every categorical as before level codes existed (one-hot over its 50 most
frequent levels, the rest "unknown"); `--lgb NAME=VALUE` adds a LightGBM parameter to every
booster that has level-code columns (NAME=leaf: that booster's min_child_samples). Both are
probes for this bench, not library options. Prints `bench/selection_truth.py --summary`'s table
(true value of each candidate's out-of-fold arms / oracle, on the selection rows, no refit).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import quiet_logging  # noqa: E402
from selection_truth import summarize  # noqa: E402

import features.build  # noqa: E402
from features.schema import MAX_LEVELS, Feature  # noqa: E402
from nba.unseen_worlds import UNSEEN  # noqa: E402
from training import settings as training_settings  # noqa: E402
from training.settings import BoosterParams, TrainSettings  # noqa: E402


def capped_one_hot(name: str, counts: pd.Series) -> Feature:
    """The encoding before level codes: one-hot over the MAX_LEVELS most frequent levels."""
    return Feature(name, "categorical", tuple(sorted(counts.index[:MAX_LEVELS])))


def parse_lgb(pairs: list[str]) -> dict[str, Any]:
    """{name: value} from NAME=VALUE strings (numbers as numbers; "leaf" kept as is)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--lgb wants NAME=VALUE, got {pair!r}")
        try:
            params[name] = int(value)
        except ValueError:
            try:
                params[name] = float(value)
            except ValueError:
                params[name] = value
    return params


@contextmanager
def probe(*, one_hot: bool, lgb: dict[str, Any]) -> Iterator[None]:
    """Within: categoricals one-hot as before (`one_hot`) and `lgb` added to the LightGBM
    parameters of every booster with level-code columns; restored on exit."""
    encode = features.build.categorical_feature
    as_lightgbm = BoosterParams.as_lightgbm

    def patched(self: BoosterParams, seed: int) -> dict[str, Any]:
        out = as_lightgbm(self, seed)
        if self.categorical:
            out |= {k: self.min_child_samples if v == "leaf" else v for k, v in lgb.items()}
        return out

    if one_hot:
        features.build.categorical_feature = capped_one_hot
    training_settings.BoosterParams.as_lightgbm = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        features.build.categorical_feature = encode
        training_settings.BoosterParams.as_lightgbm = as_lightgbm  # type: ignore[method-assign]


def main() -> None:
    """Parse arguments and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default="store_events",
                        help=f"comma-separated unseen worlds ({', '.join(UNSEEN)})")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--one-hot", action="store_true",
                        help="one-hot over the 50 most frequent levels, as before level codes")
    parser.add_argument("--lgb", action="append", default=[], metavar="NAME=VALUE",
                        help="a LightGBM parameter for boosters with level-code columns")
    args = parser.parse_args()
    names = args.worlds.split(",")
    unknown = sorted(set(names) - set(UNSEEN))
    if unknown:
        raise SystemExit(f"unknown world(s) {unknown}; the unseen worlds are "
                         f"{', '.join(UNSEEN)}")
    quiet_logging()
    settings = TrainSettings(params=BoosterParams(n_estimators=args.trees, n_jobs=1))
    with probe(one_hot=args.one_hot, lgb=parse_lgb(args.lgb)):
        summarize(names, args.seeds, 0, settings, designs=UNSEEN)


if __name__ == "__main__":
    main()
