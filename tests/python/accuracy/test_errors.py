"""Prediction errors and broken service code on the real engine, on both examples.

Error policies must not bias a verdict: a model that crashes exactly on the samples it gets wrong cannot PASS by
having them excluded; `count_wrong` scores the gate and the record's metrics alike; None/NaN predictions are
prediction errors; a NaN label is bad input. A predict module that cannot be imported, a load() that raises and a
predict returning the wrong number of predictions exit 2 with one message and the team's own traceback only.
"""

from __future__ import annotations

import numpy as np
import pytest

from .cases import DATASET, configure, record, run_suite, write_module

# A predict that knows the test set's labels (it reads the data file) and raises on every sample the real model gets
# wrong: the worst case for `exclude`, which once dropped exactly those samples and passed the model at 1.0000.
CRASH_WHEN_WRONG = """\
import numpy as np
from {pkg} import inference

with np.load("data/{dataset}.npz") as z:
    _LABEL = {{row.tobytes(): int(y) for row, y in zip(np.asarray(z["x"]), z["y"])}}

def predict(x, model=None):
    x = np.asarray(x)
    out = inference.predict(x, model)
    got = [int(np.argmax(p)) if isinstance(p, list) else int(p) for p in out]
    if any(g != _LABEL[row.astype(x.dtype).tobytes()] for g, row in zip(got, x)):
        raise ValueError("cannot score this customer" if "{pkg}" == "churn_service" else "cannot read this digit")
    return out
"""

# Missing predictions instead of exceptions: None (digits) or NaN probabilities (churn) for ~3% of the samples.
MISSING = """\
import numpy as np
from {pkg} import inference

def predict(x, model=None):
    x = np.asarray(x)
    out = inference.predict(x, model)
    hole = (np.abs(x).sum(axis=1) * 1000).astype(np.int64) % 33 == 0
    return [({missing}) if h else p for h, p in zip(hole, out)]
"""


def _examples(service, digits, churn, churn_files):
    return [(service, digits["good"], digits["bad"], "digits_service", "None"),
            (churn, churn_files["good"], churn_files["bad"], "churn_service", "[float('nan'), float('nan')]")]


def test_exclude_cannot_pass_a_model_by_dropping_the_samples_it_gets_wrong(service, digits, churn, churn_files,
                                                                         tmp_path):
    for root, _, bad, pkg, _ in _examples(service, digits, churn, churn_files):
        name = root.name
        write_module(root, "crash", CRASH_WHEN_WRONG.format(pkg=pkg, dataset=DATASET[name]))
        gate = [{"metric": "accuracy", "min": 0.88, "margin": 0.03}]
        # within the default budget (2% of the drawn samples) -- the bad model errs on ~15%: INCONCLUSIVE, at once
        configure(root, {"s": {"gates": gate, "predict": "crash:predict", "max_samples": 2000}}, on_error="exclude")
        proc = run_suite(root, "s", bad, tmp_path / f"{name}-budget", "-n", "0")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        rec = record(tmp_path / f"{name}-budget", "s")
        assert rec["verdict"] == "INCONCLUSIVE" and "max_error_rate" in rec["reason"]
        assert len(rec["errors"]) > 40 and rec["sample"]["used"] < 2000  # 2% of 2000 = 40 allowed
        # no budget: excluded samples still count against a PASS (and for a FAIL): never PASS at 1.0000
        configure(root, {"s": {"gates": gate, "predict": "crash:predict", "max_samples": 2000}}, on_error="exclude",
                  max_error_rate=1.0)
        proc = run_suite(root, "s", bad, tmp_path / f"{name}-open", "-n", "0")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        rec = record(tmp_path / f"{name}-open", "s")
        g = rec["gates"][0]
        assert g["verdict"] == "INCONCLUSIVE" and g["estimate"] == 1.0  # every scored prediction was right ...
        assert g["interval"][0] < 0.88 <= g["interval"][1]  # ... but with the excluded ones counted wrong it is not
        assert rec["metrics"]["errors"] == len(rec["errors"]) > 100 and rec["metrics"]["errors_counted"] == "excluded"


