"""`mlci data add` and `mlci data pull` for files and folders, against the real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import yaml

from mlci.artifacts import folder

from ..conftest import run_mlci
from .conftest import write_repo

CONFIG_TAIL = "  data:\n    texts:  # review snippets\n      uri: old/\n      label: sentiment  # kept\n"


def texts(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    for i in range(5):
        (root / "docs" / f"{i}.txt").write_text(f"text {i}")
    (root / "labels.jsonl").write_text("".join(json.dumps({"file": f"docs/{i}.txt", "sentiment": i % 2}) + "\n"
                                               for i in range(5)))
    return root


def test_add_a_folder_then_pull_it_anywhere(tmp_path: Path, s3_bucket: str):
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache", extra=CONFIG_TAIL)
    src = texts(tmp_path / "texts")
    env = {"MLCI_CACHE": str(tmp_path / "cache")}
    proc = run_mlci("data", "add", "texts", str(src), "--json", cwd=repo, env=env)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["files"] == 6 and row["uploaded"] == 7 and row["format"] == "folder"
    text = (repo / "ml-ci.yaml").read_text()
    assert "    texts:  # review snippets\n" in text and "      label: sentiment  # kept\n" in text
    entry = yaml.safe_load(text)["artifacts"]["data"]["texts"]
    assert entry == {"uri": row["uri"], "label": "sentiment", "sha256": row["sha256"], "format": "folder"}
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert row["uri"].split(f"{s3_bucket}/", 1)[1] in keys and len(keys) == 7  # six files + the manifest
    again = run_mlci("data", "add", "texts", str(src), "--json", cwd=repo, env=env)
    assert json.loads(again.stdout)["uploaded"] == 0  # content-addressed: nothing new to upload

    pulled = run_mlci("data", "pull", "texts", "--dest", str(tmp_path / "got"), "--json", cwd=repo,
                      env={"MLCI_CACHE": str(tmp_path / "other-cache")})
    assert pulled.returncode == 0, pulled.stderr
    got = tmp_path / "got" / "texts"
    assert (got / "docs" / "3.txt").read_text() == "text 3"
    assert folder.digest(folder.scan(got)) == row["sha256"]  # the same bytes, every file


def test_add_refuses_bad_input_before_uploading(tmp_path: Path, s3_bucket: str):
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.npz").write_bytes(b"x")
    (tmp_path / "x.bin").write_bytes(b"x")
    cases = [
        (["bad name!", str(tmp_path / "x.npz")], "dataset name 'bad name!' is not valid"),
        (["t", str(tmp_path / "missing.npz")], "does not exist"),
        (["t", str(tmp_path / "x.bin")], "cannot tell the format"),
        (["t", str(tmp_path / "x.npz"), "--format", "folder"], "is a file but the format is 'folder'"),
        (["t", str(tmp_path / "empty")], "no labels table at the top"),
        (["t", str(tmp_path / "empty"), "--labels", "labels.csv"], "labels table 'labels.csv' is not in the folder"),
    ]
    for args, message in cases:
        proc = run_mlci("data", "add", *args, cwd=repo, env={"MLCI_CACHE": str(tmp_path / "cache")})
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)
    norem = tmp_path / "norem"
    norem.mkdir()
    (norem / "ml-ci.yaml").write_text("service: s\n")
    proc = run_mlci("data", "add", "t", str(tmp_path / "x.npz"), cwd=norem)
    assert proc.returncode == 2 and "no remote to upload to" in proc.stderr and "--remote" in proc.stderr


def test_pull_checks_a_local_folder_against_its_pin(tmp_path: Path, s3_bucket: str):
    src = texts(tmp_path / "repo" / "data" / "texts")
    digest = folder.digest(folder.scan(src))
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache",
                      extra=f"  data:\n    texts: {{uri: data/texts, sha256: {digest}}}\n")
    ok = run_mlci("data", "pull", "texts", "--json", cwd=repo)
    assert ok.returncode == 0 and json.loads(ok.stdout)[0]["path"] == str(src), ok.stderr
    (src / "docs" / "0.txt").write_text("edited")
    bad = run_mlci("data", "pull", "texts", cwd=repo)
    assert bad.returncode == 2 and f"expected {digest}" in bad.stderr and "mlci data add" in bad.stderr
