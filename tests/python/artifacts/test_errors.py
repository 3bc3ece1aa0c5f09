"""Errors name the entry, the URI and the fix; credentials come only from the boto3 chain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlci.artifacts import api
from mlci.config import load_config
from mlci.errors import UserError

from .conftest import env_without_aws, write_repo


def run_exact_env(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`mlci models pull` with exactly `env` (the shared run_mlci helper merges os.environ, keys included)."""
    return subprocess.run([sys.executable, "-m", "mlci", "models", "pull", "-c", str(repo / "ml-ci.yaml")],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=120)

DIGEST = "ab" * 32


def _lock(repo: Path, uri: str) -> None:
    (repo / "models.lock").write_text(f"version: 1\nfiles:\n- path: m.bin\n  sha256: {DIGEST}\n  size: 3\n  uri: {uri}\n")


def test_missing_object_and_missing_bucket(tmp_path: Path, s3_bucket: str):
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache")
    cfg = load_config(repo / "ml-ci.yaml")
    uri = f"s3://{s3_bucket}/models/sha256/ab/{DIGEST[2:]}"
    _lock(repo, uri)
    with pytest.raises(UserError) as info:
        api.pull_models(cfg)
    text = str(info.value)
    assert uri in text and "does not exist" in text and "models.lock:3" in text and "mlci models add" in text

    _lock(repo, f"s3://no-such-bucket-art-{os.getpid()}/m/sha256/ab/{DIGEST[2:]}")
    with pytest.raises(UserError, match="does not exist"):
        api.pull_models(cfg)


def test_no_credentials_names_the_boto3_chain(tmp_path: Path, s3_bucket: str):
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache")
    _lock(repo, f"s3://{s3_bucket}/models/sha256/ab/{DIGEST[2:]}")
    env = {**env_without_aws(), "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"], "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_DEFAULT_REGION": "us-east-1"}
    proc = run_exact_env(repo, env)
    assert proc.returncode == 2 and "no AWS credentials" in proc.stderr and "boto3" in proc.stderr, proc.stderr


def test_config_files_only_as_in_a_docker_build(tmp_path: Path, s3_bucket: str):
    """Inside a `docker build` RUN step only AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE (secret mounts) and
    $MLCI_CACHE (a cache mount) are available: endpoint_url in the config file, keys in the credentials file."""
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "unused-cache")
    cfg = load_config(repo / "ml-ci.yaml")
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(10_000))
    api.add_models(cfg, [str(src)])
    (tmp_path / "aws-config").write_text(
        f"[default]\nregion = us-east-1\nendpoint_url = {os.environ['AWS_ENDPOINT_URL']}\n")
    (tmp_path / "aws-creds").write_text(
        f"[default]\naws_access_key_id = {os.environ['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {os.environ['AWS_SECRET_ACCESS_KEY']}\n")
    env = {k: v for k, v in env_without_aws().items() if k != "HOME"}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-creds"),
               AWS_EC2_METADATA_DISABLED="true", MLCI_CACHE=str(tmp_path / "mount-cache"), HOME=str(tmp_path))
    assert not [k for k in env if k.startswith("AWS_") and k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                                                                     "AWS_EC2_METADATA_DISABLED")]
    proc = run_exact_env(repo, env)
    assert proc.returncode == 0, proc.stderr
    assert (repo / "models" / "m.bin").read_bytes() == src.read_bytes()
    assert list((tmp_path / "mount-cache" / "objects" / "sha256").iterdir())  # $MLCI_CACHE won over the config


def test_add_without_remote_and_with_bad_files(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "ml-ci.yaml").write_text(f"service: svc\nartifacts:\n  cache: {tmp_path / 'cache'}\n")
    (repo / "m.bin").write_bytes(b"x")
    cfg = load_config(repo / "ml-ci.yaml")
    with pytest.raises(UserError, match="no remote to upload to"):
        api.add_models(cfg, [str(repo / "m.bin")])
    with pytest.raises(UserError, match="is not a file"):
        api.add_models(cfg, [str(repo / "nope.bin")], remote="s3://bucket-x/p")
    with pytest.raises(UserError, match="DVC file"):
        api.add_models(cfg, [str(repo / "m.bin")], remote="s3://bucket-x/p", lock=str(repo / "m.bin.dvc"))
    assert not (repo / "models.lock").exists()


def test_access_denied_names_uri_and_permission(tmp_path: Path):
    """A private S3 server that enforces IAM (after the 4 set-up calls): a user without a policy is denied."""
    import boto3

    from .conftest import free_port, start_moto

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_moto(port, {"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="art-denied")
        uri = f"s3://art-denied/models/sha256/ab/{DIGEST[2:]}"
        s3.put_object(Bucket="art-denied", Key=uri.split("/", 3)[3], Body=b"abc")
        iam = boto3.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="no-policy")
        key = iam.create_access_key(UserName="no-policy")["AccessKey"]
        repo = write_repo(tmp_path / "repo", "art-denied", tmp_path / "cache")
        _lock(repo, uri)
        env = {**env_without_aws(), "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
        proc = run_exact_env(repo, env)
        assert proc.returncode == 2, proc.stderr
        assert f"access denied to {uri}" in proc.stderr and "s3:GetObject" in proc.stderr
        assert "models.lock:3" in proc.stderr and "Traceback" not in proc.stderr
        assert not (repo / "models" / "m.bin").exists()
    finally:
        server.kill()
        server.wait()
