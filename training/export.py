"""The decision log as training data: one exposures.parquet row per logged decision.

A pure function of the log's frames (`DecisionLog.decisions_frame` / `.outcomes_frame`), so the
same code serves `nba export-training` and the closed-loop test. A served decision is an
exposure to its top offer; a holdout decision, or one that served nothing, is a control row.
The logged propensity (the probability that the logging policy did what it did, holdout share
included) goes along, so IPW estimates on the exported rows stay unbiased.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.schema import CONTEXT_COLUMNS

#: Floor of an exported propensity: the contract wants (0, 1]; a logged 0 would be a bug upstream,
#: and a floor keeps one such row from dividing by zero in every IPW estimate.
MIN_PROPENSITY = 1e-6
DECISION_COLUMNS = ("decision_id", "decided_at", "customer_id", "holdout", "propensity",
                    "offer_ids", "features")
OUTCOME_COLUMNS = ("decision_id", "event", "revenue")
CONTRACT_COLUMNS = ("customer_id", "treatment", "converted", "revenue", "propensity",
                    "exposed_at")


def export_training(decisions: pd.DataFrame, outcomes: pd.DataFrame,
                    control_label: str) -> pd.DataFrame:
    """The log as an exposures frame in the data contract, one row per logged decision.

    `treatment` is the first offer served, or `control_label` for holdout decisions and
    decisions that served nothing; `converted` is 1 when the decision has any `purchased`
    outcome (tied to an offer or not) and `revenue` sums those purchases; `propensity` is the
    logged one clipped into (0, 1]; `exposed_at` is when it was decided; then one column per
    feature of the logged feature rows (`features`: dicts, as `decisions_frame` decodes them),
    typed as the training data had them. Raises ValueError on a missing column or a feature
    whose logged values mix types.
    """
    _require(decisions, DECISION_COLUMNS, "decisions")
    _require(outcomes, OUTCOME_COLUMNS, "outcomes")
    ids = decisions["decision_id"].astype(str).to_numpy()
    served_first = [_first(offer_ids) for offer_ids in decisions["offer_ids"]]
    holdout = decisions["holdout"].astype(bool).to_numpy()
    treatment = [control_label if held or first is None else first
                 for held, first in zip(holdout, served_first, strict=True)]

    purchases = outcomes[outcomes["event"] == "purchased"]
    spent = purchases.groupby(purchases["decision_id"].astype(str))["revenue"].sum()
    converted = np.isin(ids, spent.index.to_numpy()).astype(np.int64)
    revenue = pd.Series(ids).map(spent).fillna(0.0).to_numpy(dtype=np.float64)
    propensity = np.clip(decisions["propensity"].to_numpy(dtype=np.float64), MIN_PROPENSITY, 1.0)

    frame = pd.DataFrame({
        "customer_id": pd.Series(decisions["customer_id"].astype(str).to_numpy(), dtype="str"),
        "treatment": pd.Series(treatment, dtype="str"),
        "converted": converted,
        "revenue": revenue,
        "propensity": propensity,
        "exposed_at": pd.to_datetime(pd.Series(decisions["decided_at"].to_numpy()), utc=True),
    })
    rows = list(decisions["features"])
    for name in _feature_names(rows):
        frame[name] = _typed(name, [row.get(name) for row in rows])
    return frame


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks column(s) {missing}")


def _first(offer_ids: Any) -> str | None:
    """The offer served first, or None when nothing was served."""
    if offer_ids is None or len(offer_ids) == 0:
        return None
    return str(offer_ids[0])


def _feature_names(rows: list[Mapping[str, Any]]) -> list[str]:
    """Every feature named in any row, in first-seen order (model versions may differ)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update((name, None) for name in row if name not in CONTRACT_COLUMNS)
    return list(names)


def _typed(name: str, values: list[Any]) -> pd.Series:
    """A feature column with the type the JSON round trip lost: bool, int, float or string.

    Nulls stay nulls (nullable Int64 / boolean when a column has them). A feature that is null
    in every row carries no type: it is written as float (a categorical context column as
    string, the type the data contract declares for it).
    """
    present = [v for v in values if v is not None and not _is_nan(v)]
    if not present and CONTEXT_COLUMNS.get(name) == "categorical":
        # a context column no request gave: still the string column the contract declares
        return pd.Series(values, dtype="str")
    if all(isinstance(v, bool | np.bool_) for v in present) and present:
        flags: str | type = "boolean" if len(present) < len(values) else bool
        return pd.Series(values, dtype=flags)
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
           for v in present) and present:
        whole: str | type = "Int64" if len(present) < len(values) else np.int64
        return pd.Series(values, dtype=whole)
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
           for v in present):
        return pd.Series([np.nan if v is None else v for v in values], dtype=np.float64)
    if all(isinstance(v, str) for v in present):
        return pd.Series(values, dtype="str")
    kinds = sorted({type(v).__name__ for v in present})
    raise ValueError(f"feature '{name}' mixes types {kinds} across logged decisions")


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)
