"""The retraining trigger through python-jenkins against a local HTTP server speaking Jenkins' remote API:
GET crumbIssuer/api/json, then POST job/<name>/buildWithParameters with the crumb header and basic auth,
answered 201 with Location: <jenkins>/queue/item/<n>/ (as Jenkins documents for remote builds)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import numpy as np
import pytest

from mlci.drift.trigger import trigger_build

from .synth import columns, jsonl, rows

USER, TOKEN, CRUMB = "drift-bot", "11f0c0ffee-secret-token", "c7a9b1"
JOBS = {"/job/ml/job/digits-train/buildWithParameters", "/job/train/buildWithParameters"}


class FakeJenkins(BaseHTTPRequestHandler):
    calls: list[dict] = []

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _authorised(self) -> bool:
        want = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        return self.headers.get("Authorization") == want

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if not self._authorised():
            return self._send(401)
        if urlsplit(self.path).path == "/crumbIssuer/api/json":
            body = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": CRUMB,
                    "crumbRequestField": "Jenkins-Crumb"}
            return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        self._send(404)

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        self.calls.append({"path": url.path, "params": {k: v[0] for k, v in parse_qs(url.query).items()},
                           "crumb": self.headers.get("Jenkins-Crumb")})
        if not self._authorised():
            return self._send(401)
        if self.headers.get("Jenkins-Crumb") != CRUMB:
            return self._send(403, b"No valid crumb was included in the request")
        if url.path not in JOBS:
            return self._send(404)
        host = f"http://{self.headers['Host']}"
        self._send(201, b"", {"Location": f"{host}/queue/item/{41 + len(self.calls)}/"})


@pytest.fixture()
def jenkins_url() -> Iterator[str]:
    FakeJenkins.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJenkins)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_trigger_build_posts_parameters_with_crumb(jenkins_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JENKINS_USER", USER)
    monkeypatch.setenv("JENKINS_API_TOKEN", TOKEN)
    got = trigger_build("ml/digits-train", {"DRIFT_REASON": "age drifted", "DATA": "s3://b/new"}, url=jenkins_url)
    assert got["queue_item"] == 42 and got["url"] == f"{jenkins_url}/queue/item/42/"
    (call,) = FakeJenkins.calls
    assert call == {"path": "/job/ml/job/digits-train/buildWithParameters", "crumb": CRUMB,
                    "params": {"DRIFT_REASON": "age drifted", "DATA": "s3://b/new"}}


def test_trigger_errors_are_clear(jenkins_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlci.errors import StageFailed, UserError

    monkeypatch.setenv("JENKINS_USER", USER)
    monkeypatch.setenv("JENKINS_API_TOKEN", "wrong-" + TOKEN)
    with pytest.raises(StageFailed) as exc:
        trigger_build("train", {"A": "1"}, url=jenkins_url)
    assert TOKEN not in str(exc.value)
    monkeypatch.setenv("JENKINS_API_TOKEN", TOKEN)
    with pytest.raises(UserError, match="'nope' not found"):
        trigger_build("nope", {"A": "1"}, url=jenkins_url)
    monkeypatch.delenv("JENKINS_URL", raising=False)
    with pytest.raises(UserError, match="no Jenkins URL"):
        trigger_build("train", {"A": "1"})


def test_cli_check_starts_the_job_on_drift_only(jenkins_url: str, s3_bucket: str, tmp_path: Path, mlci) -> None:
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl(rows(columns(4000, np.random.default_rng(31)))))
    env = {"MLCI_CONFIG": "", "JENKINS_URL": jenkins_url, "JENKINS_USER": USER, "JENKINS_API_TOKEN": TOKEN}
    mlci("drift", "reference", "--data", str(data), "--out", str(tmp_path / "ref.json"), env=env, check=True)
    s3 = boto3.client("s3")

    def check(name: str, **shift: float):
        body = jsonl(rows(columns(800, np.random.default_rng(32), **shift)))
        s3.put_object(Bucket=s3_bucket, Key=f"{name}/dt=2026-11-22/a.jsonl", Body=body)
        return mlci("drift", "check", "--reference", str(tmp_path / "ref.json"), "--logs",
                        f"s3://{s3_bucket}/{name}", "--window", "1d", "--until", "2026-11-22",
                        "--out", str(tmp_path / name), "--trigger-job", "ml/digits-train", env=env)

    proc = check("same")
    assert proc.returncode == 0 and FakeJenkins.calls == []
    proc = check("shifted", shift=1.0)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "started ml/digits-train (queue item 42)" in proc.stdout
    (call,) = FakeJenkins.calls
    assert call["params"]["DRIFT_FEATURES"] == "age" and "age" in call["params"]["DRIFT_REASON"]
    assert call["params"]["DRIFT_WINDOW"] == "2026-11-22..2026-11-22"
    text = (tmp_path / "shifted" / "drift" / "drift.json").read_text()
    assert json.loads(text)["trigger"]["queue_item"] == 42
    assert TOKEN not in text + proc.stdout + proc.stderr


def test_trigger_flag_uses_the_configured_job_url_and_parameters(jenkins_url: str, s3_bucket: str, tmp_path: Path,
                                                               mlci) -> None:
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl(rows(columns(3000, np.random.default_rng(33)))))
    (tmp_path / "ml-ci.yaml").write_text(f"""service: svc
drift:
  reference: ref.json
  logs: s3://{s3_bucket}/logs
  window: 1d
  retrain: {{job: train, url: "{jenkins_url}", parameters: {{DATASET: fresh}}}}
""")
    env = {"JENKINS_USER": USER, "JENKINS_API_TOKEN": TOKEN}
    mlci("drift", "reference", "--data", str(data), "--out", str(tmp_path / "ref.json"), env=env, check=True)
    body = jsonl(rows(columns(600, np.random.default_rng(34), new_category=0.3)))
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="logs/dt=2026-11-22/a.jsonl", Body=body)
    proc = mlci("drift", "check", "--until", "2026-11-22", "--trigger", "--out", str(tmp_path / "o"), env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (call,) = FakeJenkins.calls
    assert call["path"] == "/job/train/buildWithParameters"
    assert call["params"]["DATASET"] == "fresh" and call["params"]["DRIFT_FEATURES"] == "channel"
