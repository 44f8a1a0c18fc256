"""The OpenAPI 3 document, generated from the same pydantic schemas that validate requests.

Each operation is declared once here (path, method, request and response models); the role comes
from the route's own `require` decorator, so the document cannot drift from the auth. Served at
`/openapi.json`, and as a readable page at `/docs` (server-rendered, no external assets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template_string
from flask.typing import ResponseReturnValue
from pydantic import BaseModel

from service import schemas as s

bp = Blueprint("openapi", __name__)

STOREFRONT, STAFF, ADMIN = "storefront", "staff", "admin"


@dataclass(frozen=True)
class Param:
    """A query or path parameter."""

    name: str
    where: str  # "query" | "path"
    description: str
    schema: dict[str, Any]
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One documented endpoint."""

    method: str
    path: str
    endpoint: str  # Flask endpoint name: the role is read from its view function
    summary: str
    request: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    tag: str = "decisions"


def _explain_request() -> type[BaseModel]:
    from service.staff import ExplainRequest

    return ExplainRequest


def _register_request() -> type[BaseModel]:
    from service.staff import RegisterRequest

    return RegisterRequest


_ERRORS_4XX = {400: s.ErrorResponse}
_AUTH = {401: s.ErrorResponse, 403: s.ErrorResponse, 429: s.ErrorResponse}
_NOT_READY = {503: s.ErrorResponse}

OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/v1/decisions", "api.create_decision",
              "Next-best offers for one customer, ranked by expected incremental profit",
              s.DecisionRequest,
              {200: s.DecisionResponse, **_ERRORS_4XX, 404: s.ErrorResponse, **_AUTH,
               **_NOT_READY}),
    Operation("post", "/v1/decisions:batch", "api.create_decisions",
              "Decisions for up to 1,000 customers in one call", s.BatchDecisionRequest,
              {200: s.BatchDecisionResponse, **_ERRORS_4XX, **_AUTH, **_NOT_READY}),
    Operation("post", "/v1/outcomes", "api.post_outcome",
              "Record what a customer did after a decision (idempotent)", s.OutcomeRequest,
              {200: s.OutcomeResponse, **_ERRORS_4XX, 404: s.ErrorResponse, **_AUTH,
               **_NOT_READY}, tag="outcomes"),
    Operation("post", "/v1/events", "events.post_events",
              "Purchases, returns, consent changes and sign-ups: applied once per event id to "
              "the customer's stored profile; the next decision sees them", s.EventBatch,
              {200: s.EventBatchResponse, **_ERRORS_4XX, **_AUTH, 409: s.ErrorResponse,
               **_NOT_READY}, tag="customers"),
    Operation("put", "/v1/inventory", "api.put_inventory",
              "Set on_hand for a batch of stock rows; the next decision sees it",
              s.InventoryUpdate,
              {200: s.InventoryUpdateResponse, **_ERRORS_4XX, **_AUTH, **_NOT_READY},
              tag="admin"),
    Operation("post", "/v1/admin/reload", "api.admin_reload",
              "Check the champion alias now and swap the model in the answering worker",
              None, {200: s.ReloadResponse, **_AUTH, 409: s.ErrorResponse}, tag="admin"),
    Operation("get", "/v1/reports/incrementality", "reports.incrementality_report",
              "Treated vs holdout lift per offer, channel or segment", None,
              {200: None, **_ERRORS_4XX, 404: s.ErrorResponse, **_AUTH, **_NOT_READY},
              (Param("by", "query", "group rows by", {"type": "string",
                                                      "enum": ["offer", "channel", "segment"]}),
               Param("since", "query", "only decisions since (ISO 8601)",
                     {"type": "string"})), tag="reports"),
    Operation("get", "/v1/customers/{customer_ref}", "staff.get_customer",
              "One customer by id or loyalty card: tier, value band, preferences, holdout", None,
              {200: None, **_ERRORS_4XX, **_AUTH, 404: s.ErrorResponse, **_NOT_READY},
              (Param("customer_ref", "path", "customer_id or loyalty card number",
                     {"type": "string", "minLength": 1}, required=True),), tag="staff"),
    Operation("get", "/v1/stock", "staff.get_stock",
              "Units of one SKU per size and colour, in a store and online", None,
              {200: None, **_ERRORS_4XX, **_AUTH, **_NOT_READY},
              (Param("sku", "query", "the SKU", {"type": "string"}, required=True),
               Param("store_id", "query", "a store id (omit for online only)",
                     {"type": "string"})), tag="staff"),
    Operation("post", "/v1/staff/explain", "staff.explain",
              "Offer names and one plain-language sentence per offer of a decision",
              _explain_request(), {200: None, **_ERRORS_4XX, 404: s.ErrorResponse, **_AUTH,
                                   **_NOT_READY}, tag="staff"),
    Operation("post", "/v1/staff/register", "staff.register_card",
              "Register a walk-in's loyalty card: a sign-up event creates their profile, the "
              "normalized card number is their customer id", _register_request(),
              {201: None, **_ERRORS_4XX, **_AUTH, 409: s.ErrorResponse, **_NOT_READY},
              tag="staff"),
    Operation("get", "/v1/model", "api.model_info", "The model being served and its metrics",
              None, {200: s.ModelInfo, **_NOT_READY}, tag="service"),
    Operation("get", "/healthz", "api.healthz", "Liveness", None, {200: s.HealthResponse},
              tag="service"),
    Operation("get", "/readyz", "api.readyz", "Readiness: 200 once a champion is loaded", None,
              {200: s.ReadyResponse, 503: s.ErrorResponse}, tag="service"),
)


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """Register a model (and its nested models) as components; return a $ref to it."""
    document = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                       mode="serialization")
    for name, nested in document.pop("$defs", {}).items():
        components.setdefault(name, nested)
    components.setdefault(model.__name__, document)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _request_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    document = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                       mode="validation")
    for name, nested in document.pop("$defs", {}).items():
        components.setdefault(name, nested)
    components[model.__name__] = document
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this app's operations."""
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        view = app.view_functions.get(op.endpoint)
        if view is None:
            continue
        role = getattr(view, "required_role", None)
        operation: dict[str, Any] = {
            "operationId": op.endpoint.replace(".", "_"),
            "summary": op.summary,
            "description": (view.__doc__ or "").strip(),
            "tags": [op.tag],
            "responses": {},
        }
        if role is not None:
            operation["security"] = [{"apiKey": []}]
            operation["x-required-role"] = role
            operation["description"] += f"\n\nNeeds an API key with the `{role}` role."
        if op.params:
            operation["parameters"] = [
                {"name": p.name, "in": p.where, "required": p.required,
                 "description": p.description, "schema": p.schema} for p in op.params]
        if op.request is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _request_ref(op.request, components)}}}
        for status, model in op.responses.items():
            content = ({"type": "object"} if model is None
                       else _schema_ref(model, components))
            operation["responses"][str(status)] = {
                "description": _STATUS_TEXT.get(status, "response"),
                "content": {"application/json": {"schema": content}}}
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "nba: next-best-action decisioning", "version": "1",
                 "description": "Offers ranked by causal uplift x margin - cost, with a reason "
                                "for every offer shown or suppressed."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer",
                       "description": "an API key; roles storefront < staff < admin"}}},
    }