def test_count_wrong_scores_gate_and_metrics_alike_and_missing_predictions_follow_on_error(
        service, digits, churn, churn_files, tmp_path):
    for root, good, _, pkg, missing in _examples(service, digits, churn, churn_files):
        name = root.name
        write_module(root, "holes", MISSING.format(pkg=pkg, missing=missing))
        gate = [{"metric": "accuracy", "min": 0.85, "margin": 0.04}]
        configure(root, {"s": {"gates": gate, "predict": "holes:predict"}})  # on_error: fail (default)
        proc = run_suite(root, "s", good, tmp_path / f"{name}-fail", "-n", "0")
        assert proc.returncode == 1, proc.stdout + proc.stderr  # a prediction error, not bad input (exit 2)
        rec = record(tmp_path / f"{name}-fail", "s")
        assert rec["verdict"] == "FAIL" and "prediction error" in rec["reason"]
        assert rec["errors"] and all(e["error"].startswith("predict returned") for e in rec["errors"])
        configure(root, {"s": {"gates": gate, "predict": "holes:predict"}}, on_error="count_wrong")
        proc = run_suite(root, "s", good, tmp_path / f"{name}-cw", "-n", "2")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rec = record(tmp_path / f"{name}-cw", "s")
        g, m = rec["gates"][0], rec["metrics"]
        assert m["errors"] == len(rec["errors"]) > 0 and m["errors_counted"] == "wrong"
        assert g["trials"] == g["samples_used"] == m["n"] == rec["sample"]["used"]
        assert g["estimate"] == pytest.approx(m["accuracy"])  # once 0.9318 vs 0.945
        outcomes = rec["outcomes"]
        right = sum(p is not None and e is None and _label(p) == y
                    for p, e, y in zip(outcomes["predictions"], outcomes["errors"], outcomes["labels"], strict=True))
        assert g["successes"] == right


def _label(p) -> str:
    return str(int(np.argmax(p))) if isinstance(p, list) else str(p)


def test_a_nan_label_is_bad_input(service, digits, tmp_path):
    with np.load(service / "data" / "digits-test.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["y"] = arrays["y"].astype(float)
    arrays["y"][[5, 17]] = np.nan
    np.savez(service / "data" / "digits-test.npz", **arrays)
    configure(service, {"s": {"gates": [{"metric": "accuracy", "min": 0.85, "margin": 0.04}]}})
    proc = run_suite(service, "s", digits["good"], tmp_path / "o", "-n", "0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "2 sample(s) have no label (NaN), e.g. id 5, 17" in proc.stderr and "Traceback" not in proc.stderr
    (service / "data" / "t.csv").write_text("x,y\n1,cat\n3,nan\n5,dog\n")
    proc = run_suite(service, "s", digits["good"], tmp_path / "c", "--data", str(service / "data" / "t.csv"))
    assert proc.returncode == 2 and "no label (NaN)" in proc.stderr, proc.stderr


BROKEN = """\
from {pkg} import inference


def load():
    return _connect()


def _connect():
    raise RuntimeError("model store unreachable")


def short(x, model=None):
    return inference.predict(x, model)[:-1]
"""


def test_broken_service_code_is_one_clear_message_with_the_teams_frames_only(service, digits, churn, churn_files,
                                                                            tmp_path):
    for root, good, _, pkg, _ in _examples(service, digits, churn, churn_files):
        write_module(root, "broken", BROKEN.format(pkg=pkg))
        gate = [{"metric": "accuracy", "min": 0.85, "margin": 0.04}]
        cases = {
            "nomodule": ({"predict": "no_such_module:predict"},
                         ["importing predict `no_such_module:predict` failed", "No module named 'no_such_module'"]),
            "load": ({"load": "broken:load"},
                     ["loading the model with `broken:load` failed", "broken.py\", line 9, in _connect",
                      "RuntimeError: model store unreachable"]),
            "count": ({"predict": "broken:short"}, ["predictions for a batch of", "it must return one per input"]),
        }
        configure(root, {name: {"gates": gate, **extra} for name, (extra, _) in cases.items()})
        for name, (_, expected) in cases.items():
            workers = "2" if (root.name, name) == ("churn", "load") else "0"  # the xdist path once, in-process else
            out = tmp_path / f"{root.name}-{name}-{workers}"
            proc = run_suite(root, name, good, out, "-n", workers)
            text = proc.stdout + proc.stderr
            assert proc.returncode == 2, text
            for part in expected:
                assert part in proc.stderr, (part, text)
            assert proc.stderr.count("mlci: error:") == 1
            for noise in ("_pytest", "site-packages/mlci", "python/mlci/", "FAILURES", "AssertionError", "pluggy"):
                assert noise not in text, (noise, text)
            assert not (out / "accuracy").exists()


def test_a_single_class_test_set_with_an_imperfect_model_is_a_fail_not_bad_input(service, digits, churn,
                                                                                 churn_files, tmp_path):
    for root, good, _, _, _ in _examples(service, digits, churn, churn_files):
        path = root / "data" / f"{DATASET[root.name]}.npz"
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        keep = arrays["y"] == (3 if root.name == "digits" else 1)  # only 3s; only churners
        np.savez(path, **{k: v[keep] for k, v in arrays.items()})
        configure(root, {"s": {"gates": [{"metric": "accuracy", "min": 0.96, "margin": 0.03}], "max_samples": 1200}})
        proc = run_suite(root, "s", good, tmp_path / root.name, "-n", "0")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        rec = record(tmp_path / root.name, "s")
        assert rec["verdict"] == "FAIL" and rec["gates"][0]["estimate"] < 0.96
