"""The whole decision policy as one object, and as one MLflow pyfunc model.

`Policy` holds the feature spec, the offer catalog snapshot, the boosters and the arbitration
rule (service.decide). The service unwraps it from the pyfunc and calls `score` on NumPy rows;
`NBAPolicyModel.predict` runs the very same code for any MLflow consumer.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.catalog import Catalog
from features.customers import CustomerTable
from features.schema import Feature, FeatureSpec
from service.decide import (
    ContactHistory,
    CustomerFacts,
    Decision,
    DecisionContext,
    LaunchStatus,
    OfferScores,
    StockLookup,
    decide,
)
from training.uplift import UpliftModel

log = logging.getLogger(__name__)

POLICY_FORMAT = 1
#: Libraries whose versions are recorded with the policy and checked on load.
TRACKED_LIBRARIES = ("lightgbm", "numpy", "causalml", "mlflow", "scikit-learn")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a saved policy depends on."""
    return {name: metadata.version(name) for name in TRACKED_LIBRARIES}


class Policy:
    """Feature spec + catalog + models + arbitration: everything from a customer row to offers."""

    def __init__(self, spec: FeatureSpec, catalog: Catalog, uplift: UpliftModel,
                 response: lgb.Booster, value: lgb.Booster, meta: dict | None = None,
                 shrinkage: float = 1.0, population_uplift: np.ndarray | None = None) -> None:
        self.spec = spec
        self.catalog = catalog
        self.uplift = uplift
        self.response = response
        self.value = value
        self.meta = meta or {}
        # Served uplift = shrinkage * per-customer estimate + (1 - shrinkage) * the offer's
        # average effect: with weak evidence (shrinkage near 0) every customer gets the best
        # single offer, with strong evidence (near 1) the policy targets.
        self.shrinkage = float(shrinkage)
        self.population_uplift = (np.zeros(len(catalog.offers)) if population_uplift is None
                                  else np.asarray(population_uplift, dtype=np.float64))
        position = {offer_id: j for j, offer_id in enumerate(uplift.offer_ids)}
        # catalog offer k -> uplift-model column, -1 where the training data had no such arm
        self._columns = np.array([position.get(o, -1) for o in catalog.offer_ids])
        self._modelled = self._columns >= 0

    def score(self, X: np.ndarray, num_threads: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(uplift, p_treated, p_control) per row; offers in catalog order, NaN if unmodelled."""
        raw, p_treated_m = self.uplift.predict(X, num_threads)
        p_control = p_treated_m[:, 0] - raw[:, 0] if raw.shape[1] else np.zeros(len(X))
        uplift = self.shrink(self._in_catalog_order(raw))
        return uplift, p_control[:, None] + uplift, p_control

    def shrink(self, uplift: np.ndarray) -> np.ndarray:
        """Pull per-customer uplift towards each offer's average effect by the shrinkage."""
        if self.shrinkage == 1.0:
            return uplift
        return self.shrinkage * uplift + (1.0 - self.shrinkage) * self.population_uplift

    def raw_uplift(self, X: np.ndarray) -> np.ndarray:
        """Per-customer uplift before shrinkage (catalog order, NaN if unmodelled)."""
        return self._in_catalog_order(self.uplift.predict(X)[0])

    def _in_catalog_order(self, model_columns: np.ndarray) -> np.ndarray:
        """Uplift-model columns rearranged to catalog order; NaN for unmodelled offers."""
        uplift = np.full((model_columns.shape[0], len(self._columns)), np.nan)
        uplift[:, self._modelled] = model_columns[:, self._columns[self._modelled]]
        return uplift

    def predict_value(self, X: np.ndarray) -> np.ndarray:
        """Predicted baseline customer value (used where customer_value is missing)."""
        if len(X) == 0:
            return np.zeros(0)
        return np.maximum(self.value.predict(X, num_threads=1), 0.0)

    def customers(self, frame: pd.DataFrame) -> CustomerTable:
        """The online feature table for a validated customers frame, built with this spec."""
        return CustomerTable.from_frame(frame, self.spec, self.predict_value)

    def customer_from_profile(self, customer_id: str, profile: Mapping[str, Any]
                              ) -> CustomerTable:
        """One customer's table from a stored profile, built with this spec (per request)."""
        return CustomerTable.from_profile(customer_id, profile, self.spec, self.predict_value)

    def score_row(self, table: CustomerTable, row: int) -> OfferScores:
        """One customer's model outputs: the per-request hot path (NumPy only)."""
        uplift, p_treated, p_control = self.score(table.matrix[row:row + 1])
        return OfferScores(uplift[0], p_treated[0], float(p_control[0]))

    def decide_row(self, table: CustomerTable, row: int, context: DecisionContext,
                   stock: StockLookup | None, **live: Any) -> Decision:
        """One customer's decision: scores, then the rules (`live`: launches, contacts)."""
        return self.decide_scored(table, row, self.score_row(table, row), context, stock, **live)

    def decide_scored(self, table: CustomerTable, row: int, scores: OfferScores,
                      context: DecisionContext, stock: StockLookup | None,
                      launches: Mapping[str, LaunchStatus] | None = None,
                      contacts: ContactHistory | None = None) -> Decision:
        """The rules and ranking for one customer whose scores are already computed."""
        facts = CustomerFacts(
            customer_id=table.ids[row],
            contactable=bool(table.contactable[row]),
            loyalty_tier=table.loyalty_tier[row],
            preferred_size=table.preferred_size[row],
            preferred_color=table.preferred_color[row],
            value=float(table.value[row]),
        )
        return decide(facts, scores, self.catalog, context, stock, launches, contacts)

    # ------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Write the policy as JSON plus LightGBM text models (portable, diffable)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.uplift.control is not None:
            self.uplift.control.save_model(path / "uplift_control.txt")
        for k, booster in enumerate(self.uplift.treated):
            booster.save_model(path / f"uplift_treated_{k:03d}.txt")
        self.response.save_model(path / "response.txt")
        self.value.save_model(path / "value.txt")
        document = {
            "format": POLICY_FORMAT,
            "spec": [asdict(f) for f in self.spec.features],
            "catalog": self.catalog.model_dump(mode="json"),
            "uplift_offer_ids": list(self.uplift.offer_ids),
            "uplift_kind": self.uplift.kind,
            "shrinkage": self.shrinkage,
            "population_uplift": self.population_uplift.tolist(),
            "libraries": library_versions(),
            "meta": self.meta,
        }
        (path / "policy.json").write_text(json.dumps(document, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a saved policy; warns when library versions differ from the saving ones."""
        path = Path(path)
        document = json.loads((path / "policy.json").read_text())
        if document.get("format") != POLICY_FORMAT:
            raise ValueError(f"unsupported policy format {document.get('format')!r}")
        saved, installed = document.get("libraries", {}), library_versions()
        for name, version in saved.items():
            if installed.get(name) != version:
                warnings.warn(f"policy saved with {name}=={version}, running "
                              f"{installed.get(name)}", RuntimeWarning, stacklevel=2)
        spec = FeatureSpec(tuple(Feature(f["name"], f["kind"], tuple(f["levels"]))
                                 for f in document["spec"]))
        offer_ids = tuple(document["uplift_offer_ids"])
        kind = document.get("uplift_kind", "t")
        uplift = UpliftModel(
            offer_ids=offer_ids,
            control=(lgb.Booster(model_file=str(path / "uplift_control.txt")) if kind == "t"
                     else None),
            treated=tuple(lgb.Booster(model_file=str(path / f"uplift_treated_{k:03d}.txt"))
                          for k in range(len(offer_ids))),
            kind=kind,
        )
        return cls(spec, Catalog.model_validate(document["catalog"]), uplift,
                   lgb.Booster(model_file=str(path / "response.txt")),
                   lgb.Booster(model_file=str(path / "value.txt")), document.get("meta", {}),
                   shrinkage=document.get("shrinkage", 1.0),
                   population_uplift=document.get("population_uplift"))


def decision_rows(policy: Policy, table: CustomerTable, context: DecisionContext,
                  stock: StockLookup | None = None, num_threads: int | None = None
                  ) -> pd.DataFrame:
    """Decisions for every customer of a table, one row per customer and rank.

    A customer with nothing worth sending gets one row with a null offer and the reason.
    """
    records: list[dict] = []
    # vectorized over the chunk
    uplift, p_treated, p_control = policy.score(table.matrix, num_threads)
    for row in range(len(table)):
        scores = OfferScores(uplift[row], p_treated[row], float(p_control[row]))
        decision = policy.decide_scored(table, row, scores, context, stock)
        customer_id = table.ids[row]
        if not decision.offers:
            why = decision.suppressed[0].reason if decision.suppressed else "no_offers"
            records.append({"customer_id": customer_id, "rank": 0, "offer_id": None,
                            "expected_incremental_value": 0.0, "uplift": 0.0, "reason": why})
        for offer in decision.offers:
            records.append({"customer_id": customer_id, "rank": offer.rank,
                            "offer_id": offer.offer_id,
                            "expected_incremental_value": offer.expected_incremental_value,
                            "uplift": offer.uplift, "reason": offer.reasons[0].message})
    return pd.DataFrame.from_records(
        records, columns=["customer_id", "rank", "offer_id", "expected_incremental_value",
                          "uplift", "reason"])


class NBAPolicyModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: customers-shaped frame in, ranked decisions out."""

    def load_context(self, context) -> None:
        """Load the saved policy from the model's artifacts."""
        self.policy = Policy.load(context.artifacts["policy"])

    def predict(self, context, model_input: pd.DataFrame,
                params: dict | None = None) -> pd.DataFrame:
        """Decisions for each customer row; params: channel, limit, store_id."""
        params = params or {}
        decision_context = DecisionContext(
            channel=str(params.get("channel", "web")), now=datetime.now(UTC),
            limit=int(params.get("limit", 3)), store_id=params.get("store_id") or None,
        )
        table = self.policy.customers(pd.DataFrame(model_input))
        return decision_rows(self.policy, table, decision_context)
