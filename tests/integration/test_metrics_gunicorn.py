"""/metrics under real gunicorn: every worker's counts in every scrape, whichever worker answers.

A worker-local registry would report only the share of traffic of the worker answering the
scrape; the multiprocess files make every scrape report the whole.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.servers import call, gunicorn

pytestmark = pytest.mark.slow

WORKERS = 4
DECISIONS = 200
STOREFRONT_KEY = "metrics-test-storefront-key-9d2e"


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    log = tmp_path_factory.mktemp("metrics") / "server.log"
    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri,
                        "NBA_DATA_DIR": str(trained.data_dir), "NBA_POLL_SECONDS": "0",
                        "NBA_ACCESS_LOG": "", "NBA_LOG_FORMAT": "json",
                        "NBA_API_KEYS": f"storefront:{STOREFRONT_KEY}"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("NBA_METRICS_DIR", None)
    with gunicorn(env, log, workers=WORKERS) as base:
        yield base, log


def scrape(base: str) -> list:
    """The samples of one GET /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def model_info(samples: list) -> dict[str, str]:
    """pid -> the version that worker serves (gauge value 1)."""
    return {s.labels["pid"]: s.labels["version"] for s in samples
            if s.name == "nba_model_info" and s.value == 1}


def test_every_scrape_counts_every_workers_requests(server, trained):
    base, _ = server
    deadline = time.monotonic() + 30  # readyz saw one worker; wait for the others to load
    while len(model_info(scrape(base))) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.2)

    def decide(i: int) -> int:
        return call(f"{base}/v1/decisions",
                    {"customer_id": f"C{i % 5000 + 1:07d}", "channel": "web", "limit": 3})[0]

    with ThreadPoolExecutor(8) as pool:  # concurrent: the kernel spreads them over the workers
        assert list(pool.map(decide, range(DECISIONS))) == [200] * DECISIONS

    for _ in range(12):  # each scrape may be answered by a different worker
        samples = scrape(base)
        counted = [s.value for s in samples if s.name == "nba_http_requests_total"
                   and s.labels == {"endpoint": "/v1/decisions", "status": "200"}]
        assert counted == [DECISIONS]
        latency = [s.value for s in samples if s.name == "nba_http_request_duration_seconds_count"
                   and s.labels == {"endpoint": "/v1/decisions", "status": "200"}]
        assert latency == [DECISIONS]
        decisions = [s.value for s in samples if s.name == "nba_decisions_total"]
        assert decisions == [DECISIONS]
        # a pid label exists only in multiprocess mode: one sample per live worker
        assert model_info(samples) and len(model_info(samples)) == WORKERS
        assert set(model_info(samples).values()) == {trained.version}


def test_json_logs_carry_the_request_id_and_never_the_key(server):
    base, log = server
    request = urllib.request.Request(
        f"{base}/v1/decisions", method="POST",
        data=json.dumps({"customer_id": "C0000042", "channel": "web"}).encode(),
        headers={"Content-Type": "application/json", "X-Request-ID": "it-req-1",
                 "Authorization": f"Bearer {STOREFRONT_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Request-ID"] == "it-req-1"
        decision_id = json.loads(response.read())["decision_id"]
    time.sleep(0.2)  # the worker's line reaches the file
    text = log.read_text()
    ours = [json.loads(line) for line in text.splitlines()
            if line.startswith("{") and "it-req-1" in line]
    assert any(line.get("decision_id") == decision_id and line.get("customer_id") == "C0000042"
               and line.get("model_version") for line in ours)
    assert STOREFRONT_KEY not in text
