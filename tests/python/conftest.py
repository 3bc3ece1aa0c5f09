"""Shared fixtures: the real infrastructure started by tests/infra/up (Docker engine, S3 server, Groovy).

Tests talk to real processes. When the infra is missing the tests fail (not skip): `make test` starts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .s3server import remove_bucket

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits"
DOCKER = os.environ.get("MLCI_DOCKER", "/usr/bin/docker")


def run_mlci(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None,
             check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (exit codes and stderr are part of the contract)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mlci", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlci {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    url = os.environ.get("AWS_ENDPOINT_URL")
    assert url, "AWS_ENDPOINT_URL is not set: run the tests through `make test` (tests/infra/up)"
    return url


@pytest.fixture()
def s3_bucket(s3_endpoint: str):
    """A fresh bucket on the real S3 server, removed afterwards."""
    import boto3

    s3 = boto3.client("s3")
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    remove_bucket(s3, name)


@pytest.fixture(scope="session")
def docker_cli() -> str:
    assert Path(DOCKER).exists(), f"{DOCKER} missing: run the tests through `make test`"
    out = subprocess.run([DOCKER, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    assert out.returncode == 0, f"Docker engine not answering: {out.stderr}"
    return DOCKER


@pytest.fixture(scope="session")
def base_image(docker_cli: str) -> str:
    tag = os.environ.get("MLCI_BASE_IMAGE", "mlci-base:bookworm")
    out = subprocess.run([docker_cli, "image", "inspect", tag], capture_output=True, text=True)
    assert out.returncode == 0, f"offline base image {tag} missing: run tests/infra/up"
    return tag


@pytest.fixture()
def example_copy(tmp_path: Path) -> Path:
    """A private copy of the example service (tests must not write into the repo)."""
    dst = tmp_path / "digits"
    # without models.lock: each test uploads its own model to its own bucket and writes its own lock
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("models", "models.lock", ".mlci", "__pycache__"))
    return dst
