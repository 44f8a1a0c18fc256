"""The real thing: `nba serve` starts gunicorn, workers load the champion, HTTP answers."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from tests.integration.servers import call, gunicorn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    env = os.environ | {"MLFLOW_TRACKING_URI": trained.tracking_uri,
                        "NBA_DATA_DIR": str(trained.data_dir), "NBA_ACCESS_LOG": ""}
    with gunicorn(env, tmp_path_factory.mktemp("gunicorn") / "server.log") as base:
        yield base


def test_real_gunicorn_serves_decisions_from_every_worker(server, trained):
    for i in range(40):
        status, body = call(f"{server}/v1/decisions",
                            {"customer_id": f"C{i + 1:07d}", "channel": "web", "limit": 3})
        assert status == 200, body
        assert body["model"]["version"] == trained.version
        assert len(body["offers"]) <= 3
    status, model = call(f"{server}/v1/model")
    assert status == 200 and model["alias"] == "champion"


def test_real_gunicorn_answers_bad_input_with_json_4xx(server):
    status, body = call(f"{server}/v1/decisions", {"channel": "web"})
    assert status == 400 and body["error"]["code"] == "invalid_request"
    status, body = call(f"{server}/v1/decisions", {"customer_id": "nobody", "channel": "web"})
    assert status == 200 and body["customer_known"] is False  # a new customer is decided
    request = urllib.request.Request(f"{server}/v1/decisions", data=b"{oops",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["code"] == "invalid_request"
