"""Report routes: incrementality of the served policy against the randomized holdout, as JSON."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from reports import NoDecisions, ReportError, parse_since
from reports.incrementality import BY_OPTIONS, incrementality
from service.auth import require
from service.schemas import InvalidRequest

log = logging.getLogger(__name__)
bp = Blueprint("reports", __name__)


@bp.get("/v1/reports/incrementality")
@require("staff")
def incrementality_report() -> ResponseReturnValue:
    """Lift per offer, channel or segment (`by`), of decisions made since `since` (ISO 8601).

    The SRM check comes first in the body: when `srm.mismatch` is true the lifts are not
    trustworthy. 400 for a bad `by` or `since`, 404 when no decision matches.
    """
    by = request.args.get("by", "offer")
    if by not in BY_OPTIONS:
        raise InvalidRequest(f"invalid query parameter 'by': '{by}' is not one of "
                             f"{list(BY_OPTIONS)}", {"parameter": "by", "value": by})
    raw_since = request.args.get("since")
    since = None
    if raw_since is not None:
        try:
            since = parse_since(raw_since)
        except ValueError as exc:
            raise InvalidRequest(f"invalid query parameter 'since': {exc}",
                                 {"parameter": "since", "value": raw_since}) from None
    catalog = current_app.extensions["nba.model_store"].current().policy.catalog
    share = current_app.extensions["nba.settings"].holdout_share
    store = current_app.extensions["nba.state"].get().store
    decisions = store.log.decisions_frame(since)
    outcomes = store.log.outcomes_frame(since)
    try:
        report = incrementality(decisions, outcomes, catalog, by=by, holdout_share=share)
    except ReportError as exc:
        window = f" since {since.isoformat()}" if since else ""
        raise NoDecisions(f"{exc}{window}", {"since": since and since.isoformat()}) from None
    if report.srm.mismatch:
        log.warning("incrementality report: %s", report.srm.message())
    body = report.to_dict()
    body["since"] = since and since.isoformat()
    return jsonify(body)
