"""The real infrastructure answers: a container runs on the engine, an object round-trips through S3."""

from __future__ import annotations

import subprocess
import uuid

import boto3


def test_container_runs_on_real_engine(docker_cli, base_image):
    name = f"mlci-infra-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        [docker_cli, "run", "--rm", "--name", name, base_image, "python3", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 11)"
    leftover = subprocess.run([docker_cli, "ps", "-aq", "--filter", f"name={name}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_object_round_trips_through_s3_server(s3_bucket, s3_endpoint):
    s3 = boto3.client("s3")  # plain credential chain; endpoint from AWS_ENDPOINT_URL
    assert s3.meta.endpoint_url.rstrip("/") == s3_endpoint.rstrip("/")
    s3.put_object(Bucket=s3_bucket, Key="a/b.bin", Body=b"\x00hello\xff")
    assert s3.get_object(Bucket=s3_bucket, Key="a/b.bin")["Body"].read() == b"\x00hello\xff"
    assert s3.head_object(Bucket=s3_bucket, Key="a/b.bin")["ContentLength"] == 7
