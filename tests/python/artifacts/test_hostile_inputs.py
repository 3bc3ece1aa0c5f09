"""Bad dependency files and datasets through the real CLI (and S3 server): exit 2 with file, location and fix,
never a traceback and never a hang."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import client, mlci, write_repo

DIGEST = "ab" * 32
BOMB = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else '"lol"'] * 10) + "]\n" for i in range(10))


def _pull(repo: Path, *extra: str):
    t0 = time.monotonic()
    proc = mlci(repo, "models", "pull", *extra, timeout=60)
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.parametrize("name, text, expected", [
    ("models.lock", "version: 1\nfiles: &f []\nx: *f\n", "models.lock:2: not valid YAML: the value anchored here is used again"),
    ("models.lock", BOMB, "models.lock:1: not valid YAML: the value anchored here"),
    ("m.dvc", "outs:\n- path: a\n  md5: x\n" + BOMB, "m.dvc:1: not valid YAML: aliases expand this document by"),
    ("dvc.lock", "schema: '2.0'\nstages: " + "{a: " * 200 + "1" + "}" * 200 + "\n", "dvc.lock:2: not valid YAML: nesting"),
    ("m.dvc", "outs:\n- ? [path]\n  : a\n", "m.dvc:2: not valid YAML: a list or mapping used as a key"),
    ("models.lock", f"version: 1\nfiles:\n- path: m.bin\n  sha256: {DIGEST}\n  size: " + "9" * 5000 + "\n",
     "models.lock:5: not valid YAML: cannot read"),
])
def test_hostile_dependency_files(tmp_path: Path, s3_bucket: str, name: str, text: str, expected: str):
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache", lock=name)
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text(f"[core]\n    remote = s\n['remote \"s\"']\n    url = s3://{s3_bucket}/d\n")
    (repo / name).write_text(text)
    assert expected in _pull(repo).stderr


def test_non_utf8_dvc_file_and_dvc_config(tmp_path: Path, s3_bucket: str):
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache", lock="m.dvc")
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text(f"[core]\n    remote = s\n['remote \"s\"']\n    url = s3://{s3_bucket}/d\n")
    (repo / "m.dvc").write_bytes(b"outs:\n- md5: " + b"a" * 32 + b"\n  path: caf\xe9.bin\n")
    err = _pull(repo).stderr
    assert "m.dvc:3: DVC file is not UTF-8 text: byte 0xe9" in err and "fix: save it as UTF-8" in err
    (repo / "m.dvc").write_text("outs:\n- md5: " + "a" * 32 + "\n  path: m.bin\n")
    (repo / ".dvc" / "config").write_bytes(b"[core]\n    remote = \xff\n")
    assert ".dvc/config:2: DVC config is not UTF-8 text" in _pull(repo).stderr


def test_data_pull_dest_refuses_a_key_that_names_no_file(tmp_path: Path, s3_bucket: str):
    client().put_object(Bucket=s3_bucket, Key="data/x/..", Body=b"not a dataset")
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache",
                      extra=f"  data:\n    odd: {{uri: 's3://{s3_bucket}/data/x/..'}}\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    proc = mlci(repo, "data", "pull", "--dest", str(dest))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "does not end in a file name" in proc.stderr and "artifacts.data.odd.uri" in proc.stderr
    assert list(dest.iterdir()) == [] and not (tmp_path / "..").joinpath("dest").is_file()


def _accuracy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "svc"
    repo.mkdir()
    (repo / "svc_predict.py").write_text("def predict(batch):\n    return [0 for _ in batch]\n")
    (repo / "ml-ci.yaml").write_text("service: svc\naccuracy:\n  predict: svc_predict:predict\n  suites:\n"
                                     "    s: {dataset: data.npz, gates: [{metric: accuracy, min: 0.5}]}\n")
    return repo


def _npz() -> bytes:
    buf = io.BytesIO()
    x = np.random.default_rng(1).random((50, 4))
    np.savez(buf, x=x, y=(x[:, 0] > 2).astype(int))
    return buf.getvalue()


@pytest.mark.parametrize("name, data, expected", [
    ("data.npz", _npz()[:300], "cannot read dataset"),
    ("data.npz", _npz()[:-40], "cannot read dataset"),
    ("data.jsonl", b'{"x": 1, "y": 0}\n{"x": ' + b"[" * 100000 + b"1" + b"]" * 100000 + b', "y": 1}\n',
     "data.jsonl:2: the row is nested too deeply to read"),
    ("data.jsonl", b'{"x": 1, "y": ' + b"9" * 5000 + b"}\n", "data.jsonl:1: cannot read the row"),
    ("data.csv", b"x,y\n" + b"1" * 200000 + b",0\n", "cannot read dataset"),
    ("data.npz", (lambda b: (np.savez(b, x=np.float64(1.0), y=np.zeros(3)), b.getvalue())[1])(io.BytesIO()),
     "must hold one row per sample"),
])
def test_damaged_datasets_exit_2(tmp_path: Path, name: str, data: bytes, expected: str):
    repo = _accuracy_repo(tmp_path)
    (repo / name).write_bytes(data)
    proc = mlci(repo, "accuracy", "run", "--suite", "s", "--data", str(repo / name), "-n", "0",
                "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert expected in proc.stderr and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert name in proc.stderr and "fix:" in proc.stderr or ":" in proc.stderr.split(name, 1)[1][:12]


def test_a_single_class_dataset_with_an_imperfect_model_is_a_verdict_not_bad_input(tmp_path: Path):
    repo = _accuracy_repo(tmp_path)
    (repo / "ml-ci.yaml").write_text("service: svc\naccuracy:\n  predict: svc_predict:predict\n  suites:\n"
                                     "    s: {dataset: data.jsonl, gates: [{metric: accuracy, min: 0.5, margin: 0.2}]}\n")
    (repo / "data.jsonl").write_text("\n".join(json.dumps({"x": i, "y": 0}) for i in range(200)))  # one class
    (repo / "svc_predict.py").write_text("def predict(batch):\n    return [0 if x % 4 == 0 else 1 for x in batch]\n")
    proc = mlci(repo, "accuracy", "run", "--suite", "s", "-n", "0", "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "accuracy" / "s" / "accuracy.json").read_text())
    assert record["verdict"] == "FAIL" and record["metrics"]["accuracy"] < 0.5

    # predictions in another encoding altogether (names for indices): that is bad input, exit 2
    (repo / "svc_predict.py").write_text("def predict(batch):\n    return ['cat' for _ in batch]\n")
    proc = mlci(repo, "accuracy", "run", "--suite", "s", "-n", "0", "--out", str(tmp_path / "out2"), timeout=120)
    assert proc.returncode == 2 and "labels the dataset never has" in proc.stderr, proc.stderr[-2000:]
