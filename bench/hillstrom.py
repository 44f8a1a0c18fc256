"""The Hillstrom e-mail experiment mapped onto the data contract (see DATA_CONTRACT.md).

64,000 customers randomized into three arms (mens e-mail, womens e-mail, no e-mail), so the
assignment propensity is 1/3 for everyone and IPW estimates on a holdout are unbiased.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import Catalog, Offer

DEFAULT_PATH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "hillstrom" \
    / "hillstrom.csv"
ARMS = {"No E-Mail": "control", "Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email"}
FEATURES = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
            "channel"]
OUTCOMES = ("spend", "conversion", "visit")


def load(path: Path = DEFAULT_PATH) -> pd.DataFrame:
    """The raw CSV with the arm mapped to contract treatment labels and a customer_id."""
    if not path.exists():
        raise SystemExit(f"Hillstrom data not found at {path}; pass --hillstrom PATH")
    raw = pd.read_csv(path)
    raw.insert(0, "customer_id", [f"H{i:05d}" for i in range(len(raw))])
    raw["treatment"] = raw["segment"].map(ARMS)
    if raw["treatment"].isna().any():
        raise SystemExit(f"{path.name}: column 'segment': unexpected arm labels")
    return raw


def exposures(raw: pd.DataFrame, converted: str) -> pd.DataFrame:
    """Contract exposures: `converted` is the chosen binary outcome, revenue is spend."""
    frame = raw[["customer_id", "treatment"]].copy()
    frame["converted"] = raw[converted].astype(np.int64)
    frame["revenue"] = raw["spend"].astype(np.float64)
    frame["propensity"] = 1.0 / 3.0
    for column in FEATURES:
        frame[column] = raw[column]
    return frame


def customers(raw: pd.DataFrame) -> pd.DataFrame:
    """Contract customers table: the features, everyone contactable."""
    frame = raw[["customer_id", *FEATURES]].copy()
    frame["contactable"] = True
    return frame


def catalog(margin: float, cost: float) -> Catalog:
    """Two e-mails; `margin` is the value of one outcome unit, `cost` the cost per e-mail."""
    offers = tuple(Offer(offer_id=o, name=o.replace("_", " "), category="email", margin=margin,
                         cost=cost, channels=("email",)) for o in ("mens_email", "womens_email"))
    return Catalog(control_label="control", offers=offers)


def stratified_split(raw: pd.DataFrame, test_size: float, seed: int,
                     outcome: str = "conversion") -> np.ndarray:
    """Holdout mask stratified by arm and outcome (so rare conversions split evenly)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(raw), dtype=bool)
    for _, rows in raw.groupby(["treatment", outcome]).indices.items():
        chosen = rng.permutation(rows)[: int(round(test_size * len(rows)))]
        mask[chosen] = True
    return mask
