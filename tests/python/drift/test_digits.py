"""A realistic reference: the digits example's test set (through artifacts.data and S3), production logs of the
trained model's requests, and a scanner change (fainter ink) that must be caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest

from tests.python.conftest import EXAMPLE

from .synth import digits_requests, jsonl

DAY = "2026-11-22"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    subprocess.run([sys.executable, str(EXAMPLE / "training" / "train.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


def production(digits: Path, n: int, seed: int, ink: float = 1.0) -> list[dict]:
    return digits_requests(np.load(digits / "digits-test.npz")["x"], digits / "digits.npz", n, seed, ink)


def test_digits_reference_and_checks(digits: Path, s3_bucket: str, tmp_path: Path, mlci) -> None:
    s3 = boto3.client("s3")
    s3.upload_file(str(digits / "digits-test.npz"), s3_bucket, "data/digits-test.npz")
    cfg = tmp_path / "ml-ci.yaml"
    cfg.write_text(f"""service: digits
artifacts:
  remote: s3://{s3_bucket}/digits
  data:
    digits-test: {{uri: s3://{s3_bucket}/data/digits-test.npz, inputs: x, label: y}}
drift:
  reference: reference.json
  logs: s3://{s3_bucket}/logs
  window: 1d
  exclude: [id]
""")
    env = {"MLCI_CACHE": str(tmp_path / "cache"), "MLCI_CONFIG": ""}
    mlci("drift", "reference", "-c", str(cfg), "--dataset", "digits-test", "--out", str(tmp_path / "reference.json"),
         env=env, check=True)
    ref = json.loads((tmp_path / "reference.json").read_text())
    assert len(ref["features"]) == 64 and ref["prediction"]["source"] == "y"
    assert ref["prediction"]["kind"] == "categorical" and ref["source"]["dataset"] == "digits-test"
    assert (tmp_path / "reference.json").stat().st_size < 200_000  # compact: no raw data

    s3.put_object(Bucket=s3_bucket, Key=f"logs/dt={DAY}/a.jsonl", Body=jsonl(production(digits, 1500, 1)))
    proc = mlci("drift", "check", "-c", str(cfg), "--until", DAY, "--out", str(tmp_path / "ok"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads((tmp_path / "ok" / "drift" / "drift.json").read_text())
    assert rec["service"] == "digits" and len(rec["features"]) == 65 and rec["not_checked"] == ["request_id"]

    s3.put_object(Bucket=s3_bucket, Key=f"logs/dt={DAY}/a.jsonl", Body=jsonl(production(digits, 1500, 2, ink=0.6)))
    proc = mlci("drift", "check", "-c", str(cfg), "--until", DAY, "--out", str(tmp_path / "bad"), env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = json.loads((tmp_path / "bad" / "drift" / "drift.json").read_text())
    assert len(rec["drifted"]) >= 10 and all(name.startswith("x.") or name == "prediction" for name in rec["drifted"])
