"""Endpoint mode on the host: the real CLI and engine against the digits service's own HTTP server.

The verdict through the served API must be the callable mode's on the same model and seed; broken contracts
(template fields, pointers, non-JSON answers) are exit 2; a service that dies mid-run follows accuracy.on_error.
The same path inside containers (the accuracy stage starting the service) is in tests/python/stages.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlci.accuracy import endpoint
from tests.python.accuracy.test_cli import record, run, write_config
from tests.python.conftest import run_mlci

SINGLE = {"request": {"inputs": ["$x"]}, "response": "/predictions/0"}
BATCH = {"request": {"inputs": {"$each": "$x"}}, "response": "/predictions", "batch": True}
SMOKE = {"dataset": "digits-test", "max_samples": 1000, "seed": 11,
         "gates": [{"metric": "accuracy", "min": 0.80, "margin": 0.08}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "server exited"
        if endpoint.probe_host(f"http://127.0.0.1:{port}", 0.5) is None:
            return
        time.sleep(0.1)
    raise AssertionError("the server did not listen in time")


@pytest.fixture()
def served(service: Path, digits: dict[str, Path]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The digits service's real HTTP server (`python -m digits_service.server`) with the good model."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "MLCI_MODELS_DIR": str(digits["good"]),
           "PYTHONPATH": str(service)}
    proc = subprocess.Popen([sys.executable, "-m", "digits_service.server"], cwd=service, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.kill()
        proc.wait()


def gate_summary(rec: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(g["metric"], g["verdict"], g["estimate"], tuple(g["interval"])) for g in rec["gates"]]


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_endpoint_verdict_equals_callable(service, digits, served, tmp_path, mode):
    url, _ = served
    env = {"GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567"}
    write_config(service, {"smoke": SMOKE})
    callable_run = run(service, "--suite", "smoke", "--out", str(tmp_path / "c"), "-n", "2",
                       models=digits["good"], env=env)
    assert callable_run.returncode == 0, callable_run.stdout + callable_run.stderr
    write_config(service, {"smoke": SMOKE}, endpoint=SINGLE if mode == "single" else BATCH)
    ep_run = run(service, "--suite", "smoke", "--out", str(tmp_path / "e"), "-n", "2", models=digits["good"],
                 env={**env, endpoint.URL_ENV: url})
    assert ep_run.returncode == 0, ep_run.stdout + ep_run.stderr
    c, e = record(tmp_path / "c", "smoke"), record(tmp_path / "e", "smoke")
    assert e["verdict"] == c["verdict"] == "PASS"
    assert e["seed"] == c["seed"] and e["sample"]["used"] == c["sample"]["used"]
    assert gate_summary(e) == gate_summary(c)
    latency = e["metrics"].pop("latency_ms"), c["metrics"].pop("latency_ms")
    assert e["metrics"] == c["metrics"]
    assert latency[0]["mean"] > latency[1]["mean"] > 0  # a request costs more than an in-process call
    assert e["plan"]["settings"]["endpoint"]["request"] == (SINGLE if mode == "single" else BATCH)["request"]
    assert "endpoint" not in c["plan"]["settings"]


def test_a_custom_score_in_endpoint_mode_equals_the_callable_runs(service, digits, served, tmp_path):
    """Custom per-sample scores are computed in the engine from the served predictions, as in callable mode."""
    url, _ = served
    (service / "exact_score.py").write_text("def exact(prediction, label):\n    return float(str(prediction) == str(label))\n")
    suite = {**SMOKE, "gates": [{"metric": {"score": "exact_score:exact"}, "min": 0.85, "margin": 0.05}]}
    env = {"GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567"}
    write_config(service, {"smoke": suite})
    c_run = run(service, "--suite", "smoke", "--out", str(tmp_path / "c"), "-n", "2", models=digits["good"], env=env)
    assert c_run.returncode == 0, c_run.stdout + c_run.stderr
    write_config(service, {"smoke": suite}, endpoint=BATCH)
    e_run = run(service, "--suite", "smoke", "--out", str(tmp_path / "e"), "-n", "2", models=digits["good"],
                env={**env, endpoint.URL_ENV: url})
    assert e_run.returncode == 0, e_run.stdout + e_run.stderr
    c, e = record(tmp_path / "c", "smoke"), record(tmp_path / "e", "smoke")
    assert e["verdict"] == c["verdict"] == "PASS" and gate_summary(e) == gate_summary(c)
    assert e["outcomes"]["scores"] == c["outcomes"]["scores"] and len(e["outcomes"]["scores"]["exact_score:exact"]) > 0


def test_endpoint_shards_merge_to_the_callable_verdict(service, digits, served, tmp_path):
    """Fixed n, two endpoint shards merged == the callable mode unsharded: gates, metrics and every outcome."""
    url, _ = served
    full = {"dataset": "digits-test", "sequential": False, "gates": [
        {"metric": "accuracy", "min": 0.8, "margin": 0.08}, {"metric": "macro_f1", "min": 0.75, "margin": 0.1}]}
    write_config(service, {"full": full})
    whole = run(service, "--suite", "full", "--seed", "7", "--out", str(tmp_path / "whole"), "-n", "2",
                models=digits["good"])
    assert whole.returncode == 0, whole.stdout + whole.stderr
    write_config(service, {"full": full}, endpoint=BATCH)
    for k in (1, 2):
        part = run(service, "--suite", "full", "--seed", "7", "--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}"),
                   "-n", "1", models=digits["good"], env={endpoint.URL_ENV: url})
        assert part.returncode == 0, part.stdout + part.stderr
    merged = run_mlci("accuracy", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    a, b = record(tmp_path / "whole", "full"), record(tmp_path / "m", "full")
    assert a["verdict"] == b["verdict"] == "PASS" and b["sample"]["merged_from"] == ["1/2", "2/2"]
    assert a["sample"]["used"] == b["sample"]["used"]
    assert a["gates"] == b["gates"]
    a["metrics"].pop("latency_ms")
    b["metrics"].pop("latency_ms")
    assert a["metrics"] == b["metrics"]
    for key in ("positions", "ids", "labels", "predictions", "errors"):
        assert a["outcomes"][key] == b["outcomes"][key]


def test_endpoint_latency_gate_times_each_request(service, digits, served, tmp_path):
    """A latency gate sends one request per sample (even in batch mode) and gates the served latency."""
    url, _ = served
    suite = {**SMOKE, "max_samples": 300, "gates": [{"metric": "latency_p95", "max": 5000}]}
    write_config(service, {"lat": suite}, endpoint=BATCH)
    proc = run(service, "--suite", "lat", "--out", str(tmp_path / "o"), "-n", "1", models=digits["good"],
               env={endpoint.URL_ENV: url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = record(tmp_path / "o", "lat")
    assert rec["plan"]["timing"] == "per_sample" and rec["verdict"] == "PASS"
    lat = rec["metrics"]["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] < 5000


@pytest.mark.parametrize(("settings", "expect"), [
    ({"request": {"inputs": ["$pixels"]}, "response": "/predictions/0"},
     ["accuracy.endpoint.request", "$pixels", "$x"]),
    ({"request": {"inputs": ["$x"]}, "response": "/prediction"},
     ["/prediction", "accuracy.endpoint.response", "predictions"]),
    ({"request": {"inputs": {"$each": "$x"}}, "response": "/predictions/0", "batch": True},
     ["a batch request of", "accuracy.endpoint.response"]),
    ({"request": {"inputs": "$x"}, "response": "", "batch": True},
     ["exactly one", "$each"]),
    ({"request": {"inputs": ["$x"]}, "response": "/predictions/0", "path": "/nope"},
     ["HTTP 404", "accuracy.endpoint.path"]),
])
def test_broken_contract_is_exit_2(service, digits, served, tmp_path, settings, expect):
    url, _ = served
    write_config(service, {"smoke": SMOKE}, endpoint=settings)
    proc = run(service, "--suite", "smoke", "--out", str(tmp_path / "o"), "-n", "0", models=digits["good"],
               env={endpoint.URL_ENV: url})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for text in expect:
        assert text in proc.stderr, proc.stderr
    assert not (tmp_path / "o" / "accuracy" / "smoke" / "accuracy.json").exists()


class _Text(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html>502 upstream</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_non_json_answer_is_exit_2(service, digits, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Text)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        write_config(service, {"smoke": SMOKE}, endpoint=SINGLE)
        proc = run(service, "--suite", "smoke", "--out", str(tmp_path / "o"), "-n", "0", models=digits["good"],
                   env={endpoint.URL_ENV: f"http://127.0.0.1:{server.server_address[1]}"})
    finally:
        server.shutdown()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not JSON" in proc.stderr and "<html>502 upstream</html>" in proc.stderr


def test_missing_or_unreachable_url_is_exit_2(service, digits, tmp_path):
    write_config(service, {"smoke": SMOKE}, endpoint=SINGLE)
    env = {k: v for k, v in os.environ.items() if k != endpoint.URL_ENV}
    no_url = run(service, "--suite", "smoke", "--out", str(tmp_path / "a"), "-n", "0", models=digits["good"], env=env)
    assert no_url.returncode == 2 and endpoint.URL_ENV in no_url.stderr and "mlci test accuracy" in no_url.stderr
    down = run(service, "--suite", "smoke", "--out", str(tmp_path / "b"), "-n", "0", models=digits["good"],
               env={endpoint.URL_ENV: f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 2 and "cannot be reached" in down.stderr, down.stderr


@pytest.mark.parametrize("on_error", ["fail", "count_wrong"])
def test_service_dying_mid_run_follows_on_error(service, digits, served, tmp_path, on_error):
    """The server is killed after its first 60 answers: the remaining samples are prediction errors."""
    url, proc = served
    write_config(service, {"smoke": {**SMOKE, "sequential": False}}, endpoint=SINGLE,
                 on_error=on_error, batch_size=20)

    def kill_after_answers(n: int = 60) -> None:  # the server logs one line per request
        seen = 0
        for line in proc.stdout:  # type: ignore[union-attr]
            seen += b"POST /predict" in line
            if seen >= n:
                proc.kill()
                return

    killer = threading.Thread(target=kill_after_answers, daemon=True)
    killer.start()
    res = run(service, "--suite", "smoke", "--out", str(tmp_path / "o"), "-n", "0", models=digits["good"],
              env={endpoint.URL_ENV: url})
    assert proc.poll() is not None, "the server was not killed during the run"
    assert res.returncode == 1, res.stdout + res.stderr
    rec = record(tmp_path / "o", "smoke")
    assert rec["verdict"] == "FAIL"
    text = json.dumps(rec)
    assert "ConnectionRefusedError" in text or "RemoteDisconnected" in text or "ConnectionResetError" in text


def test_pointer_and_template_rules():
    doc = {"a/b": {"~k": [10, 20]}, "p": [{"label": 3}]}
    assert endpoint.resolve_pointer(doc, "/a~1b/~0k/1") == 20
    assert endpoint.resolve_pointer(doc, "") is doc
    assert endpoint.resolve_pointer(doc, "/p/0/label") == 3
    for missing in ("/p/1", "/p/01", "/p/-", "/q", "/p/0/label/x"):
        assert endpoint.resolve_pointer(doc, missing) is endpoint._NOT_FOUND
    tpl = {"inputs": {"$each": {"v": "$x", "tag": "$$x", "n": 1}}, "id": "$id"}
    assert endpoint.template_fields(tpl) == {"x", "id"}
    out = endpoint.render(tpl, None, [{"x": [1], "id": "a"}, {"x": [2], "id": "b"}])
    assert out["inputs"] == [{"v": [1], "tag": "$x", "n": 1}, {"v": [2], "tag": "$x", "n": 1}]
    assert endpoint.render({"x": "$x", "k": ["$id"]}, {"x": 5, "id": "s1"}) == {"x": 5, "k": ["s1"]}
