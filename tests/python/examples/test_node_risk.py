"""The Node.js example (examples/node-risk): its own tests with the host's node, then the whole pipeline --
built with Debian's nodejs in the image, unit and acceptance tests by node:test (JUnit through the example's
reporter), accuracy gates through the served HTTP API (endpoint mode) -- on the real Docker engine and S3."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ..conftest import EXAMPLE, run_mlci
from ..image.service import image_group, names_with_prefix, prepared_example

GROUP = image_group(__name__)

ROOT = EXAMPLE.parent / "node-risk"
NODE = shutil.which("node")
REPORTER = ["--test-reporter=./test/junit-reporter.mjs"]


def counts(path: Path) -> tuple[int, int]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return int(suite.get("tests", 0)), int(suite.get("failures", 0))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("node-risk")
    subprocess.run([sys.executable, str(ROOT / "training" / "train.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return out


def test_training_reproduces_the_pinned_model_and_data(trained: Path) -> None:
    import hashlib

    lock = (ROOT / "models.lock").read_text()
    assert hashlib.sha256((trained / "risk.json").read_bytes()).hexdigest() in lock
    assert hashlib.sha256((trained / "risk-test.npz").read_bytes()).hexdigest() in (ROOT / "ml-ci.yaml").read_text()


@pytest.mark.skipif(NODE is None, reason="node is not installed on this host")
def test_unit_tests_pass_and_the_reporter_counts_failures(trained: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained / "risk.json", models / "risk.json")
    env = {"MLCI_MODELS_DIR": str(models), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([NODE, "--test", *REPORTER, f"--test-reporter-destination={tmp_path / 'ok.xml'}",
                         "test/unit/model.test.js"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert counts(tmp_path / "ok.xml") == (4, 0)
    broken = tmp_path / "broken.test.js"
    broken.write_text("const test = require('node:test');\nconst assert = require('node:assert');\n"
                      "test('passes', () => {});\n"
                      "test('a <deliberate> failure', () => { assert.strictEqual(1 + 1, 3); });\n")
    bad = subprocess.run([NODE, "--test", *REPORTER, f"--test-reporter-destination={tmp_path / 'bad.xml'}",
                          str(broken)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert counts(tmp_path / "bad.xml") == (2, 1)
    failure = ET.parse(tmp_path / "bad.xml").getroot().find(".//failure")
    assert failure is not None and "3" in failure.get("message", "")
    assert any(tc.get("name") == "a <deliberate> failure" for tc in ET.parse(tmp_path / "bad.xml").iter("testcase"))


@GROUP
def test_full_pipeline_on_the_node_service(tmp_path: Path) -> None:
    svc = prepared_example("node-risk")
    out = tmp_path / "out"
    proc = run_mlci("pipeline", "run", "--out", str(out), cwd=svc.root, env=svc.env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "=== pipeline PASSED (exit 0)" in proc.stdout
    for name in ("build", "unit", "acceptance", "accuracy"):
        assert any(line.split()[:2] == [name, "ok"] for line in proc.stdout.splitlines()), name
    assert counts(out / "junit" / "unit.xml") == (4, 0)
    assert counts(out / "junit" / "acceptance.xml") == (3, 0)
    rec = json.loads((out / "accuracy" / "smoke" / "accuracy.json").read_text())
    assert rec["verdict"] == "PASS"
    assert [(g["metric"], g["verdict"]) for g in rec["gates"]] == [
        ("accuracy", "PASS"), ("macro_f1", "PASS"), ("latency_p95", "PASS")]
    assert rec["plan"]["settings"]["endpoint"]["item"] == "/label"
    assert rec["plan"]["timing"] == "per_sample"  # the latency gate: one timed request per applicant
    lat = rec["metrics"]["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] < 250
    assert set(rec["outcomes"]["predictions"]) <= {"low", "medium", "high"}
    assert rec["image"]["digest"] == json.loads((out / "build.json").read_text())["image"]["digest"]
    assert "medium risk" in (out / "report" / "report.md").read_text()
    assert names_with_prefix(svc.prefix) == []
