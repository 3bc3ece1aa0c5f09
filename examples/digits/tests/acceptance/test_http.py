"""Runs in a second container against the live service: $MLCI_SERVICE_URL."""

import json
import os
import urllib.error
import urllib.request

import pytest

URL = os.environ.get("MLCI_SERVICE_URL", "http://localhost:8080")


def _post(path, payload):
    req = urllib.request.Request(URL + path, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_healthz():
    with urllib.request.urlopen(URL + "/healthz", timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["status"] == "ok"


def test_predict_returns_one_label_per_input():
    status, body = _post("/predict", {"inputs": [[0] * 64, [16] * 64]})
    assert status == 200
    assert len(body["predictions"]) == 2
    assert all(0 <= p <= 9 for p in body["predictions"])


def test_bad_request_is_400():
    with pytest.raises(urllib.error.HTTPError) as err:
        _post("/predict", {"inputs": [[1, 2, 3]]})
    assert err.value.code == 400
