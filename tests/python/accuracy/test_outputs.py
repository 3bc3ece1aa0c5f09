"""Prediction types on the real engine, on both examples: churn's predict returns probabilities (binary), digits'
returns labels and, through predict_proba, ten-class probabilities. Every metric must come from the one documented
transformation (threshold or argmax for labels, scores for AUC) and agree with scikit-learn on the same samples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score, roc_auc_score

from tests.python.conftest import run_mlci

from .cases import configure, record, run_suite, write_module


def _outcomes(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    o = rec["outcomes"]
    return np.asarray(o["labels"], dtype=int), np.asarray(o["predictions"], dtype=float)


def test_f1_next_to_auc_reads_thresholded_labels_and_auc_reads_probabilities(churn, churn_files, tmp_path):
    """Before: macro-F1 was computed on raw probabilities (0.0000 -> FAIL) and the AUC gate showed nothing."""
    configure(churn, {"s": {"sequential": False, "gates": [
        {"metric": "accuracy", "min": 0.90, "margin": 0.03},
        {"metric": "macro_f1", "min": 0.90, "margin": 0.03},
        {"metric": "auc", "min": 0.95, "margin": 0.02}]}})
    proc = run_suite(churn, "s", churn_files["good"], tmp_path / "o", "-n", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = record(tmp_path / "o", "s")
    y, p = _outcomes(rec)
    assert p.shape == (rec["sample"]["used"], 2)  # the raw probabilities are what the record keeps
    labels = (p[:, 1] >= 0.5).astype(int)
    (acc, n_acc), (f1, n_f1), (auc, n_auc) = ((g["estimate"], g["samples_used"]) for g in rec["gates"])
    assert acc == pytest.approx(np.mean(labels[:n_acc] == y[:n_acc]))  # fixed n: each gate on its own n
    assert f1 == pytest.approx(f1_score(y[:n_f1], labels[:n_f1], average="macro"))
    assert auc == pytest.approx(roc_auc_score(y[:n_auc], p[:n_auc, 1]))
    # the metrics block: the same transformation over every recorded sample
    assert rec["metrics"]["macro_f1"] == pytest.approx(f1_score(y, labels, average="macro"))
    assert rec["metrics"]["auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert [g["verdict"] for g in rec["gates"]] == ["PASS"] * 3
    out = rec["plan"]["output"]
    assert out["kind"] == "probabilities" and out["threshold"] == 0.5 and out["positive"] == "1"
    assert out["transformation"] == "probabilities; churns when P(churns) >= 0.5, else stays"


def test_the_decision_threshold_is_configurable_recorded_and_shown(churn, churn_files, tmp_path):
    """A suite's own threshold moves every label metric; the same threshold on the score-only predict (output:
    scores, a per-suite predict) gives the same numbers on the same sample."""
    gates = [{"metric": "recall", "class": "churns", "min": 0.88, "margin": 0.04},
             {"metric": "accuracy", "min": 0.88, "margin": 0.04}]
    configure(churn, {"at30": {"threshold": 0.3, "seed": 5, "sequential": False, "gates": gates},
                      "at50": {"seed": 5, "sequential": False, "gates": gates},
                      "scores30": {"threshold": 0.3, "seed": 5, "sequential": False, "gates": gates,
                                   "predict": "churn_service.inference:churn_score", "output": "scores"}})
    recs = {}
    for suite in ("at30", "at50", "scores30"):
        proc = run_suite(churn, suite, churn_files["good"], tmp_path / suite, "-n", "0")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        recs[suite] = record(tmp_path / suite, suite)
    y, p = _outcomes(recs["at30"])
    for suite, t in (("at30", 0.3), ("at50", 0.5)):
        rec = recs[suite]
        n = rec["gates"][0]["samples_used"]
        assert rec["plan"]["output"]["threshold"] == t
        assert rec["gates"][0]["estimate"] == pytest.approx(recall_score(y[:n], (p[:n, 1] >= t).astype(int)))
        assert rec["gates"][0]["class_name"] == "churns" and rec["gates"][0]["class"] == "1"
    assert recs["at30"]["gates"][0]["estimate"] > recs["at50"]["gates"][0]["estimate"]
    assert np.allclose(np.asarray(recs["scores30"]["outcomes"]["predictions"]), p[:, 1])
    for a, b in zip(recs["at30"]["gates"], recs["scores30"]["gates"], strict=True):
        assert (a["estimate"], a["verdict"], a["interval"]) == (b["estimate"], b["verdict"], b["interval"])
    proc = run_mlci("report", "render", "--results", str(tmp_path / "at30"), "--no-history", cwd=churn)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "at30" / "report" / "report.md").read_text()
    html = (tmp_path / "at30" / "report" / "report.html").read_text()
    md = md.replace("\\", "")  # Markdown escapes
    assert "churns when P(churns) >= 0.3" in md and "churns when P(churns) &gt;= 0.3" in html
    assert "recall [churns]" in md and "churns (1)" in html  # class names from accuracy.labels


def test_multiclass_probabilities_argmax_for_labels_and_one_vs_rest_auc(service, digits, tmp_path):
    """digits through predict_proba: ten probabilities per image; accuracy and macro-F1 from the argmax equal
    those of the labels predict on the same sample; AUC is scikit-learn's one-vs-rest macro average."""
    gates = [{"metric": "accuracy", "min": 0.88, "margin": 0.03}, {"metric": "macro_f1", "min": 0.85, "margin": 0.04},
             {"metric": "auc", "min": 0.95, "margin": 0.02}]
    configure(service, {"proba": {"seed": 11, "sequential": False, "gates": gates, "output": "probabilities",
                                  "predict": "digits_service.inference:predict_proba"},
                        "labels": {"seed": 11, "sequential": False, "gates": gates[:2]}})
    proc = run_suite(service, "proba", digits["good"], tmp_path / "p", "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = record(tmp_path / "p", "proba")
    y, p = _outcomes(rec)
    assert p.shape == (rec["sample"]["used"], 10)
    n, n_f1, n_auc = (g["samples_used"] for g in rec["gates"])
    assert rec["plan"]["output"]["transformation"] == "probabilities over 10 classes; predicted class = the most probable"
    assert rec["plan"]["output"]["threshold"] is None  # no binary decision threshold applies
    assert rec["gates"][0]["estimate"] == pytest.approx(np.mean(p[:n].argmax(axis=1) == y[:n]))
    assert rec["gates"][1]["estimate"] == pytest.approx(f1_score(y[:n_f1], p[:n_f1].argmax(axis=1), average="macro"))
    assert rec["gates"][2]["estimate"] == pytest.approx(roc_auc_score(y[:n_auc], p[:n_auc], multi_class="ovr"))
    assert rec["metrics"]["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    proc = run_suite(service, "labels", digits["good"], tmp_path / "l", "-n", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    labels = record(tmp_path / "l", "labels")["outcomes"]
    m = min(len(labels["predictions"]), len(y))
    assert labels["labels"][:m] == [str(v) for v in y[:m]]  # the same seed: the same sample
    assert labels["predictions"][:m] == [str(v) for v in p[:m].argmax(axis=1)]  # argmax = the labels predict


def test_a_prediction_of_the_wrong_type_is_bad_input_naming_the_output_to_set(service, digits, churn, churn_files,
                                                                            tmp_path):
    gate = [{"metric": "accuracy", "min": 0.8, "margin": 0.05}]
    cases = [
        (churn, churn_files["good"], {"gates": gate, "output": "labels"}, "set output: probabilities"),
        (service, digits["good"], {"gates": gate, "output": "probabilities"}, "needs 10 probabilities per sample"),
        (churn, churn_files["good"], {"gates": gate, "predict": "logits:predict"}, "probabilities lie in [0, 1]"),
    ]
    write_module(churn, "logits", "import numpy as np\nfrom churn_service import inference\n\n"
                 "def predict(x, model=None):\n"
                 "    p = np.clip(np.asarray(inference.predict(x, model)), 1e-6, 1 - 1e-6)\n"
                 "    return np.log(p / (1 - p)).tolist()\n")
    for i, (root, models, suite, message) in enumerate(cases):
        configure(root, {"s": suite})
        proc = run_suite(root, "s", models, tmp_path / f"o{i}", "-n", "0")
        assert proc.returncode == 2 and message in proc.stderr, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "_pytest" not in proc.stderr
    # an AUC gate on a labels predict: refused by `config check`, before any image is built
    for root in (service, churn):
        configure(root, {"s": {"gates": [{"metric": "auc", "min": 0.9}], "output": "labels"}})
        proc = run_mlci("config", "check", cwd=root)
        assert proc.returncode == 2 and "an auc gate ranks samples by score" in proc.stderr, proc.stderr
