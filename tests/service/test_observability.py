"""Metrics, request ids and JSON logs, through Flask's test client (one process: no multiproc)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import gunicorn_hooks, observability

SECRET = "Bearer test-admin-token-0001"


@pytest.fixture
def observed(app):
    """The conftest app with observability installed (a no-op once create_app does it)."""
    observability.init_app(app)
    return app


@pytest.fixture
def scrape(observed):
    """Read /metrics, unauthenticated, as {(sample name, sorted labels): value}."""
    anonymous = observed.test_client()

    def read() -> dict[tuple[str, tuple], float]:
        response = anonymous.get("/metrics")
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.get_data(as_text=True))
                for s in family.samples}
    return read


def value(samples: dict, metric: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet."""
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def json_log():
    """The root logger writing JSON lines to a buffer, as under gunicorn; restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    observability.configure_logging("INFO", json_logs=True, stream=buffer)
    yield buffer
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def decide(client, customer_id: str = "C0000001", limit: int = 3, **kwargs):
    return client.post("/v1/decisions", json={"customer_id": customer_id, "channel": "web",
                                              "limit": limit}, **kwargs)


def test_requests_are_counted_by_url_rule_and_status(client, scrape):
    before = scrape()
    assert decide(client).status_code == 200
    assert decide(client).status_code == 200
    assert client.post("/v1/decisions", data=b"{oops",
                       content_type="application/json").status_code == 400
    assert decide(client, "nobody").status_code == 200  # a new customer: decided too
    assert client.get("/v1/customers/nobody").status_code == 404
    assert client.get("/no/such/path/123").status_code == 404
    after = scrape()

    def delta(endpoint: str, status: str) -> float:
        key = {"endpoint": endpoint, "status": status}
        return (value(after, "nba_http_requests_total", **key)
                - value(before, "nba_http_requests_total", **key))

    assert delta("/v1/decisions", "200") == 3
    assert delta("/v1/decisions", "400") == 1
    assert delta("/v1/customers/<customer_ref>", "404") == 1
    assert delta("unmatched", "404") == 1
    endpoints = {dict(labels).get("endpoint") for _, labels in after}
    assert not any(e and "/no/such" in e for e in endpoints)  # never the raw path


def test_latency_histogram_has_millisecond_buckets(client, scrape):
    before = scrape()
    decide(client)
    after = scrape()
    labels = {"endpoint": "/v1/decisions", "status": "200"}
    buckets = sorted(float(dict(key)["le"]) for (name, key) in after
                     if name == "nba_http_request_duration_seconds_bucket"
                     and dict(key).items() >= labels.items())
    assert buckets[0] == 0.0005 and 1.0 in buckets and buckets[-1] == float("inf")
    count = "nba_http_request_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 1
    assert value(after, "nba_http_request_duration_seconds_bucket", le="+Inf", **labels) == \
        value(after, count, **labels)


def test_init_app_is_idempotent(observed, client, scrape):
    observability.init_app(observed)
    before = scrape()
    client.get("/healthz")
    after = scrape()
    key = {"endpoint": "/healthz", "status": "200"}
    assert (value(after, "nba_http_requests_total", **key)
            - value(before, "nba_http_requests_total", **key)) == 1


def test_decisions_are_counted_by_offer_and_suppression_reason(client, scrape):
    body = decide(client, limit=3).get_json()
    offers = [o["offer_id"] for o in body["offers"]]
    reasons = [s["reason"] for s in body["suppressed"]]
    assert offers and reasons
    before = scrape()
    observability.record_decision(offers, reasons)
    after = scrape()
    assert value(after, "nba_decisions_total") - value(before, "nba_decisions_total") == 1
    for offer in offers:
        assert (value(after, "nba_decision_offers_total", offer=offer)
                - value(before, "nba_decision_offers_total", offer=offer)) == 1
    for reason in set(reasons):
        assert (value(after, "nba_decision_suppressions_total", reason=reason)
                - value(before, "nba_decision_suppressions_total", reason=reason)
                == reasons.count(reason))


def test_reload_outcomes_are_counted(scrape):
    before = scrape()
    observability.record_reload("rejected", "9")
    after = scrape()
    assert (value(after, "nba_model_reloads_total", status="rejected")
            - value(before, "nba_model_reloads_total", status="rejected")) == 1


@pytest.fixture
def served_model():
    """Restore the process's served-model gauge after a test moves it."""
    previous = observability._served
    yield
    if previous is not None:
        observability.set_model_version(*previous)


def test_model_info_gauge_shows_the_version_served(scrape, served_model):
    observability.set_model_version("test-policy", "7")
    assert value(scrape(), "nba_model_info", name="test-policy", version="7") == 1
    observability.set_model_version("test-policy", "8")
    samples = scrape()
    assert value(samples, "nba_model_info", name="test-policy", version="8") == 1
    assert value(samples, "nba_model_info", name="test-policy", version="7") == 0


