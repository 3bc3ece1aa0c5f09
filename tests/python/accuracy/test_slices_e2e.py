"""Slices end to end: the real CLI and engine on the digits (labels) and churn (probabilities) services.

A model that is wrong on one slice only -- the darkest quarter of the digits, one region of the churn customers --
passes its gates on the average and FAILs the same gates per slice, naming the slice; a change gate per slice flags
the regression a paired average hides; shards merged decide as the unsharded run; a slice smaller than
`min_samples` leaves the suite INCONCLUSIVE.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.python.conftest import run_mlci

DARK = 341  # the digits test set's upper ink quartile (sum of the 64 pixels)
SKEW_DIGITS = '''"""The digits model, with predictions flipped on some images (mode from skew.json next to the model):
dark: a quarter of the darkest images (ink >= 341); uniform: one image in 16 anywhere; none: as the model."""
import json
import os
from pathlib import Path

import numpy as np
from digits_service import inference


def _mode():
    f = Path(os.environ.get("MLCI_MODELS_DIR", "models")) / "skew.json"
    return json.loads(f.read_text())["mode"] if f.exists() else "dark"


def predict(x, model=None):
    x = np.asarray(x, dtype=float)
    p = np.asarray(inference.predict(x, model))
    ink = x.sum(axis=1)
    h = np.round(ink).astype(int)
    mode = _mode()
    bad = {"dark": (ink >= 341) & (h % 4 == 0), "uniform": h % 16 == 0, "none": np.zeros(len(p), bool)}[mode]
    return np.where(bad, (p + 1) % 10, p).tolist()
'''


def digits_service(service: Path, digits: dict[str, Path]) -> None:
    """The test set with two slice fields (`ink`: a number for bins; `shade`: a word), and the skewed predict."""
    with np.load(digits["data"]) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["ink"] = arrays["x"].sum(axis=1)
    arrays["shade"] = np.where(arrays["ink"] >= DARK, "dark", "light")
    np.savez(service / "data" / "digits-test.npz", **arrays)
    (service / "skew.py").write_text(SKEW_DIGITS)


def write_config(root: Path, service: str, suites: dict[str, Any], **accuracy: Any) -> None:
    cfg = {"service": service,
           "artifacts": {"data": {"test": {"uri": f"data/{service}-test.npz", "inputs": "x", "label": "y"}}},
           "accuracy": {**accuracy, "suites": suites}}
    (root / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def run(root: Path, suite: str, out: Path, models: Path, *args: str) -> Any:
    return run_mlci("accuracy", "run", "--suite", suite, "--out", str(out), *args, cwd=root,
                    env={"MLCI_CACHE": str(root.parent / "cache"), "MLCI_MODELS_DIR": str(models)}, timeout=300)


def record(out: Path, suite: str) -> dict[str, Any]:
    return json.loads((out / "accuracy" / suite / "accuracy.json").read_text())



def skewed_models(tmp_path: Path, model: Path, modes: tuple[str, ...]) -> dict[str, Path]:
    """A models directory per skew mode: the model file and a skew.json naming the mode (read by skew.py)."""
    dirs = {}
    for mode in modes:
        d = tmp_path / mode
        d.mkdir()
        (d / model.name).write_bytes(model.read_bytes())
        (d / "skew.json").write_text(json.dumps({"mode": mode}))
        dirs[mode] = d
    return dirs

INK = {"field": "ink", "bins": [292, 316, DARK], "labels": ["light", "mid-light", "mid-dark", "dark"]}
DIGITS = {"load": "digits_service.inference:load", "predict": "skew:predict", "batch_size": 50}


def test_average_passes_but_the_dark_slice_fails_and_is_named(service, digits, tmp_path):
    digits_service(service, digits)
    gate = [{"metric": "accuracy", "min": 0.80, "margin": 0.06}]
    write_config(service, "digits", {"avg": {"dataset": "test", "gates": gate},
                                     "sliced": {"dataset": "test", "gates": gate, "slices": INK}}, **DIGITS)
    avg = run(service, "avg", tmp_path / "a", digits["good"], "-n", "0")
    assert avg.returncode == 0, avg.stdout + avg.stderr
    assert record(tmp_path / "a", "avg")["gates"][0]["estimate"] > 0.86  # the average clears min + margin

    proc = run(service, "sliced", tmp_path / "s", digits["good"], "-n", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = record(tmp_path / "s", "sliced")
    assert rec["verdict"] == "FAIL" and "'dark'" in rec["reason"] and "light" not in rec["reason"]
    table = rec["slices"]
    assert [r["name"] for r in table][0] == "dark" and len(table) == 4  # worst first
    by = {r["name"]: r for r in table}
    assert by["dark"]["verdict"] == "FAIL" and by["dark"]["estimate"] < 0.80
    assert by["dark"]["bound"] is not None and by["dark"]["pvalue_fail"] <= 0.10
    for name in ("light", "mid-light", "mid-dark"):
        assert by[name]["verdict"] == "PASS" and by[name]["estimate"] > 0.86 and by[name]["bound"] >= 0.80
        assert by[name]["pvalue_pass"] <= 0.05 and by[name]["decided_by"] == "holm"
    # a slice PASSes on at least min_samples (default 100) samples, even when its test decided earlier
    assert all(r["n"] >= 100 for r in table if r["verdict"] == "PASS")
    # every slice got its quota share of the prefix the run used (interleaved order)
    assert max(r["n"] for r in table) - min(r["n"] for r in table) <= 0.25 * max(r["n"] for r in table) + 60
    assert sum(r["n"] for r in table) <= rec["sample"]["used"]
    # the per-slice levels are the Bonferroni shares; the record carries each sample's slice
    # (a slice Holm passed beyond its share shows the level of its Holm step, and the bound at that level)
    assert all(g["slice"] in by for g in rec["gates"])
    assert all(g["alpha"] == pytest.approx(0.05 / 4) or g["alpha"] == g["holm_level"] <= 0.05 for g in rec["gates"])
    codes = rec["outcomes"]["slice"]
    assert len(codes) == rec["sample"]["used"] and set(codes) <= {0, 1, 2, 3}
    junit = ET.parse(tmp_path / "s" / "accuracy" / "sliced" / "junit-accuracy.xml").getroot()
    failed = [tc.get("name") for tc in junit.findall("testcase") if tc.find("failure") is not None]
    assert failed == ["[slice dark] accuracy absolute >= 0.8"]
    assert "slices (worst first): dark FAIL" in proc.stdout


def test_without_the_skew_every_digits_slice_passes(service, digits, tmp_path):
    digits_service(service, digits)
    gate = [{"metric": "accuracy", "min": 0.80, "margin": 0.06}]
    write_config(service, "digits", {"sliced": {"dataset": "test", "gates": gate, "slices": INK}}, **DIGITS)
    good = tmp_path / "models"
    good.mkdir()
    (good / "digits.npz").write_bytes((digits["good"] / "digits.npz").read_bytes())
    (good / "skew.json").write_text('{"mode": "none"}')
    ok = run(service, "sliced", tmp_path / "ok", good, "-n", "0")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert {r["verdict"] for r in record(tmp_path / "ok", "sliced")["slices"]} == {"PASS"}


def test_sliced_shards_merge_to_the_unsharded_verdict(service, digits, tmp_path):
    digits_service(service, digits)
    gates = [{"metric": "accuracy", "min": 0.80, "margin": 0.06}, {"metric": "macro_f1", "min": 0.70, "margin": 0.1}]
    write_config(service, "digits", {"s": {"dataset": "test", "gates": gates, "max_samples": 4000,
                                           "slices": {"field": "shade"}}}, **DIGITS)
    whole = run(service, "s", tmp_path / "w", digits["good"], "--seed", "7", "-n", "0")
    assert whole.returncode == 1, whole.stdout + whole.stderr
    for k in (1, 2):
        part = run(service, "s", tmp_path / f"p{k}", digits["good"], "--seed", "7", "--shard", f"{k}/2", "-n", "0")
        assert part.returncode == 0, part.stdout + part.stderr
    merged = run_mlci("accuracy", "merge", str(tmp_path / "p1"), str(tmp_path / "p2"), "--out", str(tmp_path / "m"))
    assert merged.returncode == 1, merged.stdout + merged.stderr
    a, b = record(tmp_path / "w", "s"), record(tmp_path / "m", "s")
    assert a["verdict"] == b["verdict"] == "FAIL" and a["reason"] == b["reason"] and "'dark'" in a["reason"]
    assert a["slices"] == b["slices"] and a["gates"] == b["gates"]
    assert a["sample"]["used"] == b["sample"]["used"] and a["outcomes"]["slice"] == b["outcomes"]["slice"]
    # a word field: two slices, max_samples split equally where the slices have the samples
    sp = a["plan"]["slices"]
    assert sp["names"] == ["dark", "light"] and sp["quotas"][0] == sp["sizes"][0] < 2000  # all the dark it has
    assert sum(sp["quotas"]) == 4000 == a["sample"]["drawn"]  # the rest water-filled into the light slice
    methods = {g["method"] for g in a["gates"]}
    assert methods == {"sprt", "bootstrap-bca"}  # Holm's Ville SPRT; BCa at its Bonferroni share


def test_a_change_gate_per_slice_flags_a_regression_the_average_hides(service, digits, tmp_path):
    """Baseline: one image in 16 flipped anywhere; candidate: a quarter of the dark quarter flipped -- the same
    accuracy on average (paired McNemar passes), 15 points worse on the dark slice (FAIL, named)."""
    digits_service(service, digits)
    dirs = skewed_models(tmp_path, digits["good"] / "digits.npz", ("uniform", "dark"))
    gate = [{"metric": "accuracy", "kind": "change", "margin": 0.05, "discordance": 0.15}]
    write_config(service, "digits", {"avg": {"dataset": "test", "gates": gate},
                                     "sliced": {"dataset": "test", "gates": gate, "slices": INK}}, **DIGITS)
    avg = run(service, "avg", tmp_path / "a", dirs["dark"], "--baseline-models", str(dirs["uniform"]), "-n", "0")
    assert avg.returncode == 0, avg.stdout + avg.stderr
    g = record(tmp_path / "a", "avg")["gates"][0]
    assert g["verdict"] == "PASS" and abs(g["estimate"]) < 0.05  # the average sees no regression

    proc = run(service, "sliced", tmp_path / "s", dirs["dark"], "--baseline-models", str(dirs["uniform"]), "-n", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = record(tmp_path / "s", "sliced")
    assert rec["verdict"] == "FAIL" and "'dark'" in rec["reason"]
    top = rec["slices"][0]
    assert top["name"] == "dark" and top["verdict"] == "FAIL" and top["estimate"] < -0.05
    assert {r["name"] for r in rec["slices"] if r["verdict"] == "FAIL"} == {"dark"}
    assert all(g["method"] == "mcnemar-sprt" for g in rec["gates"])


SKEW_CHURN = '''"""The churn model, its two class probabilities swapped for some customers (mode from skew.json next to
the model): east (default): a quarter of the `east` customers; uniform: one customer in 16 anywhere."""
import json
import os
from pathlib import Path

import numpy as np
from churn_service import inference


def _mode():
    f = Path(os.environ.get("MLCI_MODELS_DIR", "models")) / "skew.json"
    return json.loads(f.read_text())["mode"] if f.exists() else "east"


def predict(x, model=None):
    x = np.asarray(x, dtype=np.float32)
    p = np.asarray(inference.predict(x, model))
    h = np.floor(np.abs(x[:, 1]) * 1000).astype(int)
    bad = h % 16 == 0 if _mode() == "uniform" else (x[:, 0] >= {q3}) & (h % 4 == 0)
    p[bad] = p[bad][:, ::-1]
    return p.tolist()
'''


def churn_service(root: Path, churn_files: dict[str, Path], islands: int = 0) -> None:
    """The test set with a `region` word per customer (quartiles of the first feature; `islands`: that many
    customers of a tiny region), and the skewed predict."""
    with np.load(churn_files["data"]) as z:
        arrays = {k: z[k].copy() for k in z.files}
    x0 = arrays["x"][:, 0]
    q = np.quantile(x0, [0.25, 0.5, 0.75])
    region = np.array(["south", "west", "north", "east"], dtype="<U8")[np.searchsorted(q, x0, side="right")]
    region[:islands] = "islands"
    arrays["region"] = region
    np.savez(root / "data" / "churn-test.npz", **arrays)
    (root / "skew.py").write_text(SKEW_CHURN.replace("{q3}", repr(float(q[2]))))


CHURN = {"load": "churn_service.inference:load", "output": "probabilities", "classes": [0, 1],
         "labels": {0: "stays", 1: "churns"}, "batch_size": 100}
CHURN_GATES = [{"metric": "accuracy", "min": 0.85, "margin": 0.06}, {"metric": "auc", "min": 0.85, "margin": 0.05}]


def test_churn_probabilities_per_region(churn, churn_files, tmp_path):
    churn_service(churn, churn_files)
    suites = {"avg": {"dataset": "test", "gates": CHURN_GATES, "max_samples": 4000},
              "sliced": {"dataset": "test", "gates": CHURN_GATES, "max_samples": 4000, "slices": {"field": "region"}},
              "good": {"dataset": "test", "gates": CHURN_GATES, "max_samples": 4000, "predict":
                       "churn_service.inference:predict", "slices": {"field": "region", "allocation": "proportional"}}}
    write_config(churn, "churn", suites, predict="skew:predict", **CHURN)
    avg = run(churn, "avg", tmp_path / "a", churn_files["good"], "-n", "0")
    assert avg.returncode == 0, avg.stdout + avg.stderr
    proc = run(churn, "sliced", tmp_path / "s", churn_files["good"], "-n", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = record(tmp_path / "s", "sliced")
    assert rec["verdict"] == "FAIL" and "'east'" in rec["reason"]
    assert rec["slices"][0]["name"] == "east" and rec["slices"][0]["verdict"] == "FAIL"
    assert [r["verdict"] for r in rec["slices"][1:]] == ["PASS"] * 3
    good = run(churn, "good", tmp_path / "g", churn_files["good"], "-n", "0")
    assert good.returncode == 0, good.stdout + good.stderr
    g = record(tmp_path / "g", "good")
    assert {r["verdict"] for r in g["slices"]} == {"PASS"} and g["plan"]["slices"]["allocation"] == "proportional"
    # the auc gates run at their Bonferroni share; accuracy by Holm over the Ville SPRTs
    assert {r["decided_by"] for r in g["slices"]} <= {"holm", "bonferroni"}
    auc = [x for x in g["gates"] if x["metric"] == "auc"]
    assert len(auc) == 4 and all(x["method"] == "bootstrap-bca" and x["verdict"] == "PASS" for x in auc)


def test_a_change_gate_per_region_flags_the_regression_the_churn_average_hides(churn, churn_files, tmp_path):
    """Baseline: one customer in 16 swapped anywhere; candidate: a quarter of the east swapped -- about the same
    accuracy on average (the paired McNemar passes), far worse in the east (FAIL, named): churn's probabilities."""
    churn_service(churn, churn_files)
    dirs = skewed_models(tmp_path, churn_files["good"] / "churn.joblib", ("uniform", "east"))
    gate = [{"metric": "accuracy", "kind": "change", "margin": 0.05, "discordance": 0.15}]
    write_config(churn, "churn", {"avg": {"dataset": "test", "gates": gate, "max_samples": 8000},
                                  "sliced": {"dataset": "test", "gates": gate, "max_samples": 8000,
                                             "slices": {"field": "region"}}}, predict="skew:predict", **CHURN)
    base = ("--baseline-models", str(dirs["uniform"]), "-n", "0")
    avg = run(churn, "avg", tmp_path / "a", dirs["east"], *base)
    assert avg.returncode == 0, avg.stdout + avg.stderr
    g = record(tmp_path / "a", "avg")["gates"][0]
    assert g["verdict"] == "PASS" and abs(g["estimate"]) < 0.05  # the average sees no regression
    proc = run(churn, "sliced", tmp_path / "s", dirs["east"], *base)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = record(tmp_path / "s", "sliced")
    assert rec["verdict"] == "FAIL" and "'east'" in rec["reason"]
    top = rec["slices"][0]
    assert top["name"] == "east" and top["verdict"] == "FAIL" and top["estimate"] < -0.05
    assert {r["name"] for r in rec["slices"] if r["verdict"] == "FAIL"} == {"east"}
    assert all(g["method"] == "mcnemar-sprt" for g in rec["gates"])