_STATUS_TEXT = {200: "OK", 400: "invalid request (names the field)", 401: "missing or wrong "
                "API key", 403: "the key's role is too low, or auth is not configured",
                404: "unknown customer / decision, or nothing to report", 409: "reload failed; "
                "the old model keeps serving", 429: "rate limit: retry after Retry-After "
                "seconds", 503: "no model loaded yet, or the state store is unavailable"}


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """The OpenAPI document."""
    return jsonify(build_spec(current_app))


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    """A readable page of the API, rendered from the OpenAPI document."""
    return render_template_string(_DOCS, spec=build_spec(current_app))


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nba API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
 h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2.5rem}
 code,pre{background:#f5f5f5;border-radius:4px} pre{padding:.75rem;overflow:auto;font-size:13px}
 .m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
 .role{font-size:.85rem;background:#eef;padding:.1rem .4rem;border-radius:4px}
 details{margin:.4rem 0}
</style></head><body>
<h1>{{ spec.info.title }}</h1>
<p>{{ spec.info.description }} Machine-readable: <a href="/openapi.json">/openapi.json</a>.
Authentication: <code>Authorization: Bearer &lt;API key&gt;</code>; roles nest
storefront &lt; staff &lt; admin.</p>
{% for path, ops in spec.paths.items() %}{% for method, op in ops.items() %}
<h2><span class="m">{{ method }}</span> <code>{{ path }}</code>
{% if op['x-required-role'] %}<span class="role">{{ op['x-required-role'] }}</span>{% endif %}
</h2>
<p><strong>{{ op.summary }}</strong></p><p>{{ op.description }}</p>
{% if op.parameters %}<ul>{% for p in op.parameters %}
<li><code>{{ p.name }}</code> ({{ p['in'] }}): {{ p.description }}</li>{% endfor %}</ul>{% endif %}
{% if op.requestBody %}<details><summary>request body</summary>
<pre>{{ spec.components.schemas[op.requestBody.content['application/json'].schema['$ref']
.split('/')[-1]] | tojson(indent=2) }}</pre></details>{% endif %}
<ul>{% for status, r in op.responses.items() %}<li><code>{{ status }}</code>
{{ r.description }}</li>{% endfor %}</ul>
{% endfor %}{% endfor %}
</body></html>"""
