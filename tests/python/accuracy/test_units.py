"""In-process tests of the pure parts: sampling, data loading, metrics, gate planning and evaluation,
and the controller's prefix ordering."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from mlci.accuracy import data, metrics, sampling
from mlci.accuracy.gates import Evaluator, plan_gates
from mlci.accuracy.outputs import Output
from mlci.accuracy.plugin import BATCH_FILE, PROPERTY, Controller
from mlci.errors import UserError


def test_sample_order_is_seeded_and_every_prefix_is_stratified():
    labels = [str(i % 10 if i % 7 else 3) for i in range(5000)]
    a, b = sampling.stratified_order(labels, 11), sampling.stratified_order(labels, 11)
    assert (a == b).all() and sorted(a.tolist()) == list(range(5000))
    assert not (a == sampling.stratified_order(labels, 12)).all()
    share = {c: labels.count(c) / len(labels) for c in set(labels)}
    arr = np.asarray(labels)[a]
    for m in (10, 57, 300, 1234):
        for c, s in share.items():
            assert abs(np.sum(arr[:m] == c) - s * m) < 2, (m, c)


def test_shards_partition_the_draw_and_seeds_come_from_what_is_judged():
    parts = [sampling.shard_positions(103, (k, 3)) for k in (1, 2, 3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(103))
    inputs = {"suite": "s", "dataset_sha": "d", "models": {"models/m.npz": "sha256:aa"}, "code": "sha256:cc"}
    assert sampling.choose_seed(5, 9, **inputs) == (5, "flag")
    assert sampling.choose_seed(None, 9, **inputs) == (9, "config")
    seed, src = sampling.choose_seed(None, None, **inputs)
    assert src == "inputs" and seed == sampling.choose_seed(None, None, **dict(inputs))[0]
    # every input judged moves the sample; nothing else can (the commit is not an input)
    for key, other in (("suite", "t"), ("dataset_sha", "e"), ("models", {"models/m.npz": "sha256:ab"}),
                       ("code", "sha256:cd")):
        assert seed != sampling.choose_seed(None, None, **{**inputs, key: other})[0], key
    for bad in ("3/2", "0/2", "x", "1/2/3"):
        with pytest.raises(UserError):
            sampling.parse_shard(bad)


def test_datasets_in_three_formats(tmp_path: Path):
    np.savez(tmp_path / "a.npz", x=np.arange(12).reshape(4, 3), y=np.array([0, 1, 1, 0]), id=np.array([7, 8, 9, 10]))
    ds = data.load(tmp_path / "a.npz")
    assert ds.ids == ["7", "8", "9", "10"] and ds.take([1, 3]).tolist() == [[3, 4, 5], [9, 10, 11]]
    (tmp_path / "b.csv").write_text("f1,f2,label,key\n1,2.5,cat,a\n3,4,dog,b\n")
    ds = data.load(tmp_path / "b.csv", inputs="f1,f2", label="label", id_field="key")
    assert ds.take([0, 1]) == [{"f1": 1, "f2": 2.5}, {"f1": 3, "f2": 4}]
    assert ds.labels.tolist() == ["cat", "dog"] and ds.ids == ["a", "b"]
    (tmp_path / "img.png").write_bytes(b"x")
    (tmp_path / "c.jsonl").write_text(json.dumps({"x": "img.png", "y": 1}) + "\n" + json.dumps({"x": {"t": "hi"}, "y": 0}) + "\n")
    ds = data.load(tmp_path / "c.jsonl")
    assert ds.take([0, 1]) == [str(tmp_path / "img.png"), {"t": "hi"}]  # file paths are relative to the dataset
    for text, message in (("", "is empty"), ('{"x": 1}\n', r"field\(s\) y missing"), ("nope\n", "not valid JSON")):
        (tmp_path / "d.jsonl").write_text(text)
        with pytest.raises(UserError, match=message):
            data.load(tmp_path / "d.jsonl")
    with pytest.raises(UserError, match="array 'y' missing"):
        np.savez(tmp_path / "e.npz", x=np.zeros((2, 2)))
        data.load(tmp_path / "e.npz")
    assert data.label_key(3) == data.label_key(3.0) == data.label_key("3") == data.label_key(np.int64(3)) == "3"


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 4, 500))
    summary = metrics.classification_summary([str(v) for v in y], [str(v) for v in p])
    assert summary["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert summary["per_class"]["2"]["f1"] == pytest.approx(f1_score(y, p, average=None)[2])
    assert np.trace(np.array(summary["confusion"]["matrix"])) == int(np.sum(y == p))
    yb, s = rng.integers(0, 2, 300), rng.random(300)
    s = np.where(yb == 1, s + 0.3, s)
    assert metrics.auc(yb, s) == pytest.approx(roc_auc_score(yb, s))


def _plans(gates, sequential=True, available=10000, cap=10000):
    full = [{"kind": "absolute", "min": None, "max": None, "margin": 0.02, "alpha": 0.05, "beta": 0.1, "class": None, **g}
            for g in gates]
    return plan_gates(full, sequential=sequential, available=available, cap=cap,
                      prevalence={str(i): 0.1 for i in range(10)}, where="t")


def test_gate_plans_split_beta_and_refuse_impossible_requests():
    plans = _plans([{"metric": "accuracy", "min": 0.9}, {"metric": "recall", "min": 0.8, "class": 3, "margin": 0.1}])
    assert [p["beta"] for p in plans] == [0.05, 0.05]  # beta / k per gate
    assert plans[1]["fixed_n"] > 9 * plans[1]["critical"] / 1.0 > 0  # trials of one class scaled by its share
    with pytest.raises(UserError, match=r"needs n = \d+ samples .* dataset has 500"):
        _plans([{"metric": "accuracy", "min": 0.9}], sequential=False, available=500, cap=500)
    with pytest.raises(UserError, match=r"cannot deliver its beta within the dataset's 500 samples"):
        _plans([{"metric": "accuracy", "min": 0.9}], available=500, cap=500)
    with pytest.raises(UserError, match="does not occur"):
        _plans([{"metric": "recall", "min": 0.5, "class": "cat"}])
    with pytest.raises(UserError, match="outside"):
        _plans([{"metric": "accuracy", "min": 0.0}])


def test_evaluator_decides_on_the_prefix_and_applies_the_error_policy():
    plans = _plans([{"metric": "accuracy", "min": 0.8, "margin": 0.05}])
    ev = Evaluator(plans, "classification", "fail", drawn=2000)
    labels = ["1"] * 50
    verdict = None
    for _ in range(40):
        verdict = ev.feed(labels, ["1"] * 50, [None] * 50, [0.1] * 50)
        if verdict:
            break
    assert verdict == "PASS" and ev.stopped_at < 2000
    rec = ev.gate_records()[0]
    assert rec["samples_used"] == ev.stopped_at and rec["estimate"] == 1.0
    # one prediction error under the default policy fails the run at once
    ev = Evaluator(plans, "classification", "fail", drawn=2000)
    errs = [None] * 49 + ["ValueError: x"]
    assert ev.feed(labels, ["1"] * 49 + [None], errs, [0.1] * 50) == "FAIL"
    # count_wrong scores it as a miss, exclude drops it
    for policy, trials, ok in (("count_wrong", 50, 49), ("exclude", 49, 49)):
        ev = Evaluator(plans, "classification", policy, drawn=50)
        ev.feed(labels, ["1"] * 49 + [None], errs, [0.1] * 50)
        rec = ev.gate_records()[0]
        assert (rec["successes"], rec["trials"]) == (ok, trials)


class _Report(SimpleNamespace):
    pass


def test_controller_feeds_batches_in_predrawn_order_whatever_the_completion_order():
    seen: list[int] = []
    ctl = Controller(lambda b, r: seen.append(b) or b == 3, n_batches=6)

    def report(b: int) -> _Report:
        return _Report(nodeid=f"{BATCH_FILE}::test_batch[batch{b:05d}]", when="call", failed=False, passed=True,
                       user_properties=[(PROPERTY, json.dumps({"batch": b, "pred": [], "lat": [], "err": []}))])

    for b in (2, 1, 0, 5, 3, 4):
        ctl.pytest_runtest_logreport(report(b))
    assert seen == [0, 1, 2, 3]  # 5 arrived early but the verdict came at 3; 4 and 5 are never evaluated
    assert ctl.stopped == "verdict reached"


def test_bootstrap_gates_for_auc_and_regression_metrics():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 600)
    scores = np.clip(0.5 * y + rng.normal(0.25, 0.2, 600), 0, 1)
    full = {"kind": "absolute", "max": None, "alpha": 0.05, "beta": 0.1, "class": None}
    plans = plan_gates([{**full, "metric": "auc", "min": 0.8, "margin": 0.1}], sequential=True, available=600,
                       cap=600, prevalence={"0": 0.5, "1": 0.5}, where="t", output=Output("scores", 0.5, ("0", "1")))
    ev = Evaluator(plans, Output("scores", 0.5, ("0", "1")), "fail", drawn=600, seed=1)
    for lo in range(0, 600, 100):
        ev.feed(y[lo:lo + 100].tolist(), scores[lo:lo + 100].tolist(), [None] * 100, [0.1] * 100)
    rec = ev.gate_records()[0]
    assert rec["method"] == "bootstrap-bca" and rec["verdict"] == "PASS"
    assert rec["estimate"] == pytest.approx(roc_auc_score(y[:rec["samples_used"]], scores[:rec["samples_used"]]))
    assert rec["interval"][0] >= 0.8 and rec["interval"][0] < rec["estimate"] < rec["interval"][1]
    # regression: MAE gate with max; a bad model fails
    target = rng.normal(size=400)
    for noise, verdict in ((0.1, "PASS"), (1.0, "FAIL")):
        pred = target + rng.normal(0, noise, 400)
        plans = plan_gates([{**full, "metric": "mae", "min": None, "max": 0.2, "margin": 0.02}], sequential=False,
                           available=400, cap=400, prevalence={}, where="t")
        ev = Evaluator(plans, "regression", "fail", drawn=400, seed=1)
        ev.feed(target.tolist(), pred.tolist(), [None] * 400, [0.1] * 400)
        assert ev.gate_records()[0]["verdict"] == verdict


def test_labels_the_model_never_emits_are_reported():
    from mlci.accuracy.results import compute_metrics

    m = compute_metrics("classification", "fail", ["1", "2", "3", "3"], ["1", "1", "3", "3"], [None] * 4, [0.1] * 4)
    assert m["labels_never_predicted"] == ["2"] and m["accuracy"] == 0.75
