"""Train/holdout split by customer, so no customer is on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd


def holdout_mask(customer_ids: pd.Series, test_size: float, seed: int) -> np.ndarray:
    """True for rows whose customer falls in the holdout share; stable for a given seed."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size}")
    key = f"{seed % 10**16:016d}"  # pandas wants exactly 16 characters; all of them the seed
    hashes = pd.util.hash_pandas_object(customer_ids.astype(str), index=False, hash_key=key)
    return (hashes.to_numpy() % 10_000) < int(round(test_size * 10_000))
