"""`mlci test accuracy` in endpoint mode on the real Docker engine and S3 server: the stage plans the sample,
starts the digits service exactly as the acceptance stage does and runs the engine on its private network. The
verdict through the served API equals the callable mode's on the same image, model and seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import run_mlci
from ..image.service import copy_service, docker_leftovers, image_group, names_with_prefix, service  # noqa: F401
from .test_stages import stage

GROUP = image_group(__name__)

HTTP = {"request": {"inputs": {"$each": "$x"}}, "response": "/predictions", "batch": True}
CRASHY = '''"""The digits server, except that the process dies (exit 3) on the 3rd request whose body has "crash"."""
import json
import os
from http.server import ThreadingHTTPServer

from digits_service import inference, server

seen = [0]


class Handler(server.Handler):
    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if payload.get("crash"):
            seen[0] += 1
            if seen[0] > 2:
                print("crashy: dying mid-run", flush=True)
                os._exit(3)
        self._send(200, {"predictions": inference.predict(payload["inputs"])})


inference.load()
ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def http_service(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """The digits image rebuilt with three endpoint suites in its ml-ci.yaml: `http` (the smoke suite's gates
    through POST /predict), `http-bad` (a template naming a field the dataset lacks) and `http-crash` (its requests
    make the service die after two answers); the service runs through crashy.py (the digits server otherwise)."""
    from ..image.service import prepared_service

    svc = prepared_service()
    root = copy_service(svc.root, tmp_path_factory.mktemp("endpoint") / "digits")
    cfg = yaml.safe_load((root / "ml-ci.yaml").read_text())
    suites = cfg["accuracy"]["suites"]
    suites["http"] = {**suites["smoke"], "endpoint": HTTP}
    suites["http-bad"] = {**suites["smoke"], "endpoint": {**HTTP, "request": {"inputs": {"$each": "$pixels"}}}}
    suites["http-crash"] = {**suites["smoke"], "endpoint": {**HTTP, "request": {"inputs": {"$each": "$x"},
                                                                                "crash": True}}}
    cfg["tests"]["acceptance"]["serve"]["command"] = "python3 crashy.py"
    (root / "crashy.py").write_text(CRASHY)
    (root / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = root.parent / "out"
    built = run_mlci("build", "--out", str(out), cwd=root, env=svc.env, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    return svc, root, out


def record(out: Path, suite: str) -> dict[str, Any]:
    return json.loads((out / "accuracy" / suite / "accuracy.json").read_text())


def stage_run(svc: Any, root: Path, built: Path, out: Path, *args: str):
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.json").write_text((built / "build.json").read_text())
    return run_mlci("test", "accuracy", *args, "--out", str(out), cwd=root, env=svc.env, timeout=900)


@GROUP
def test_endpoint_stage_verdict_equals_callable(http_service, tmp_path: Path) -> None:
    svc, root, built = http_service
    out = tmp_path / "out"
    callable_run = stage_run(svc, root, built, out, "--suite", "smoke", "--seed", "7", "-n", "2", "--force")
    assert callable_run.returncode == 0, callable_run.stderr[-3000:]
    http = stage_run(svc, root, built, out, "--suite", "http", "--seed", "7", "-n", "2", "--force")
    assert http.returncode == 0, http.stdout[-3000:] + http.stderr[-3000:]
    assert "service healthy after" in http.stderr and "accuracy plan" in http.stderr
    c, e = record(out, "smoke"), record(out, "http")
    assert e["verdict"] == c["verdict"] == "PASS"
    assert e["seed"] == c["seed"] == 7 and e["sample"]["used"] == c["sample"]["used"]
    assert [(g["verdict"], g["estimate"], g["interval"]) for g in e["gates"]] == \
        [(g["verdict"], g["estimate"], g["interval"]) for g in c["gates"]]
    e["metrics"].pop("latency_ms")
    c["metrics"].pop("latency_ms")
    assert e["metrics"] == c["metrics"]
    assert e["image"]["digest"] == c["image"]["digest"] and e["plan"]["settings"]["endpoint"]["batch"] is True
    assert not list(out.glob(".stage-*")) and not list(out.glob(".mlci-aws-*"))
    assert names_with_prefix(svc.prefix) == []  # service, engine and network removed
    assert [n for n in docker_leftovers() if n.startswith(svc.prefix)] == []


@GROUP
def test_endpoint_stage_refuses_a_bad_template_before_starting_the_service(http_service, tmp_path: Path) -> None:
    svc, root, built = http_service
    proc = stage_run(svc, root, built, tmp_path / "out", "--suite", "http-bad", "-n", "1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "$pixels" in proc.stderr and "accuracy.suites.http-bad.endpoint.request" in proc.stderr
    assert "$x" in proc.stderr  # the fields it could use
    assert "-svc-" not in proc.stderr and "Traceback" not in proc.stderr
    assert names_with_prefix(svc.prefix) == []


@GROUP
def test_service_dying_mid_run_fails_the_suite_with_its_logs(http_service, tmp_path: Path) -> None:
    """accuracy.on_error: fail (the default): the samples after the crash are prediction errors, the suite FAILs
    with a record naming them, the service's state and last logs are printed, nothing is left behind."""
    svc, root, built = http_service
    out = tmp_path / "out"
    proc = stage_run(svc, root, built, out, "--suite", "http-crash", "-n", "1")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    rec = record(out, "http-crash")
    assert rec["verdict"] == "FAIL" and "prediction error" in json.dumps(rec)
    errors = [e for e in rec["outcomes"]["errors"] if e]
    assert errors and all("http://mlci-" in e for e in errors), errors[:3]
    assert rec["duration_s"] < 60  # a dead service is not waited on for every remaining sample
    assert "exit code 3" in proc.stderr and "crashy: dying mid-run" in proc.stderr
    assert names_with_prefix(svc.prefix) == []


@GROUP
def test_endpoint_suite_with_change_gate_is_refused(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    cfg = yaml.safe_load((root / "ml-ci.yaml").read_text())
    cfg["accuracy"]["suites"]["change"]["endpoint"] = HTTP
    (root / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = stage(service, root, tmp_path / "out", "test", "accuracy", "--suite", "change")
    assert proc.returncode == 2 and "change gate" in proc.stderr and "Traceback" not in proc.stderr
