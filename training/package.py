"""The whole decision policy as one object, and as one MLflow pyfunc model.

`Policy` holds the feature spec, the offer catalog snapshot and the boosters, and hands scores
to the one decision core (`decisioning.core.decide`). The service unwraps it from the pyfunc and
calls `score` on NumPy rows; batch scoring, `nba decide` and `NBAPolicyModel.predict` run the
very same code, so every path gives the same decision, holdout included.
"""

from __future__ import annotations

import json
import logging
import math
import random
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, get_args

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from decisioning.core import NO_SETTINGS, decide
from decisioning.decision import (
    DEFAULT_HOLDOUT_SHARE,
    DEFAULT_SALT,
    CustomerFacts,
    Decision,
    DecisionContext,
    DecisionSettings,
    OfferScores,
)
from decisioning.snapshot import EMPTY, ContactHistory, LaunchStatus, StateSnapshot
from features.catalog import Catalog
from features.context import context_values, has_context, situate
from features.customers import CustomerTable
from features.schema import Encoding, Feature, FeatureSpec
from state.records import StockRow, StockSnapshot
from training import rules
from training.uplift import UpliftModel

log = logging.getLogger(__name__)

POLICY_FORMAT = 1
#: where a saved policy keeps its first-visit policy (a saved policy of its own)
FIRST_VISIT_DIR = "first_visit"
#: Libraries whose versions are recorded with the policy and checked on load.
TRACKED_LIBRARIES = ("lightgbm", "numpy", "causalml", "mlflow", "scikit-learn")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a saved policy depends on."""
    return {name: metadata.version(name) for name in TRACKED_LIBRARIES}


class Policy:
    """Feature spec + catalog + models + arbitration: everything from a customer row to offers."""

    def __init__(self, spec: FeatureSpec, catalog: Catalog, uplift: UpliftModel,
                 response: lgb.Booster, value: lgb.Booster, meta: dict | None = None,
                 shrinkage: float | np.ndarray = 1.0,
                 population_uplift: np.ndarray | None = None,
                 penalty: np.ndarray | None = None, first_visit: Policy | None = None
                 ) -> None:
        self.spec = spec
        self.catalog = catalog
        self.uplift = uplift
        self.response = response
        self.value = value
        self.meta = meta or {}
        # Served uplift = shrinkage * per-customer estimate + (1 - shrinkage) * the offer's
        # average effect: with weak evidence (shrinkage near 0) every customer gets the best
        # single offer, with strong evidence (near 1) the policy targets. The gated rule gives
        # one per offer (1 or 0).
        self.shrinkage: float | np.ndarray = (float(shrinkage) if np.ndim(shrinkage) == 0
                                              else np.asarray(shrinkage, dtype=np.float64))
        self.population_uplift = (np.zeros(len(catalog.offers)) if population_uplift is None
                                  else np.asarray(population_uplift, dtype=np.float64))
        # training.rules' confidence rule: per offer, lowered uplift (0 for the default offer)
        self.penalty = (None if penalty is None else np.asarray(penalty, dtype=np.float64))
        position = {offer_id: j for j, offer_id in enumerate(uplift.offer_ids)}
        # catalog offer k -> uplift-model column, -1 where the training data had no such arm
        self._columns = np.array([position.get(o, -1) for o in catalog.offer_ids])
        self._modelled = self._columns >= 0
        self.has_context = has_context(spec)
        #: the policy for visitors without a profile (training.first_visit), if trained: its
        #: catalog is this one's offers for new customers, its features the context columns
        self.first_visit = first_visit

    def score(self, X: np.ndarray, num_threads: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(uplift, p_treated, p_control) per row; offers in catalog order, NaN if unmodelled."""
        raw, p_treated_m = self.uplift.predict(X, num_threads)
        p_control = p_treated_m[:, 0] - raw[:, 0] if raw.shape[1] else np.zeros(len(X))
        uplift = self.shrink(self._in_catalog_order(raw))
        return uplift, p_control[:, None] + uplift, p_control

    def shrink(self, uplift: np.ndarray) -> np.ndarray:
        """Pull per-customer uplift towards each offer's average effect by the shrinkage (and
        lower it by the confidence rule's penalty, if chosen)."""
        return rules.apply(uplift, self.population_uplift, self.shrinkage, self.penalty)

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

    def situate(self, table: CustomerTable, row: int, context: DecisionContext
                ) -> tuple[CustomerTable, int]:
        """The customer's row in the request's context: (table, row) itself when the model
        learned no context column, else a one-row table with the context features set (an
        omitted one: null, the documented default)."""
        if not self.has_context:
            return table, row
        return situate(table.take(row), context_values(context), self.spec), 0

    def situate_all(self, table: CustomerTable, context: DecisionContext) -> CustomerTable:
        """Every customer of `table` in one shared context (batch decisions)."""
        if not self.has_context:
            return table
        return situate(table, context_values(context), self.spec)

    def score_row(self, table: CustomerTable, row: int) -> OfferScores:
        """One customer's model outputs: the per-request hot path (NumPy only)."""
        uplift, p_treated, p_control = self.score(table.matrix[row:row + 1])
        return OfferScores(uplift[0], p_treated[0], float(p_control[0]))

    def facts(self, table: CustomerTable, row: int) -> CustomerFacts:
        """What the rules need to know about the customer in `row`."""
        return CustomerFacts(
            customer_id=table.ids[row],
            contactable=bool(table.contactable[row]),
            loyalty_tier=table.loyalty_tier[row],
            preferred_size=table.preferred_size[row],
            preferred_color=table.preferred_color[row],
            value=float(table.value[row]),
        )

    def decide_row(self, table: CustomerTable, row: int, context: DecisionContext,
                   snapshot: StateSnapshot = EMPTY, settings: DecisionSettings = NO_SETTINGS,
                   rng: random.Random | None = None) -> Decision:
        """One customer's decision in `context`: scores, then the decision core."""
        table, row = self.situate(table, row, context)
        return self.decide_scored(table, row, self.score_row(table, row), context, snapshot,
                                  settings, rng)

    def decide_scored(self, table: CustomerTable, row: int, scores: OfferScores,
                      context: DecisionContext, snapshot: StateSnapshot = EMPTY,
                      settings: DecisionSettings = NO_SETTINGS,
                      rng: random.Random | None = None) -> Decision:
        """The decision core for one customer whose scores are already computed."""
        return decide(self.facts(table, row), scores, self.catalog, snapshot, context,
                      settings, rng)

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
            "uplift_weights": list(self.uplift.weights),
            "penalty": None if self.penalty is None else self.penalty.tolist(),
            "shrinkage": (self.shrinkage.tolist() if isinstance(self.shrinkage, np.ndarray)
                          else self.shrinkage),
            "population_uplift": self.population_uplift.tolist(),
            "libraries": library_versions(),
            "meta": self.meta,
        }
        (path / "policy.json").write_text(json.dumps(document, indent=2))
        if self.first_visit is not None:
            self.first_visit.save(path / FIRST_VISIT_DIR)

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
        # a spec saved before encodings existed has no "encoding": one-hot throughout
        encodings = [f.get("encoding", "one_hot") for f in document["spec"]]
        unknown = sorted(set(encodings) - set(get_args(Encoding)))
        if unknown:
            raise ValueError(f"unsupported feature encoding(s) {unknown} (this version knows "
                             f"{', '.join(get_args(Encoding))})")
        spec = FeatureSpec(tuple(Feature(f["name"], f["kind"], tuple(f["levels"]), encoding)
                                 for f, encoding in zip(document["spec"], encodings,
                                                        strict=True)))
        offer_ids = tuple(document["uplift_offer_ids"])
        kind = document.get("uplift_kind", "t")
        boosters = len(offer_ids) * (2 if kind == "x" else 1)  # X: two effect models per offer
        uplift = UpliftModel(
            offer_ids=offer_ids,
            control=(lgb.Booster(model_file=str(path / "uplift_control.txt"))
                     if kind in ("t", "x") else None),
            treated=tuple(lgb.Booster(model_file=str(path / f"uplift_treated_{k:03d}.txt"))
                          for k in range(boosters)),
            kind=kind,
            weights=tuple(document.get("uplift_weights", ())),
        )
        return cls(spec, Catalog.model_validate(document["catalog"]), uplift,
                   lgb.Booster(model_file=str(path / "response.txt")),
                   lgb.Booster(model_file=str(path / "value.txt")), document.get("meta", {}),
                   shrinkage=document.get("shrinkage", 1.0),
                   population_uplift=document.get("population_uplift"),
                   penalty=document.get("penalty"),
                   first_visit=(cls.load(path / FIRST_VISIT_DIR)
                                if (path / FIRST_VISIT_DIR / "policy.json").exists() else None))


