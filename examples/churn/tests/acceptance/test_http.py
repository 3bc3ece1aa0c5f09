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


def test_predict_returns_probabilities_and_a_decision():
    status, body = _post("/predict", {"inputs": [[0.0] * 12, [2.5] * 12]})
    assert status == 200
    assert len(body["probabilities"]) == 2 and len(body["churn"]) == 2
    for row in body["probabilities"]:
        assert len(row) == 2 and abs(sum(row) - 1) < 1e-6


def test_bad_request_is_400():
    with pytest.raises(urllib.error.HTTPError) as err:
        _post("/predict", {"inputs": [[1, 2, 3]]})
    assert err.value.code == 400
