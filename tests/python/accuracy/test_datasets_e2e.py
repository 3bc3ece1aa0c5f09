"""Datasets as teams keep them, end to end: the real CLI, pytest-xdist workers and the real S3 server.

The same digits samples as .npz, as a tabular Parquet table (64 input columns picked by '*' minus a note
column) and as a folder of image files with a labels table must give the same sample, predictions and verdict;
`mlci data add` puts each in S3 and pins it in ml-ci.yaml; a folder in S3 is fetched file by file, only for the
samples the run reaches, each verified. A second folder shape (text files, a JSONL labels table, `read: text`)
runs from a local folder pinned by its manifest digest. The same datasets inside the built image, on the real
Docker engine: tests/python/stages/test_datasets_in_image.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import yaml

from mlci.artifacts import folder
from tests.python.conftest import run_mlci

from .datasets import PGM_PREDICT, image_folder, same_outcomes, subset_npz, tabular_parquet

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
SMOKE = [{"metric": "accuracy", "min": 0.90, "margin": 0.02}]
QUICK = [{"metric": "accuracy", "min": 0.85, "margin": 0.05}]
# The default seed is derived from what is judged (the dataset's digest, the predict code): one file in two formats
# is two datasets. These tests compare formats on the same sample, so the suite pins its seed.
SEED = 20261201


def configure(service: Path, datasets: dict[str, Any], dataset: str, gates: list[dict[str, Any]], *,
              predict: str = "digits_service.inference:predict", load: str | None = "digits_service.inference:load",
              remote: str | None = None, max_samples: int = 4000) -> Path:  # SMOKE needs 3,150 for its beta
    cfg = {"service": "digits", "artifacts": {"data": datasets},
           "accuracy": {"load": load, "predict": predict, "batch_size": 50,
                        "suites": {"smoke": {"dataset": dataset, "max_samples": max_samples, "gates": gates,
                                                   "seed": SEED}}}}
    if load is None:
        del cfg["accuracy"]["load"]
    if remote:
        cfg["artifacts"]["remote"] = remote
    path = service / "ml-ci.yaml"
    path.write_text("# the team's config: comments must survive `mlci data add`\n" + yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(service: Path, out: Path, models: Path, cache: Path, *extra: str):
    env = {"MLCI_CACHE": str(cache), "MLCI_MODELS_DIR": str(models), "GIT_COMMIT": COMMIT}
    return run_mlci("accuracy", "run", "--suite", "smoke", "--out", str(out), "-n", "2", *extra, cwd=service, env=env,
                    timeout=600)


def record(out: Path) -> dict[str, Any]:
    return json.loads((out / "accuracy" / "smoke" / "accuracy.json").read_text())


def test_tabular_parquet_gives_the_npz_verdict_locally_and_from_s3(service, digits, tmp_path, s3_bucket):
    npz = service / "data" / "digits-test.npz"
    tabular_parquet(npz, service / "data" / "digits.parquet")
    table = {"uri": "data/digits.parquet", "inputs": ["*"], "exclude": ["note"], "label": "digit", "id": "sid",
             "batch_as": "array"}
    configure(service, {"digits": {"uri": "data/digits-test.npz"}}, "digits", SMOKE)
    base = run(service, tmp_path / "npz", digits["good"], tmp_path / "c1")
    assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]

    cfg = configure(service, {"table": table}, "table", SMOKE, remote=f"s3://{s3_bucket}/data")
    local = run(service, tmp_path / "local", digits["good"], tmp_path / "c1")
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    rec = record(tmp_path / "local")
    same_outcomes(rec, record(tmp_path / "npz"))
    assert rec["dataset"]["format"] == "parquet" and rec["dataset"]["size"] == 6471
    assert rec["outcomes"]["ids"][:3] == [f"s{int(i):05d}" for i in record(tmp_path / "npz")["outcomes"]["ids"][:3]]

    added = run_mlci("data", "add", "table", "data/digits.parquet", "--json", cwd=service,
                     env={"MLCI_CACHE": str(tmp_path / "c2")})
    assert added.returncode == 0, added.stderr
    row = json.loads(added.stdout)
    text = cfg.read_text()
    assert text.startswith("# the team's config") and f"uri: {row['uri']}" in text
    entry = yaml.safe_load(text)["artifacts"]["data"]["table"]
    assert entry == {**table, "uri": row["uri"], "sha256": row["sha256"], "format": "parquet"}
    (service / "data" / "digits.parquet").unlink()  # from now on only S3 has it
    remote = run(service, tmp_path / "s3", digits["good"], tmp_path / "c3")
    assert remote.returncode == 0, remote.stdout[-2000:] + remote.stderr[-2000:]
    same_outcomes(record(tmp_path / "s3"), rec)
    assert record(tmp_path / "s3")["dataset"]["sha256"] == row["sha256"]
    bad = run(service, tmp_path / "bad", digits["bad"], tmp_path / "c3")
    assert bad.returncode == 1 and record(tmp_path / "bad")["verdict"] == "FAIL", bad.stdout[-2000:]


def test_image_folder_in_s3_is_fetched_lazily_and_verified(service, digits, tmp_path, s3_bucket):
    npz = subset_npz(service / "data" / "digits-test.npz", service / "data" / "first800.npz", 800)
    images = image_folder(npz, tmp_path / "images")
    configure(service, {"digits": {"uri": "data/first800.npz"}}, "digits", QUICK)
    base = run(service, tmp_path / "npz", digits["good"], tmp_path / "c0")
    assert base.returncode == 0, base.stdout[-2000:] + base.stderr[-2000:]

    (service / "pgm_predict.py").write_text(PGM_PREDICT)
    configure(service, {"images": {"uri": "images/", "label": "label", "id": "id"}}, "images", QUICK,
              predict="pgm_predict:predict", load="pgm_predict:load", remote=f"s3://{s3_bucket}/data")
    added = run_mlci("data", "add", "images", str(images), "--json", cwd=service, env={"MLCI_CACHE": str(tmp_path / "c1")})
    assert added.returncode == 0, added.stderr
    row = json.loads(added.stdout)
    assert row["format"] == "folder" and row["files"] == 801 and row["uploaded"] == 802  # + labels.csv, manifest
    assert row["sha256"] == folder.digest(folder.scan(images))

    cache = tmp_path / "fresh-cache"
    proc = run(service, tmp_path / "s3", digits["good"], cache)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rec = record(tmp_path / "s3")
    same_outcomes(rec, record(tmp_path / "npz"))
    assert rec["dataset"]["format"] == "folder" and rec["dataset"]["sha256"] == row["sha256"]
    fetched = [p for p in (cache / "objects" / "sha256").rglob("*") if p.is_file() and p.suffix != ".ok"]
    used = rec["sample"]["used"]
    assert used + 2 <= len(fetched) < 800, (used, len(fetched))  # the sampled files (+ batches in flight), no more

    # an image in S3 replaced by other bytes: a fresh run refuses it by name (the manifest pins every file)
    first = rec["outcomes"]["ids"][0]
    rel = f"{rec['outcomes']['labels'][0]}/img{int(first):05d}.pgm"
    sha = {f.path: f for f in folder.scan(images)}[rel].sha256
    key = f"data/sha256/{sha[:2]}/{sha[2:]}"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=key, Body=b"P5 8 8 255\n" + bytes(64))
    tampered = run(service, tmp_path / "t", digits["good"], tmp_path / "another-cache")
    assert tampered.returncode == 2, tampered.stdout[-2000:] + tampered.stderr[-2000:]
    assert "sha256 mismatch" in tampered.stderr and rel in tampered.stderr and "Traceback" not in tampered.stderr


def text_folder(root: Path, n: int = 400) -> Path:
    """Short reviews as .txt files and a JSONL labels table (pos/neg), 10% of the labels flipped."""
    rng = np.random.default_rng(3)
    good, bad = ["great", "lovely", "superb", "fine"], ["awful", "broken", "dull", "poor"]
    lines = []
    for i in range(n):
        positive = bool(rng.random() < 0.5)
        words = rng.choice(good if positive else bad, 3).tolist() + ["movie", "plot"]
        rel = f"reviews/{i:04d}.txt"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(" ".join(rng.permutation(words).tolist()), encoding="utf-8")
        label = "pos" if positive != (rng.random() < 0.1) else "neg"
        lines.append(json.dumps({"doc": rel, "sentiment": label, "lang": "en"}))
    (root / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return root


KEYWORDS = '''GOOD = {"great", "lovely", "superb", "fine"}


def predict(texts):
    assert all(isinstance(t, str) for t in texts), "read: text gives strings"
    return ["pos" if GOOD & set(t.split()) else "neg" for t in texts]
'''


def test_local_text_folder_pinned_by_its_manifest(service, tmp_path):
    docs = text_folder(service / "data" / "reviews")
    (service / "keywords.py").write_text(KEYWORDS)
    digest = folder.digest(folder.scan(docs))
    entry = {"uri": "data/reviews", "sha256": digest, "files": ["doc"], "read": "text", "label": "sentiment"}
    configure(service, {"reviews": entry}, "reviews", [{"metric": "accuracy", "min": 0.75, "margin": 0.1}],
              predict="keywords:predict", load=None, max_samples=400)
    proc = run(service, tmp_path / "out", tmp_path, tmp_path / "cache")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rec = record(tmp_path / "out")
    assert rec["verdict"] == "PASS" and rec["dataset"]["sha256"] == digest and rec["dataset"]["format"] == "folder"
    assert set(rec["outcomes"]["labels"]) == {"pos", "neg"} and 0.8 < rec["metrics"]["accuracy"] < 0.97

    (docs / "reviews" / "0007.txt").write_text("changed after pinning")
    changed = run(service, tmp_path / "out2", tmp_path, tmp_path / "cache")
    assert changed.returncode == 2 and "expected " + digest in changed.stderr, changed.stderr[-2000:]
    shutil.rmtree(docs / "reviews")
    missing = run(service, tmp_path / "out3", tmp_path, tmp_path / "cache", "--data", str(docs))
    assert missing.returncode == 2 and "is not in the folder" in missing.stderr, missing.stderr[-2000:]
