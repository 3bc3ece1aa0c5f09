"""Reports from real accuracy.json files: `mlci accuracy run` on the digits example (PASS, FAIL, INCONCLUSIVE)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from mlci.cli import main
from mlci.config import load_config
from mlci.report import history

from ..conftest import EXAMPLE, ROOT
from . import chromium

pytestmark = pytest.mark.xdist_group("report-engine")  # one worker trains the model once

OUTPUT = ROOT / "tests" / "output" / "report"
COMMIT = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
CONFIG = """\
service: digits
artifacts:
  data:
    digits-test: {uri: data/digits-test.npz, inputs: x, label: y}
accuracy:
  load: digits_service.inference:load
  predict: digits_service.inference:predict
  batch_size: 50
  on_error: exclude
  suites:
    smoke:
      dataset: digits-test
      max_samples: 4000
      gates:
        - {metric: accuracy, min: 0.90, margin: 0.02}
        - {metric: recall, class: 8, min: 0.7, margin: 0.1}
    strict:
      dataset: digits-test
      max_samples: 3000
      gates:
        - {metric: accuracy, min: 0.97, margin: 0.02}
    tight:  # predict raises on ~5% of the samples: more than max_error_rate may be left out -> INCONCLUSIVE
      dataset: digits-test
      predict: flaky:predict
      max_samples: 4000
      gates:
        - {metric: accuracy, min: 0.90, margin: 0.02}
report:
  baseline_branch: main
"""
SUITES = {"PASS": "smoke", "FAIL": "strict", "INCONCLUSIVE": "tight"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train the example model once, then run the three suites in parallel (real engine, real CLI)."""
    root = tmp_path_factory.mktemp("report-engine")
    trained = root / "trained"
    subprocess.run([sys.executable, str(EXAMPLE / "training" / "train.py"), "--out", str(trained)], check=True,
                   capture_output=True, timeout=300)
    service = root / "digits"
    shutil.copytree(EXAMPLE, service, ignore=shutil.ignore_patterns("models", ".mlci", "__pycache__"))
    (service / "data").mkdir()
    shutil.copy(trained / "digits-test.npz", service / "data" / "digits-test.npz")
    (root / "models").mkdir()
    shutil.copy(trained / "digits.npz", root / "models" / "digits.npz")
    (service / "ml-ci.yaml").write_text(CONFIG)
    (service / "flaky.py").write_text(
        "import numpy as np\nfrom digits_service import inference\n\n"
        "def predict(x, model=None):\n"
        "    x = np.asarray(x)\n"
        "    if (x.sum(axis=1).astype(int) % 20 == 0).any():\n"
        "        raise ValueError('ink total divisible by 20')\n"
        "    return inference.predict(x, model)\n")
    env = {**os.environ, "MLCI_MODELS_DIR": str(root / "models"), "MLCI_CACHE": str(root / "cache"),
           "GIT_COMMIT": COMMIT, "BRANCH_NAME": "feature/report"}
    procs = {verdict: subprocess.Popen(
        [sys.executable, "-m", "mlci", "accuracy", "run", "--suite", suite, "-n", "0", "--out", str(root / verdict)],
        cwd=service, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for verdict, suite in SUITES.items()}
    codes = {}
    for verdict, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        codes[verdict] = (proc.returncode, out)
    return {"root": root, "service": service, "codes": codes}


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE"])
def test_real_record_renders(runs, verdict, capsys):
    code, log = runs["codes"][verdict]
    assert code == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[verdict], log
    results = runs["root"] / verdict
    record = json.loads((results / "accuracy" / SUITES[verdict] / "accuracy.json").read_text())
    assert record["verdict"] == verdict and record["git"]["commit"] == COMMIT
    assert main(["report", "render", "--results", str(results), "--no-history", "-c",
                 str(runs["service"] / "ml-ci.yaml")]) == 0
    assert verdict in capsys.readouterr().out
    page_path = results / "report" / "report.html"
    page = page_path.read_text()
    md = (results / "report" / "report.md").read_text()
    gate = record["gates"][0]
    shown = f"{gate['estimate'] * 100:.1f}%"
    assert shown in page and shown in md
    assert f"{gate['samples_used']:,}" in page
    assert record["model"]["files"]["models/digits.npz"] in page and record["dataset"]["sha256"] in page
    assert "feature/report" in page
    loaded = chromium.load(page_path, OUTPUT / f"engine-{verdict.lower()}.png")
    assert loaded.console == [], loaded.console
    assert 'class="chart confusion"' in loaded.dom and 'class="chart bar"' in loaded.dom
    assert f'<header class="banner {verdict.lower()}">' in loaded.dom


def test_real_records_in_history_reuse_and_trend(runs, s3_bucket, tmp_path, capsys):
    """Record the real records, then the result cache finds the PASS by its model/data/code digests."""
    cfg_path = runs["service"] / "ml-ci.yaml"
    text = CONFIG.replace("  baseline_branch: main\n", f"  baseline_branch: main\n  history: s3://{s3_bucket}/h\n")
    cfg_file = tmp_path / "ml-ci.yaml"
    cfg_file.write_text(text)
    for verdict in SUITES:
        assert main(["report", "record", "-c", str(cfg_file), "--results", str(runs["root"] / verdict)]) == 0
    assert capsys.readouterr().out.count("recorded ") == 3
    cfg = load_config(cfg_file)
    rec = json.loads((runs["root"] / "PASS" / "accuracy" / "smoke" / "accuracy.json").read_text())
    hit = history.find_reusable(cfg, suite="smoke", model_files=rec["model"]["files"],
                                dataset_sha256=rec["dataset"]["sha256"], code_digest=rec["model"]["code_digest"])
    assert hit is not None and hit["git"]["commit"] == COMMIT and hit["verdict"] == "PASS"
    # the failing suite's record is never reusable, even with identical digests
    assert history.find_reusable(cfg, suite="strict", model_files=rec["model"]["files"],
                                 dataset_sha256=rec["dataset"]["sha256"], code_digest=rec["model"]["code_digest"]) is None
    assert history.latest_pass(cfg, branch="feature/report", suite="smoke")["history"]["id"] == hit["history"]["id"]
    assert cfg_path.exists()
