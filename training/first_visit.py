"""The first-visit policy: what to offer a visitor without a profile, learned from the request.

Exposures marked `new_customer` (a visitor no profile describes: an unknown id or an anonymous
session) are kept out of the customer policy and train a policy of their own, by the same menu
and learners (`training.pipeline.fit_chosen`), over the catalog's offers for new customers
(`audience: new`) and with the context columns as its only features: at a first visit the
request's context is all there is. It ships inside the customer policy (`Policy.first_visit`),
so one registered version decides every visitor.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from features.build import infer_spec
from features.catalog import Catalog
from features.schema import CONTEXT_COLUMNS, NEW_CUSTOMER, Kind

if TYPE_CHECKING:
    from training.package import Policy
    from training.settings import TrainSettings

log = logging.getLogger(__name__)

#: fewer rows of new customers than this (or no control or no offer among them) train nothing:
#: the catalog's prior uplifts decide instead
MIN_ROWS = 200
#: the first-visit policy's evaluation metrics logged with the run (prefixed first_visit_):
#: its out-of-fold value and its gain over the best single offer, not every detail
REPORTED = ("dr_incremental_profit_learned", "profit_gain_vs_best_single", "response_auc",
            "shrinkage", "qini_")


def split(exposures: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of customers with a profile, rows of new customers); the second is empty when the
    exposures have no `new_customer` column."""
    if NEW_CUSTOMER not in exposures:
        return exposures, exposures.iloc[:0]
    new = exposures[NEW_CUSTOMER].to_numpy(dtype=bool)
    return (exposures[~new].reset_index(drop=True), exposures[new].reset_index(drop=True))


def why_not(first: pd.DataFrame, kinds: list[tuple[str, Kind]], catalog: Catalog
            ) -> str | None:
    """Why no first-visit policy can be trained from these rows (None: it can)."""
    offers = catalog.for_new_customers()
    treatments = set(first["treatment"]) if len(first) else set()
    if len(first) < MIN_ROWS:
        return f"{len(first)} exposures of new customers (at least {MIN_ROWS} needed)"
    if offers is None:
        return "the catalog has no offers for new customers (audience: new)"
    if not any(name in CONTEXT_COLUMNS for name, _ in kinds):
        return "the exposures have no context columns to learn from"
    if catalog.control_label not in treatments or not treatments - {catalog.control_label}:
        return "the new customers' exposures need both control rows and offer rows"
    return None


def first_visit_catalog(catalog: Catalog) -> Catalog:
    """The catalog a first-visit policy models: the offers for new customers, as its own
    offers (the audience is implied: only visitors without a profile are decided by it)."""
    offers = catalog.for_new_customers()
    assert offers is not None, "why_not checks that the catalog has offers for new customers"
    return offers.model_copy(update={"offers": tuple(
        o.model_copy(update={"audience": "all"}) for o in offers.offers)})


def fit(first: pd.DataFrame, kinds: list[tuple[str, Kind]], catalog: Catalog,
        settings: TrainSettings) -> Policy | None:
    """The first-visit policy of the rows of new customers, or None (logged why) when they
    cannot train one."""
    # the pipeline imports this module
    from training.pipeline import Progress, fit_chosen, selection_sample, thin_arms

    reason = why_not(first, kinds, catalog)
    if reason is not None:
        if len(first):
            log.warning("no first-visit policy: %s; new customers get the offers for new "
                        "customers by their prior uplift", reason)
        return None
    offers = first_visit_catalog(catalog)
    spec = infer_spec(first, [(name, kind) for name, kind in kinds if name in CONTEXT_COLUMNS])
    log.info("first-visit policy: %s exposures of new customers, features %s",
             f"{len(first):,}", spec.names)
    few = thin_arms(selection_sample(first, offers, settings), settings)
    if few:  # fit_chosen would refuse the whole training for them
        log.warning("no first-visit policy: arm(s) of new customers with too few rows to "
                    "cross-fit %d folds (the fewest rows each had to fit on: %s); new customers "
                    "get the offers for new customers by their prior uplift", settings.folds, few)
        return None
    policy, selection = fit_chosen(first, spec, offers, settings, Progress(4))
    policy.meta["first_visit_rows"] = len(first)
    policy.meta["metrics"] = {f"first_visit_{k}": v
                              for k, v in selection.evaluation.metrics.items()
                              if k.startswith(REPORTED)}
    return policy