#: The columns of a decision-rows frame (batch output, pyfunc output).
DECISION_COLUMNS = ["customer_id", "rank", "offer_id", "action", "expected_incremental_value",
                    "uplift", "reason", "message", "holdout", "stock_checked", "suppressed"]


def decide_table(policy: Policy, table: CustomerTable, context: DecisionContext,
                 snapshot: StateSnapshot = EMPTY, settings: DecisionSettings = NO_SETTINGS,
                 contacts: Callable[[str], ContactHistory | None] | None = None,
                 num_threads: int | None = None,
                 scored: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                 ) -> list[Decision]:
    """The decision core for every customer of a table, scored in one vectorized call.

    `contacts` gives each customer's contact history (campaigns: read from the state store in
    one query); without it the snapshot's (if any) applies to everyone. `scored`: the table's
    `policy.score` of `policy.situate_all(table, context)` when the caller already has it.
    """
    if scored is None:
        scored = policy.score(policy.situate_all(table, context).matrix, num_threads)
    uplift, p_treated, p_control = scored
    decisions: list[Decision] = []
    for row in range(len(table)):
        scores = OfferScores(uplift[row], p_treated[row], float(p_control[row]))
        state = snapshot
        if contacts is not None:
            state = StateSnapshot(snapshot.stock, snapshot.launches, contacts(table.ids[row]))
        decisions.append(policy.decide_scored(table, row, scores, context, state, settings))
    return decisions


