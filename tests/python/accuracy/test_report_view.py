"""What a data scientist reads, from real records of both examples (real engine, real `mlci report render`):
one way to write alpha and beta, interval levels stated and explained, a PASS shown with the bound it rests on,
every gate and metric shown on a FAIL, class names instead of bare labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.python.conftest import run_mlci

from .cases import configure, record, run_suite

CHURN_GATES = [{"metric": "accuracy", "min": 0.92, "margin": 0.02}, {"metric": "macro_f1", "min": 0.90, "margin": 0.03},
               {"metric": "auc", "min": 0.95, "margin": 0.02}]
DIGITS_GATES = [{"metric": "accuracy", "min": 0.88, "margin": 0.03}, {"metric": "macro_f1", "min": 0.85, "margin": 0.04},
                {"metric": "recall", "class": 8, "min": 0.7, "margin": 0.1}]


def _render(root: Path, out: Path) -> tuple[str, str]:
    proc = run_mlci("report", "render", "--results", str(out), "--no-history", cwd=root)
    assert proc.returncode == 0, proc.stderr
    md = (out / "report" / "report.md").read_text()
    return md.replace("\\", ""), (out / "report" / "report.html").read_text()


@pytest.mark.parametrize("example", ["churn", "digits"])
def test_pass_and_fail_reports_state_risks_bounds_and_every_metric(example, service, digits, churn, churn_files,
                                                                  tmp_path):
    root, good, bad, gates = ((churn, churn_files["good"], churn_files["bad"], CHURN_GATES) if example == "churn"
                              else (service, digits["good"], digits["bad"], DIGITS_GATES))
    configure(root, {"smoke": {"max_samples": 5000, "gates": gates}})
    for models, verdict in ((good, "PASS"), (bad, "FAIL")):
        out = tmp_path / verdict
        proc = run_suite(root, "smoke", models, out, "-n", "0")
        assert proc.returncode == {"PASS": 0, "FAIL": 1}[verdict], proc.stdout + proc.stderr
        rec = record(out, "smoke")
        md, html = _render(root, out)
        for text in (md, html, proc.stdout):
            assert not re.search(r"0\.0333+[0-9]", text), "beta written with spurious digits"
        assert "β 0.1 (0.0333 per gate, 3 gates)" in md and "β 0.1 (0.0333 per gate, 3 gates)" in html
        assert "beta 0.1 (0.0333 per gate over 3 gates)" in proc.stdout
        sprt = rec["gates"][0]
        assert sprt["method"] == "truncated-sprt" and sprt["interval_levels"] == [0.95, pytest.approx(1 - 0.1 / 3)]
        assert "95% / 97%" in md  # the two ends' levels, when they differ
        assert "one-sided confidence bound" in html  # ... and why (the legend)
        if verdict == "PASS":
            # the shown lower end is the bound the PASS rests on: never below the threshold
            assert sprt["verdict"] == "PASS" and sprt["interval"][0] >= sprt["threshold"]
            assert "lower 95% bound" in md and "≥" in md.split("lower 95% bound")[1].split("|")[0]
        else:
            assert rec["verdict"] == "FAIL"
            failed = [g for g in rec["gates"] if g["verdict"] == "FAIL"]
            assert failed and all(g["estimate"] is not None for g in rec["gates"])  # undecided gates estimated too
            for g in rec["gates"]:
                if g["verdict"] == "INCONCLUSIVE":
                    assert "the suite stopped when" in g["note"]
                    cells = [c.strip() for c in _gate_row(md, g).strip("|").split("|")]
                    assert "–" not in (cells[1], cells[2]) and cells[4], cells  # estimate, interval, bound shown
            if failed[0]["method"] == "truncated-sprt":
                assert failed[0]["bound"]["side"] == "upper"
                assert failed[0]["interval"][1] <= failed[0]["threshold"] + failed[0]["margin"]
        metrics = md.split("Metrics on the samples scored:")[1].split("\n")[0]
        for name in ("accuracy", "macro-F1") + (("AUC",) if example == "churn" else ()):
            assert name in metrics, metrics
        if example == "churn":
            assert "stays (0)" in html and "churns (1)" in html  # per class and confusion matrix
            assert "| stays (0) |" in md


def _gate_row(md: str, g: dict) -> str:
    label = g["metric"] + (f" [{g['class_name'] or g['class']}]" if g["class"] is not None else "")
    return next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
