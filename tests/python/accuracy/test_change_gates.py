"""Change gates on metrics other than accuracy (AUC, macro-F1, MAE), on the real engine and both examples: a
paired BCa bootstrap on the same samples with absolute and relative margins, a weaker candidate FAILs and a
stronger one PASSes; what it cannot do is refused before anything runs."""

from __future__ import annotations

import pytest

from .cases import configure, record, run_suite, write_module

NUMBERS = """\
from {pkg} import inference

def digit_value(x, model=None):
    return [float(v) for v in inference.predict(x, model)]

def churn_probability(x, model=None):
    return [float(p[1]) for p in inference.predict(x, model)]
"""


def _models(example, digits, churn_files):
    return (digits["good"], digits["bad"]) if example == "digits" else (churn_files["good"], churn_files["bad"])


@pytest.mark.parametrize("example", ["digits", "churn"])
def test_a_change_gate_on_any_metric_passes_a_better_candidate_and_fails_a_worse_one(example, service, digits, churn,
                                                                                    churn_files, tmp_path):
    root = service if example == "digits" else churn
    good, bad = _models(example, digits, churn_files)
    metric = "macro_f1" if example == "digits" else "auc"
    configure(root, {"c": {"max_samples": 1500, "gates": [
        {"metric": metric, "kind": "change", "margin": 0.01, "relative_margin": 0.02}]}})
    for cand, base, verdict, code in ((good, bad, "PASS", 0), (bad, good, "FAIL", 1)):
        out = tmp_path / verdict
        proc = run_suite(root, "c", cand, out, "--baseline-models", str(base), "-n", "2")
        assert proc.returncode == code, proc.stdout + proc.stderr
        rec = record(out, "c")
        g = rec["gates"][0]
        assert g["method"] == "paired-bootstrap" and g["verdict"] == verdict and g["validity"] == "fixed look"
        assert g["samples_used"] == 1500 and g["relative_margin"] == 0.02 and len(g["contrast_lower"]) == 2
        assert g["estimate"] == pytest.approx(g["candidate_value"] - g["baseline_value"])
        if verdict == "PASS":
            assert g["candidate_value"] > g["baseline_value"] and all(x > 0 for x in g["contrast_lower"])
        else:
            assert g["candidate_value"] < g["baseline_value"] and g["interval"][1] < 0
        assert "paired BCa bootstrap (fixed look)" in g["test"] and "not anytime-valid" in g["message"]
        # the candidate's metric is the record's own metric on the same samples
        assert g["candidate_value"] == pytest.approx(rec["metrics"][metric], abs=1e-9)


@pytest.mark.parametrize("example", ["digits", "churn"])
def test_an_mae_change_gate_is_lower_is_better(example, service, digits, churn, churn_files, tmp_path):
    root = service if example == "digits" else churn
    good, bad = _models(example, digits, churn_files)
    write_module(root, "numeric", NUMBERS.format(pkg="digits_service" if example == "digits" else "churn_service"))
    predict = "numeric:digit_value" if example == "digits" else "numeric:churn_probability"
    configure(root, {"c": {"max_samples": 1000, "predict": predict, "gates": [
        {"metric": "mae", "kind": "change", "margin": 0.01, "relative_margin": 0.05}]}})
    for cand, base, verdict in ((good, bad, "PASS"), (bad, good, "FAIL")):
        proc = run_suite(root, "c", cand, tmp_path / verdict, "--baseline-models", str(base), "-n", "2")
        assert proc.returncode == {"PASS": 0, "FAIL": 1}[verdict], proc.stdout + proc.stderr
        g = record(tmp_path / verdict, "c")["gates"][0]
        assert g["direction"] == "<=" and g["verdict"] == verdict
        assert (g["candidate_value"] < g["baseline_value"]) == (verdict == "PASS")


def test_change_gates_the_engine_cannot_judge_are_refused(service, digits, tmp_path):
    write_module(service, "scores", "def exact(p, y):\n    return p == y\n")
    for gate, cap, says in (
            ({"metric": "latency_p95", "kind": "change", "margin": 5}, 1000, "needs the baseline's own latencies"),
            ({"metric": {"score": "scores:exact"}, "kind": "change", "margin": 0.02}, 1000, "needs the baseline's scores"),
            ({"metric": "macro_f1", "kind": "change", "margin": 0.02}, 200, "at least 300 paired samples"),
            ({"metric": "accuracy", "kind": "change", "margin": 0.02, "relative_margin": 0.1}, 3000,
             "`relative_margin` applies to change gates on metrics other than accuracy"),
            ({"metric": "macro_f1", "kind": "change", "margin": 1.5}, 1000, "must be below 1")):
        configure(service, {"c": {"max_samples": cap, "gates": [gate]}})
        proc = run_suite(service, "c", digits["good"], tmp_path / "x", "--baseline-models", str(digits["bad"]),
                         "-n", "0")
        assert proc.returncode == 2 and says in proc.stderr, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "accuracy.suites.c.gates[0]" in proc.stderr