def rows_of(customer_id: str, decision: Decision) -> list[dict]:
    """A decision as rows: one per shown offer and rank, or one with a null offer and why."""
    suppressed = json.dumps({s.offer_id: s.reason for s in decision.suppressed})
    common = {"holdout": decision.holdout, "stock_checked": decision.stock_checked,
              "suppressed": suppressed}
    if not decision.offers:
        first = decision.suppressed[0] if decision.suppressed else None
        return [{"customer_id": customer_id, "rank": 0, "offer_id": None, "action": None,
                 "expected_incremental_value": 0.0, "uplift": 0.0,
                 "reason": first.reason if first else "no_offers",
                 "message": first.message if first else "the catalog has no offers", **common}]
    return [{"customer_id": customer_id, "rank": offer.rank, "offer_id": offer.offer_id,
             "action": offer.action,
             "expected_incremental_value": offer.expected_incremental_value,
             "uplift": offer.uplift, "reason": offer.reasons[0].code,
             "message": offer.reasons[0].message, **common}
            for offer in decision.offers]


def decision_rows(policy: Policy, table: CustomerTable, context: DecisionContext,
                  snapshot: StateSnapshot = EMPTY, settings: DecisionSettings = NO_SETTINGS,
                  num_threads: int | None = None,
                  contacts: Callable[[str], ContactHistory | None] | None = None
                  ) -> pd.DataFrame:
    """Decisions for every customer of a table, one row per customer and rank.

    A customer with nothing to send (a holdout customer, or nothing worth it) gets one row
    with a null offer and the first suppression's code and message. `suppressed` is JSON:
    offer_id -> reason code of every offer not shown.
    """
    records: list[dict] = []
    for customer_id, decision in zip(
            table.ids, decide_table(policy, table, context, snapshot, settings, contacts,
                                    num_threads), strict=True):
        records.extend(rows_of(customer_id, decision))
    return pd.DataFrame.from_records(records, columns=DECISION_COLUMNS)


