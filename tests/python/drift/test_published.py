"""`mlci drift check` without --reference and drift.reference: the reference `mlci train` published (named by
the training record next to the dependency file, content-addressed in the real S3 server, digest-verified)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import yaml

from mlci.config.schema import SCHEMA
from mlci.drift.reference import reference_from_file
from mlci.train import drift_reference, record

from .synth import columns, jsonl, rows
from .test_cli_s3 import UNTIL, put_window


def _service(tmp_path: Path, bucket: str, **drift: object) -> Path:
    repo = tmp_path / "svc"
    repo.mkdir()
    cfg = {"service": "svc", "artifacts": {"remote": f"s3://{bucket}/svc"},
           "drift": {"logs": f"s3://{bucket}/svc/logs", "window": "7d", **drift}}
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg))
    return repo


def _publish(repo: Path, bucket: str, tmp_path: Path) -> dict:
    """What a PASS of `mlci train` leaves behind: the reference object in S3 and the record naming it."""
    data = tmp_path / "train.jsonl"
    data.write_bytes(jsonl(rows(columns(6000, np.random.default_rng(11)))))
    ref = reference_from_file(data, SCHEMA.fields["drift"].default_value(), source={"dataset": "train"})
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    entry = drift_reference.publish(f"s3://{bucket}/svc", path, {"dataset": "train", "rows": 6000, "features": 5})
    rec = record.build(service="svc", model_files={}, git={}, code_digest="sha256:0", data={}, params_file=None,
                       params_digest=None, params=None, image={}, evaluation={}, durations={}, run_key="k",
                       cache_hit=False, trigger_name="manual", runner="local", drift_reference=entry)
    (repo / "training.json").write_text(json.dumps(rec))
    return entry


def test_check_uses_the_published_training_reference(s3_bucket: str, tmp_path: Path, mlci) -> None:
    repo = _service(tmp_path, s3_bucket)
    cfg = str(repo / "ml-ci.yaml")
    check = ("drift", "check", "-c", cfg, "--until", UNTIL, "--out", str(tmp_path / "out"))
    proc = mlci(*check)
    assert proc.returncode == 2 and "no training record training.json" in proc.stderr
    assert "mlci train" in proc.stderr and "--reference" in proc.stderr  # names the fixes

    entry = _publish(repo, s3_bucket, tmp_path)
    assert entry["uri"].startswith(f"s3://{s3_bucket}/svc/sha256/")
    put_window(s3_bucket, "svc/logs", seed=21)
    proc = mlci(*check)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"reference published by mlci train: {entry['uri']}" in proc.stderr
    rec = json.loads((tmp_path / "out" / "drift" / "drift.json").read_text())
    assert rec["verdict"] == "NO_DRIFT" and rec["reference"]["uri"] == entry["uri"]
    assert rec["reference"]["rows"] == 6000 and rec["reference"]["source"]["dataset"] == "train"

    put_window(s3_bucket, "svc/logs", seed=22, shift=1.0, new_category=0.2)  # the published reference sees it
    assert mlci(*check).returncode == 1

    # the object is trusted only under its recorded digest
    bucket, key = entry["uri"][5:].split("/", 1)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=b'{"schema": "mlci.drift.reference/1"}')
    proc = mlci(*check)
    assert proc.returncode == 2 and "the training record says" in proc.stderr


def test_reference_flag_and_config_win_over_the_record(s3_bucket: str, tmp_path: Path, mlci) -> None:
    repo = _service(tmp_path, s3_bucket, reference="missing.json")
    _publish(repo, s3_bucket, tmp_path)
    put_window(s3_bucket, "svc/logs", seed=21)
    base = ("drift", "check", "-c", str(repo / "ml-ci.yaml"), "--until", UNTIL, "--out", str(tmp_path / "out"))
    proc = mlci(*base)  # drift.reference set: used (and missing), the record is not consulted
    assert proc.returncode == 2 and "missing.json not found" in proc.stderr
    proc = mlci(*base, "--reference", str(tmp_path / "ref.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "published by mlci train" not in proc.stderr


def test_record_without_a_reference_is_a_clear_error(s3_bucket: str, tmp_path: Path, mlci) -> None:
    repo = _service(tmp_path, s3_bucket)
    (repo / "training.json").write_text(json.dumps({"schema": "mlci.train/1", "drift_reference": None}))
    proc = mlci("drift", "check", "-c", str(repo / "ml-ci.yaml"), "--until", UNTIL, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "names no drift reference" in proc.stderr and "mlci train" in proc.stderr