def test_request_id_is_echoed_or_generated(client, observed):
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123.X_y"})
    assert given.headers["X-Request-ID"] == "abc-123.X_y"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/healthz").headers["X-Request-ID"] != generated
    assert client.get("/no/such").headers["X-Request-ID"]  # errors carry it too


@pytest.mark.parametrize("raw", ["a b", "<script>", "x" * 129, "id\u00e9", "a;b=c"])
def test_a_bad_request_id_is_replaced(client, observed, raw):
    echoed = client.get("/healthz", headers={"X-Request-ID": raw}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_a_request_id_of_128_characters_is_kept():
    assert observability.sanitize_request_id("a" * 128) == "a" * 128
    assert observability.sanitize_request_id("") != ""


def test_log_lines_of_a_request_are_json_with_its_id_and_no_key(client, observed, json_log):
    response = decide(client, headers={"X-Request-ID": "req-42", "Authorization": SECRET})
    assert response.status_code == 200
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    during = [line for line in lines if line["request_id"] is not None]
    assert during and all(line["request_id"] == "req-42" for line in during)  # api logs one
    assert "test-admin-token-0001" not in json_log.getvalue()


def test_json_lines_carry_the_decision_fields(observed, json_log):
    log = logging.getLogger("service.api")
    headers = {"X-Request-ID": "req-7", "Authorization": SECRET}
    with observed.test_request_context("/v1/decisions", method="POST", headers=headers):
        log.info("decision d1 for %s", "C0000001",
                 extra={"model_version": "3", "decision_id": "d1", "customer_id": "C0000001",
                        "authorization": SECRET})
    log.warning("outside any request: token was %s", SECRET)
    inside, outside = (json.loads(line) for line in json_log.getvalue().splitlines())
    assert inside["request_id"] == "req-7" and inside["level"] == "INFO"
    assert inside["logger"] == "service.api" and inside["message"] == "decision d1 for C0000001"
    assert (inside["model_version"], inside["decision_id"], inside["customer_id"]) == \
        ("3", "d1", "C0000001")
    assert inside["time"].endswith("Z") and datetime.fromisoformat(inside["time"]).utcoffset() \
        .total_seconds() == 0
    assert outside["request_id"] is None and "model_version" not in outside
    assert "test-admin-token-0001" not in json_log.getvalue()


def test_exceptions_are_one_json_line(json_log):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("service").exception("failed")
    (line,) = json_log.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "failed" and "ValueError: boom" in record["exception"]


def test_plain_text_logs_carry_the_request_id(observed):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    try:
        observability.configure_logging("INFO", json_logs=False, stream=buffer)
        with observed.test_request_context(headers={"X-Request-ID": "plain-1"}):
            logging.getLogger("service.api").info("hello")
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    assert "[plain-1]: hello" in buffer.getvalue()


def test_init_app_refuses_a_multiproc_dir_set_after_import(monkeypatch, tmp_path):
    from flask import Flask

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        observability.init_app(Flask(__name__))


@pytest.fixture
def fresh_master(monkeypatch):
    """gunicorn_hooks as in a master that has not imported prometheus_client yet."""
    monkeypatch.setattr(gunicorn_hooks, "_prepared", {})
    monkeypatch.delitem(sys.modules, "prometheus_client.values")
    for name in ("NBA_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR", gunicorn_hooks.TEMP_MARKER):
        monkeypatch.setenv(name, "")  # recorded, so what the hooks export is undone after
        monkeypatch.delenv(name)
    return monkeypatch


def test_prepare_empties_a_given_dir_of_metric_files_only(fresh_master, tmp_path):
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    fresh_master.setenv("NBA_METRICS_DIR", str(tmp_path))
    assert gunicorn_hooks.prepare_multiprocess_dir() == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    (tmp_path / "counter_456.db").write_bytes(b"live")
    gunicorn_hooks.prepare_multiprocess_dir()  # a config re-read (HUP) wipes nothing
    assert (tmp_path / "counter_456.db").exists()
    gunicorn_hooks.remove_multiprocess_dir()
    assert tmp_path.exists()  # not ours to delete


def test_prepare_makes_a_temp_dir_per_master(fresh_master):
    first = gunicorn_hooks.prepare_multiprocess_dir()
    assert first.is_dir()
    fresh_master.setattr(gunicorn_hooks, "_prepared", {})  # a new master inheriting the env
    second = gunicorn_hooks.prepare_multiprocess_dir()
    assert second != first and second.is_dir()
    gunicorn_hooks.remove_multiprocess_dir()
    assert not second.exists()
    first.rmdir()


def test_prepare_refuses_after_a_single_process_import(monkeypatch):
    monkeypatch.setattr(gunicorn_hooks, "_prepared", {})
    with pytest.raises(RuntimeError, match="imported before"):
        gunicorn_hooks.prepare_multiprocess_dir()
