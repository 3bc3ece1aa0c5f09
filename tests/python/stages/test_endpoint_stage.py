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
from ..image.service import GROUP, copy_service, docker_leftovers, names_with_prefix, service  # noqa: F401
from .test_stages import stage

HTTP = {"request": {"inputs": {"$each": "$x"}}, "response": "/predictions", "batch": True}


@pytest.fixture(scope="module")
def http_service(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """The digits image rebuilt with two endpoint suites in its ml-ci.yaml: `http` (the smoke suite's gates
    through POST /predict) and `http-bad` (a template naming a field the dataset lacks)."""
    from ..image.service import prepared_service

    svc = prepared_service()
    root = copy_service(svc.root, tmp_path_factory.mktemp("endpoint") / "digits")
    cfg = yaml.safe_load((root / "ml-ci.yaml").read_text())
    suites = cfg["accuracy"]["suites"]
    suites["http"] = {**suites["smoke"], "endpoint": HTTP}
    suites["http-bad"] = {**suites["smoke"], "endpoint": {**HTTP, "request": {"inputs": {"$each": "$pixels"}}}}
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
def test_endpoint_suite_with_change_gate_is_refused(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    cfg = yaml.safe_load((root / "ml-ci.yaml").read_text())
    cfg["accuracy"]["suites"]["change"]["endpoint"] = HTTP
    (root / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = stage(service, root, tmp_path / "out", "test", "accuracy", "--suite", "change")
    assert proc.returncode == 2 and "change gate" in proc.stderr and "Traceback" not in proc.stderr