class NBAPolicyModel(PythonModel):
    """MLflow pyfunc wrapper: customers-shaped frame in, ranked decisions out."""

    def load_context(self, context) -> None:
        """Load the saved policy from the model's artifacts."""
        self.policy = Policy.load(context.artifacts["policy"])

    def predict(self, context, model_input: pd.DataFrame,
                params: dict | None = None) -> pd.DataFrame:
        """Decisions for each customer row, through the one decision core.

        params: channel, limit, store_id, device, page, cart_value (the request context:
        features when the model learned them; absent = null); now (ISO 8601, default the
        wall clock); inventory (JSON list of {sku, size, color, location, on_hand}: decide
        with that stock; without it every row says stock_checked false); launches (JSON
        {offer_id: {remaining, floor}}: live launch status, as the state store gives it);
        contacts (JSON {customer_id: {offers_in_window, declines: {offer_id: n}}}: contact
        history for the caps; a customer missing has none); holdout_share and salt (default
        the service's: holdout customers get no offer here either).
        """
        params = params or {}
        now = params.get("now")
        decision_context = DecisionContext(
            channel=str(params.get("channel", "web")),
            now=datetime.fromisoformat(str(now)) if now else datetime.now(UTC),
            limit=int(params.get("limit", 3)), store_id=params.get("store_id") or None,
            device=params.get("device") or None, page=params.get("page") or None,
            cart_value=cart_value_param(params.get("cart_value")),
        )
        settings = DecisionSettings(
            holdout_share=float(params.get("holdout_share", DEFAULT_HOLDOUT_SHARE)),
            salt=str(params.get("salt") or DEFAULT_SALT))
        snapshot = StateSnapshot(stock=inventory_param(params.get("inventory")),
                                 launches=launches_param(params.get("launches")))
        table = self.policy.customers(pd.DataFrame(model_input))
        contacts = contacts_param(params.get("contacts"))
        return decision_rows(self.policy, table, decision_context, snapshot, settings,
                             contacts=contacts)


def cart_value_param(value: object) -> float | None:
    """The pyfunc's `cart_value` parameter (a number, or its text); None if absent. Raises
    ValueError naming the parameter when it is not a finite number >= 0."""
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"params.cart_value must be a number >= 0, got {value!r}")
    return number


def inventory_param(text: object) -> StockSnapshot | None:
    """The pyfunc's `inventory` parameter (a JSON list of rows) as a stock lookup; None if
    absent. Raises ValueError naming the problem when it is not such a list."""
    if text is None or text == "":
        return None
    try:
        rows = json.loads(str(text))
        if not isinstance(rows, list):
            raise TypeError("not a JSON list")
        return StockSnapshot.from_rows(
            StockRow(str(r["sku"]), _opt(r.get("size")), _opt(r.get("color")),
                     _opt(r.get("location")), int(r["on_hand"])) for r in rows)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError("params.inventory must be a JSON list of {sku, size, color, "
                         f"location, on_hand}} objects ({type(exc).__name__}: {exc})") from None


def launches_param(text: object) -> dict[str, LaunchStatus]:
    """The pyfunc's `launches` parameter (JSON {offer_id: {remaining, floor}}) as launch
    statuses; {} if absent. Raises ValueError naming the problem otherwise."""
    if text is None or text == "":
        return {}
    try:
        found = json.loads(str(text))
        return {str(k): LaunchStatus(int(v["remaining"]), float(v.get("floor", 0.0)))
                for k, v in found.items()}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError("params.launches must be a JSON object {offer_id: {remaining, "
                         f"floor}}}} ({type(exc).__name__}: {exc})") from None


def contacts_param(text: object) -> Callable[[str], ContactHistory] | None:
    """The pyfunc's `contacts` parameter as each customer's contact history; None if absent
    (no cap is counted). Raises ValueError naming the problem otherwise."""
    if text is None or text == "":
        return None
    try:
        found = {str(k): ContactHistory(int(v.get("offers_in_window", 0)),
                                        {str(o): int(n) for o, n in
                                         v.get("declines", {}).items()})
                 for k, v in json.loads(str(text)).items()}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError("params.contacts must be a JSON object {customer_id: "
                         "{offers_in_window, declines}} "
                         f"({type(exc).__name__}: {exc})") from None
    nobody = ContactHistory()
    return lambda customer_id: found.get(customer_id, nobody)


def _opt(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
