"""Hand-written accuracy.json / build.json / JUnit fixtures matching docs/ARCHITECTURE.md exactly.

`test_samples_match_documented_schema` checks the key sets against the documented examples, so these cannot drift
from the contract unnoticed.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from mlci.fsutil import write_json_atomic, write_text_atomic

EVIL = "<script>alert(1)</script>"
RUN = "20261122T180000Z-1a2b3c4d"
LABELS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", EVIL]

_MATRIX = [
    [78, 0, 0, 0, 1, 0, 1, 0, 0, 0],
    [0, 79, 1, 0, 0, 0, 0, 0, 2, 0],
    [0, 1, 76, 1, 0, 0, 0, 1, 1, 0],
    [0, 0, 1, 74, 0, 2, 0, 1, 2, 1],
    [0, 0, 0, 0, 79, 0, 0, 0, 0, 2],
    [0, 0, 0, 1, 0, 77, 1, 0, 0, 1],
    [1, 1, 0, 0, 0, 0, 79, 0, 0, 0],
    [0, 0, 0, 0, 1, 0, 0, 77, 0, 1],
    [0, 3, 0, 1, 0, 1, 0, 0, 71, 2],
    [0, 0, 0, 1, 1, 1, 0, 1, 1, 73],
]


def _per_class(matrix: list[list[int]]) -> dict[str, dict[str, float]]:
    out = {}
    for i, label in enumerate(LABELS):
        tp = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[label] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "support": support}
    return out


def accuracy_record(verdict: str = "PASS", *, commit: str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
                    branch: str = "feature/faster-model", suite: str = "smoke", service: str = "digits",
                    accuracy: float = 0.9525, image_digest: str | None = "sha256:" + "ab" * 32,
                    run: str = RUN) -> dict[str, Any]:
    """An accuracy.json of the documented shape; verdict PASS, FAIL or INCONCLUSIVE."""
    n = sum(map(sum, _MATRIX))
    matrix = copy.deepcopy(_MATRIX)
    per_class = _per_class(matrix)
    macro_f1 = round(sum(c["f1"] for c in per_class.values()) / len(per_class), 4)
    gate_verdict = verdict
    if verdict == "PASS":
        estimate, interval, msg = accuracy, [accuracy - 0.016, accuracy + 0.014], "accuracy 0.953 >= 0.900"
    elif verdict == "FAIL":
        accuracy = 0.861
        estimate, interval, msg = accuracy, [0.838, 0.882], "accuracy 0.861 < 0.900: the model is worse than the gate"
    else:
        accuracy = 0.905
        estimate, interval, msg = accuracy, [0.889, 0.921], "max_samples 3000 reached before the evidence sufficed"
    exit_code = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[verdict]
    used = {"PASS": 800, "FAIL": 450, "INCONCLUSIVE": 3000}[verdict]
    return {
        "schema": "mlci.accuracy/1", "id": uuid.uuid4().hex, "run": {"id": run}, "service": service, "suite": suite,
        "verdict": verdict, "exit_code": exit_code,
        "seed": 123456, "seed_source": "inputs",
        "git": {"commit": commit, "branch": branch, "dirty": False},
        "image": None if image_digest is None else {"name": "mlci/digits", "digest": image_digest},
        "dataset": {"name": "digits-test", "uri": "s3://mlci-demo/digits/data/digits-test.npz",
                    "sha256": "01907c9061c2d171415c124369d2abe9a5bb6160e897296a8036b8e0fa58521f", "size": 6471},
        "model": {"files": {"models/digits.npz": "sha256:" + "cd" * 32}, "code_digest": "sha256:" + "ef" * 32},
        "mlci_version": "0.1.0", "started": "2026-11-22T18:00:00Z", "duration_s": 3.2,
        "sample": {"drawn": 3000, "used": used, "shard": None, "sequential": True},
        "gates": [
            {"metric": "accuracy", "kind": "absolute", "class": None, "threshold": 0.9, "direction": ">=",
             "margin": 0.02, "alpha": 0.05, "beta": 0.1, "verdict": gate_verdict, "estimate": estimate,
             "interval": interval, "interval_method": "anytime-valid (SPRT)", "samples_used": used,
             "fixed_n": 1500, "samples_saved": max(1500 - used, 0), "message": msg},
            {"metric": "recall", "kind": "absolute", "class": EVIL, "threshold": 0.8, "direction": ">=",
             "margin": 0.02, "alpha": 0.05, "beta": 0.1, "verdict": "PASS", "estimate": 0.9125,
             "interval": [0.85, 0.96], "interval_method": "Clopper-Pearson", "samples_used": used,
             "fixed_n": 1200, "samples_saved": max(1200 - used, 0), "message": f"recall[{EVIL}] 0.913 >= 0.800"},
        ],
        "metrics": {"accuracy": accuracy, "macro_f1": macro_f1, "n": n,
                    "per_class": per_class,
                    "confusion": {"labels": list(LABELS), "matrix": matrix},
                    "latency_ms": {"p50": 0.1, "p95": 0.3}, "mae": None, "rmse": None, "auc": None},
        "errors": [{"id": "17", "error": f"ValueError: bad pixel {EVIL}"}],
        "outcomes": {"ids": ["0", "5"], "labels": ["3", "7"], "predictions": ["3", "1"]},
        "baseline": None,
        "cache_key": None,
    }


def build_record(commit: str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", *, run: str = RUN,
                 digest: str = "sha256:" + "ab" * 32) -> dict[str, Any]:
    return {"schema": "mlci.build/1", "service": "digits", "run": {"id": run},
            "image": {"name": "mlci/digits", "tags": ["mlci/digits:a1b2c3d", "mlci/digits:main"],
                      "id": "sha256:" + "12" * 32, "digest": digest},
            "git": {"commit": commit, "branch": "feature/faster-model", "dirty": False},
            "models": {"lock": "models.lock", "lock_sha256": "34" * 32,
                       "files": {"models/digits.npz": "sha256:" + "cd" * 32}},
            "mlci_version": "0.1.0", "created": "2026-11-22T18:00:00Z", "duration_s": 12.3}


JUNIT_UNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="12" time="0.8">
<testcase classname="tests.unit.test_model" name="test_ok" time="0.01"/>
<testcase classname="tests.unit.test_model" name="test_&lt;b&gt;bad" time="0.01"><failure message="boom &lt;script&gt;">x</failure></testcase>
</testsuite></testsuites>
"""

