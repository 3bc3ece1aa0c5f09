"""Grouped samples end to end (`artifacts.data.<name>.group`): the real CLI, pytest-xdist workers, the real S3
server, on digits (predict returns labels) and churn (predict returns probabilities).

The grouped test sets are augmented copies: each original sample copied with a little input noise, the copies
sharing the original's group id. The model is right or wrong on nearly all copies of an original together, so
counting copies as independent samples overstates the evidence; a grouped suite must judge on originals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.python.conftest import run_mlci

from .cases import configure, record, run_suite
from .test_endpoint import served  # noqa: F401 - the digits service's real HTTP server (fixture)


def augmented(src: Path, dst: Path, originals: int, copies: int, noise: float, seed: int = 0) -> Path:
    """`copies` noisy copies of each of the first `originals` samples, copies of one original next to each
    other in the file; `doc` = the original's id, `id` unique per copy."""
    rng = np.random.default_rng(seed)
    with np.load(src) as z:
        x, y = z["x"][:originals].astype(float), z["y"][:originals]
    scale = x.std(axis=0) + 1e-9
    xs = np.repeat(x, copies, axis=0)
    xs = xs + rng.normal(0, noise, xs.shape) * scale
    np.savez(dst, x=xs.astype(np.float32), y=np.repeat(y, copies),
             id=np.asarray([f"o{i}-{c}" for i in range(originals) for c in range(copies)]),
             doc=np.repeat(np.asarray([f"o{i}" for i in range(originals)]), copies))
    return dst


