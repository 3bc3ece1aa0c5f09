"""A run record in S3 is input like any other: output names read from run.json cannot leave the outputs
directory (real S3 server)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import pytest

from mlci.errors import UserError
from mlci.train import cache


@pytest.mark.parametrize("name", ["../../escaped.npz", "/tmp/escaped.npz", "a/../../escaped.npz", "..", ""])
def test_output_names_from_run_json_are_checked_for_traversal(tmp_path: Path, s3_bucket: str, name: str) -> None:
    body = b"not a model"
    sha = hashlib.sha256(body).hexdigest()
    key = "k" * 64
    uri = f"s3://{s3_bucket}/train"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key=f"train/runs/{key}/outputs/{name}", Body=body)
    s3.put_object(Bucket=s3_bucket, Key=f"train/runs/{key}/run.json", Body=json.dumps(
        {"schema": cache.RUN_SCHEMA, "key": key, "outputs": {name: f"sha256:{sha}"}}).encode())
    with pytest.raises(UserError) as err:
        cache.lookup(uri, key)
    assert "run.json" in str(err.value)
    dest = tmp_path / "work" / "outputs"
    dest.mkdir(parents=True)
    with pytest.raises(UserError):
        cache.download_outputs(uri, key, {name: f"sha256:{sha}"}, dest)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_run_record_that_is_not_json_is_a_user_error(s3_bucket: str) -> None:
    key = "k" * 64
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"train/runs/{key}/run.json", Body=b"\xff{")
    with pytest.raises(UserError, match="not JSON"):
        cache.lookup(f"s3://{s3_bucket}/train", key)
