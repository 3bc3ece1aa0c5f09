"""S3 helpers for tests and benchmarks: a private moto server process (for tests that must stop or restart their
S3 server; the shared one from tests/infra/up must never be killed) and bucket removal. Plain module: the
benchmarks import it by path too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.Popen:
    """Start `python -m moto.server` on 127.0.0.1:port and wait until it accepts connections."""
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"private moto S3 server did not start on port {port}")


def remove_bucket(s3: Any, bucket: str) -> None:
    """Delete every object of a test bucket, then the bucket."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)