def test_a_slice_below_min_samples_is_inconclusive_never_passed(churn, churn_files, tmp_path):
    churn_service(churn, churn_files, islands=40)
    write_config(churn, "churn", {"s": {"dataset": "test", "gates": CHURN_GATES[:1], "max_samples": 4000,
                                        "slices": {"field": "region", "min_samples": 100}}},
                 predict="churn_service.inference:predict", **CHURN)
    proc = run(churn, "s", tmp_path / "s", churn_files["good"], "-n", "0")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    rec = record(tmp_path / "s", "s")
    assert rec["verdict"] == "INCONCLUSIVE" and "islands" in rec["reason"] and "min_samples" in rec["reason"]
    by = {r["name"]: r for r in rec["slices"]}
    assert by["islands"]["verdict"] == "INCONCLUSIVE" and by["islands"]["n"] == 0 and by["islands"]["size"] == 40
    assert all(by[n]["verdict"] == "PASS" for n in ("south", "west", "north", "east"))
    assert rec["slices"][0]["name"] == "islands"  # INCONCLUSIVE sorts before PASS


@pytest.mark.parametrize(("slices", "key", "text"), [
    ({"field": "ink", "alpha_split": "bonf"}, "slices.alpha_split", "valid: holm, weights"),
    ({"field": "ink", "alpha_split": "weights"}, "slices.weights", "needs a weight per slice"),
    ({"field": "ink", "bins": [300, 200]}, "slices.bins", "not strictly ascending"),
    ({"field": "ink", "bins": [300], "labels": ["a"]}, "slices.labels", "2 labels"),
    ({"field": "nope"}, "slices.field", "cannot read the slice field 'nope'"),
    ({"field": "ink"}, "slices.field", "distinct values"),
    ({"field": "shade", "weights": {"dark": 1, "grey": 2, "light": 1}}, "slices.weights", "'grey'"),
])
def test_bad_slices_config_exits_2_naming_the_key(service, digits, tmp_path, slices, key, text):
    digits_service(service, digits)
    write_config(service, "digits", {"s": {"dataset": "test", "gates": [{"metric": "accuracy", "min": 0.8,
                                                                         "margin": 0.06}], "slices": slices}}, **DIGITS)
    proc = run(service, "s", tmp_path / "o", digits["good"], "-n", "0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert key in proc.stderr and text in proc.stderr and "Traceback" not in proc.stderr


def test_report_shows_the_slice_table_worst_first_with_names_escaped(service, digits, tmp_path):
    digits_service(service, digits)
    hostile = {**INK, "labels": ["<b>light</b>", "mid|light", "mid-dark", "dark *ink*"]}
    write_config(service, "digits", {"s": {"dataset": "test", "slices": hostile,
                                           "gates": [{"metric": "accuracy", "min": 0.80, "margin": 0.06}]}}, **DIGITS)
    proc = run(service, "s", tmp_path / "o", digits["good"], "-n", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rendered = run_mlci("report", "render", "--results", str(tmp_path / "o"), "--no-history", cwd=service)
    assert rendered.returncode == 0, rendered.stderr
    md = (tmp_path / "o" / "report" / "report.md").read_text()
    html = (tmp_path / "o" / "report" / "report.html").read_text()
    table = md.split("Slices, worst first")[1].split("\n\n")[1].splitlines()[2:]
    assert len(table) == 4 and table[0].startswith(r"| dark \*ink\* |") and "FAIL" in table[0]
    assert all("PASS" in row for row in table[1:])
    assert r"mid\|light" in md and "<b>" not in md.replace(r"\<b\>", "")  # Markdown-escaped
    assert "&lt;b&gt;light&lt;/b&gt;" in html and "<b>light</b>" not in html  # HTML-escaped
    section = html.split("Slices, worst first")[1].split("</table>")[0]
    assert section.index("dark *ink*") < section.index("mid-dark")  # worst first in the HTML too


def test_fixed_n_slices_with_user_weights(service, digits, tmp_path):
    """`sequential: false`: each slice's exact binomial test at its own fixed n (alpha and beta split by the user's
    weights); the dark slice still FAILs, and each slice draws only the n its look needs."""
    digits_service(service, digits)
    slices = {"field": "shade", "alpha_split": "weights", "weights": {"dark": 1, "light": 3}}
    write_config(service, "digits", {"s": {"dataset": "test", "sequential": False, "slices": slices,
                                           "gates": [{"metric": "accuracy", "min": 0.80, "margin": 0.06}]}}, **DIGITS)
    proc = run(service, "s", tmp_path / "o", digits["good"], "-n", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = record(tmp_path / "o", "s")
    by = {g["slice"]: g for g in rec["gates"]}
    assert by["dark"]["alpha"] == pytest.approx(0.0125) and by["light"]["alpha"] == pytest.approx(0.0375)
    assert {g["method"] for g in rec["gates"]} == {"binomial-exact"}
    assert by["dark"]["verdict"] == "FAIL" and by["light"]["verdict"] == "PASS"
    assert by["dark"]["samples_used"] == by["dark"]["fixed_n"] > by["light"]["fixed_n"] == by["light"]["samples_used"]
    assert rec["plan"]["slices"]["quotas"] == [by["dark"]["fixed_n"], by["light"]["fixed_n"]]
    assert rec["sample"]["drawn"] == sum(rec["plan"]["slices"]["quotas"])
    assert {r["decided_by"] for r in rec["slices"]} == {"weights"}