def set_dataset(root: Path, name: str, entry: dict[str, Any], remote: str | None = None) -> None:
    cfg = yaml.safe_load((root / "ml-ci.yaml").read_text())
    cfg["artifacts"]["data"][name] = entry
    if remote:
        cfg["artifacts"]["remote"] = remote
    (root / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_digits_copies_pass_counted_as_samples_but_not_as_groups_from_s3(service, digits, tmp_path, s3_bucket):
    """150 digits x 20 noisy copies: counted as 3,000 independent samples the good model (~0.93) PASSes
    accuracy >= 0.88 at once; judged on its 150 originals it cannot (the cluster betting test needs more groups),
    with the dataset pulled from S3 and the group count in the record and the summary."""
    augmented(service / "data" / "digits-test.npz", service / "data" / "aug.npz", 150, 20, 0.05)
    suites = {"copies": {"max_samples": 3000, "seed": 11, "gates": [{"metric": "accuracy", "min": 0.88,
                                                                     "margin": 0.04}]}}
    configure(service, suites)
    set_dataset(service, "digits-test", {"uri": "data/aug.npz", "inputs": "x", "label": "y", "id": "id"})
    naive = run_suite(service, "copies", digits["good"], tmp_path / "naive", "-n", "0")
    assert naive.returncode == 0, naive.stdout[-2000:] + naive.stderr[-2000:]
    assert record(tmp_path / "naive", "copies")["verdict"] == "PASS"
    assert "groups" not in record(tmp_path / "naive", "copies")["sample"]

    set_dataset(service, "digits-test", {"uri": "data/aug.npz", "inputs": "x", "label": "y", "id": "id",
                                         "group": "doc"}, remote=f"s3://{s3_bucket}/data")
    added = run_mlci("data", "add", "digits-test", "data/aug.npz", "--json", cwd=service,
                     env={"MLCI_CACHE": str(tmp_path / "c1")})
    assert added.returncode == 0, added.stderr
    entry = yaml.safe_load((service / "ml-ci.yaml").read_text())["artifacts"]["data"]["digits-test"]
    assert entry["uri"].startswith("s3://") and entry["group"] == "doc"
    (service / "data" / "aug.npz").unlink()  # from now on only S3 has it
    grouped = run_suite(service, "copies", digits["good"], tmp_path / "grouped", "-n", "2")
    assert grouped.returncode == 3, grouped.stdout[-2000:] + grouped.stderr[-2000:]
    rec = record(tmp_path / "grouped", "copies")
    gate = rec["gates"][0]
    assert rec["verdict"] == "INCONCLUSIVE" and gate["method"] == "cluster-betting"
    assert gate["groups"] == 150 and gate["validity"] == "anytime-valid (group level)"
    assert gate["interval"][0] < 0.88 < gate["estimate"]  # the per-sample estimate is good; the evidence is thin
    groups = rec["sample"]["groups"]
    assert {k: groups[k] for k in ("field", "drawn", "used", "samples", "available", "largest")} == {
        "field": "doc", "drawn": 150, "used": 150, "samples": 3000, "available": 150, "largest": 20}
    assert groups["design_effect"] > 5  # copies are nearly always right or wrong together
    # whole groups in sample order: each original's 20 copies one after the other
    docs = rec["outcomes"]["groups"]
    assert len(docs) == 3000 and all(len(set(docs[i:i + 20])) == 1 for i in range(0, 3000, 20))
    assert "150 groups (3000 samples, group field 'doc')" in grouped.stdout
    assert "judged on 150 of 150 drawn groups by 'doc'" in grouped.stdout
    shown = run_mlci("report", "render", "--results", str(tmp_path / "grouped"), "--no-history", cwd=service)
    assert shown.returncode == 0, shown.stderr
    page = (tmp_path / "grouped" / "report" / "report.html").read_text()
    md = (tmp_path / "grouped" / "report" / "report.md").read_text()
    assert "3,000 samples used of 3,000 drawn · 150 groups by doc of 150 drawn (design effect" in page
    assert "150 groups by doc of 150 drawn" in md and r"anytime-valid \(group level\)" in md
    assert "no verdict within the 3000 drawn samples" in rec["reason"]


def test_churn_probabilities_grouped_shards_merge_to_the_unsharded_verdict(churn, churn_files, tmp_path):
    """400 customers x 5 rows of the churn test set (probabilities): the accuracy gate by the cluster betting
    test, the AUC gate by the cluster bootstrap (fixed look); two shards split by customer merge to exactly the
    unsharded record."""
    augmented(churn / "data" / "churn-test.npz", churn / "data" / "rows.npz", 400, 5, 0.02, seed=1)
    gates = [{"metric": "accuracy", "min": 0.85, "margin": 0.05}, {"metric": "auc", "min": 0.85, "margin": 0.05}]
    configure(churn, {"rows": {"seed": 5, "gates": gates}})
    set_dataset(churn, "churn-test", {"uri": "data/rows.npz", "inputs": "x", "label": "y", "id": "id",
                                      "group": "doc"})
    whole = run_suite(churn, "rows", churn_files["good"], tmp_path / "whole", "-n", "0")
    assert whole.returncode == 0, whole.stdout[-2000:] + whole.stderr[-2000:]
    for k in (1, 2):
        part = run_suite(churn, "rows", churn_files["good"], tmp_path / f"s{k}", "--shard", f"{k}/2", "-n", "0")
        assert part.returncode == 0, part.stdout[-2000:] + part.stderr[-2000:]
        docs = record(tmp_path / f"s{k}", "rows")["outcomes"]["groups"]
        assert len(set(docs)) == 200 and len(docs) == 1000
    one, two = (set(record(tmp_path / f"s{k}", "rows")["outcomes"]["groups"]) for k in (1, 2))
    assert one.isdisjoint(two)  # no customer split across shards
    merged = run_mlci("accuracy", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    a, b = record(tmp_path / "whole", "rows"), record(tmp_path / "m", "rows")
    assert a["verdict"] == b["verdict"] == "PASS"
    assert [g["method"] for g in a["gates"]] == ["cluster-betting", "cluster-bootstrap"]
    assert a["gates"][1]["validity"].startswith("approximate, fixed look") and a["gates"][1]["groups"] == 400
    for ga, gb in zip(a["gates"], b["gates"], strict=True):
        assert ga == gb
    assert a["sample"]["groups"] == b["sample"]["groups"] and a["sample"]["groups"]["drawn"] == 400
    for key in ("positions", "ids", "labels", "predictions", "groups"):
        assert a["outcomes"][key] == b["outcomes"][key]


def test_a_missing_or_malformed_group_field_exits_2_naming_the_key(service, digits, tmp_path):
    configure(service, {"s": {"gates": [{"metric": "accuracy", "min": 0.8, "margin": 0.05}]}})
    set_dataset(service, "digits-test", {"uri": "data/digits-test.npz", "inputs": "x", "label": "y",
                                         "group": "patient"})
    proc = run_suite(service, "s", digits["good"], tmp_path / "o")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "artifacts.data.digits-test.group: group field 'patient' missing from dataset digits-test.npz" \
        in proc.stderr
    assert "present: " in proc.stderr and "y" in proc.stderr.split("present: ")[1]
    assert "Traceback" not in proc.stderr
    set_dataset(service, "digits-test", {"uri": "data/digits-test.npz", "inputs": "x", "label": "y", "group": [1]})
    proc = run_suite(service, "s", digits["good"], tmp_path / "o2")
    assert proc.returncode == 2 and "artifacts.data.digits-test.group" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o2" / "accuracy").exists()
    # slices of a grouped dataset are not built: refused before anything runs, not judged per sample
    augmented(service / "data" / "digits-test.npz", service / "data" / "aug.npz", 100, 10, 0.05, seed=2)
    configure(service, {"s": {"slices": {"field": "y"}, "gates": [{"metric": "accuracy", "min": 0.8, "margin": 0.05}]}})
    set_dataset(service, "digits-test", {"uri": "data/aug.npz", "inputs": "x", "label": "y", "id": "id",
                                         "group": "doc"})
    proc = run_suite(service, "s", digits["good"], tmp_path / "o3", "-n", "0")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "accuracy.suites.s.slices: slices of a grouped dataset are not supported" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o3" / "accuracy").exists()


def test_digits_change_gate_pairs_candidate_and_baseline_by_group(service, digits, tmp_path):
    """A change gate on 100 originals x 10 copies: candidate and baseline (`--baseline-models`) are compared by
    a paired bootstrap over whole groups, at one look; a better candidate PASSes, a worse one FAILs."""
    augmented(service / "data" / "digits-test.npz", service / "data" / "aug.npz", 100, 10, 0.05, seed=2)
    configure(service, {"cmp": {"max_samples": 1000, "seed": 3, "gates": [
        {"metric": "accuracy", "kind": "change", "margin": 0.05}]}})
    set_dataset(service, "digits-test", {"uri": "data/aug.npz", "inputs": "x", "label": "y", "id": "id",
                                         "group": "doc"})
    better = run_suite(service, "cmp", digits["good"], tmp_path / "a", "-n", "0", "--baseline-models",
                       str(digits["bad"]))
    assert better.returncode == 0, better.stdout[-2000:] + better.stderr[-2000:]
    gate = record(tmp_path / "a", "cmp")["gates"][0]
    assert gate["method"] == "cluster-paired-bootstrap" and gate["groups"] == 100 and gate["estimate"] > 0
    assert gate["validity"] == "approximate, fixed look (paired cluster bootstrap)"
    assert gate["candidate_value"] > gate["baseline_value"] and gate["samples_used"] == 1000
    worse = run_suite(service, "cmp", digits["bad"], tmp_path / "b", "-n", "0", "--baseline-models",
                      str(digits["good"]))
    assert worse.returncode == 1, worse.stdout[-2000:] + worse.stderr[-2000:]
    assert record(tmp_path / "b", "cmp")["gates"][0]["estimate"] < -0.05


def test_grouped_suite_through_the_http_endpoint_equals_the_callable_run(service, digits, served, tmp_path):  # noqa: F811
    """Endpoint mode (the served HTTP API, as node-risk is tested) draws and judges the same groups."""
    from mlci.accuracy import endpoint

    from .test_endpoint import BATCH

    url, _ = served
    augmented(service / "data" / "digits-test.npz", service / "data" / "aug.npz", 80, 10, 0.05, seed=4)
    suites = {"g": {"max_samples": 800, "seed": 2, "gates": [{"metric": "accuracy", "min": 0.7, "margin": 0.1}]}}
    configure(service, suites)
    set_dataset(service, "digits-test", {"uri": "data/aug.npz", "inputs": "x", "label": "y", "id": "id",
                                         "group": "doc"})
    local = run_suite(service, "g", digits["good"], tmp_path / "c", "-n", "0")
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    configure(service, suites, endpoint=BATCH)
    set_dataset(service, "digits-test", {"uri": "data/aug.npz", "inputs": "x", "label": "y", "id": "id",
                                         "group": "doc"})
    remote = run_suite(service, "g", digits["good"], tmp_path / "e", "-n", "0", env={endpoint.URL_ENV: url})
    assert remote.returncode == 0, remote.stdout[-2000:] + remote.stderr[-2000:]
    c, e = record(tmp_path / "c", "g"), record(tmp_path / "e", "g")
    assert c["verdict"] == e["verdict"] == "PASS" and "endpoint" in e["plan"]["settings"]
    assert e["sample"]["groups"] == c["sample"]["groups"] and e["outcomes"]["groups"] == c["outcomes"]["groups"]
    assert [(g["method"], g["groups"], g["estimate"], g["interval"]) for g in e["gates"]] == \
        [(g["method"], g["groups"], g["estimate"], g["interval"]) for g in c["gates"]]