JUNIT_ACCEPTANCE = """<?xml version="1.0" encoding="utf-8"?>
<testsuite name="pytest" errors="0" failures="0" skipped="0" tests="4" time="1.5">
<testcase classname="tests.acceptance.test_http" name="test_health" time="0.1"/>
</testsuite>
"""


def write_results(out: Path, record: dict[str, Any], *, build: bool = True, junit: bool = True) -> Path:
    """Lay out an output directory like a pipeline run: accuracy/<suite>/accuracy.json, build.json, junit/."""
    write_json_atomic(out / "accuracy" / record["suite"] / "accuracy.json", record)
    if build:  # the build of the record's own run and image
        write_json_atomic(out / "build.json", build_record(record["git"]["commit"], run=record["run"]["id"],
                                                           digest=(record["image"] or {}).get("digest") or "sha256:" + "ab" * 32))
    if junit:
        write_text_atomic(out / "junit" / "unit.xml", JUNIT_UNIT)
        write_text_atomic(out / "junit" / "acceptance.xml", JUNIT_ACCEPTANCE)
    return out


CONFIG = """\
service: digits
artifacts:
  data:
    digits-test: {{uri: s3://mlci-demo/d.npz}}
accuracy:
  predict: digits_service.inference:predict
  suites:
    smoke:
      dataset: digits-test
      gates:
        - {{metric: accuracy, min: 0.90}}
        - {{metric: recall, class: "<script>alert(1)</script>", min: 0.8}}
    full:
      dataset: digits-test
      gates:
        - {{metric: accuracy, min: 0.90}}
report:
  baseline_branch: {branch}
{history}{post}"""


def write_config(directory: Path, *, history: str | None = None, branch: str = "main",
                 post: dict[str, str] | None = None) -> Path:
    """An ml-ci.yaml for report tests (validated by the real loader when used)."""
    path = directory / "ml-ci.yaml"
    post_text = ""
    if post:
        post_text = "  post:\n" + "".join(f"    {k}: {v}\n" for k, v in post.items())
    path.write_text(CONFIG.format(branch=json.dumps(branch), history=f"  history: {history}\n" if history else "",
                                  post=post_text))
    return path
