"""Transport faults against the real CLI and S3 server, through a misbehaving proxy: resets are retried, the
retry budget bounds wall time, and Ctrl-C stops a pull at once without placing anything."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from .conftest import FaultProxy, client, free_port, mlci, write_repo


def _repo(tmp_path: Path, bucket: str, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    key = f"models/sha256/{digest[:2]}/{digest[2:]}"
    client().put_object(Bucket=bucket, Key=key, Body=data)
    repo = write_repo(tmp_path / "repo", bucket, tmp_path / "cache")
    (repo / "models.lock").write_text(
        f"version: 1\nfiles:\n- path: m.bin\n  sha256: {digest}\n  size: {size}\n  uri: s3://{bucket}/{key}\n")
    return repo, data


def _s3_port() -> int:
    return urlsplit(os.environ["AWS_ENDPOINT_URL"]).port


def test_closed_connections_are_retried(tmp_path: Path, s3_bucket: str):
    repo, data = _repo(tmp_path, s3_bucket, 100_000)
    proxy = FaultProxy(_s3_port(), close_first=6)  # more than any client-side retry would absorb
    try:
        proc = mlci(repo, "models", "pull", env={"AWS_ENDPOINT_URL": proxy.endpoint, "MLCI_S3_RETRY_SECONDS": "30"})
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr
    assert "ConnectionClosedError" in proc.stderr and "retrying" in proc.stderr
    assert (repo / "models" / "m.bin").read_bytes() == data


def test_retry_budget_bounds_wall_time_on_a_stalled_endpoint(tmp_path: Path, s3_bucket: str):
    """A stalled endpoint (accepts, never answers: only timeouts end a request) fails within the same retry budget
    as a refused one (every attempt fails at once): socket timeouts are part of the budget, not added to it."""
    repo, _ = _repo(tmp_path, s3_bucket, 1000)
    stalled = FaultProxy(_s3_port(), stall=True)
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    took: dict[str, float] = {}
    try:
        for name, endpoint in (("refused", refused), ("stalled", stalled.endpoint)) * 2:  # best of two: start-up
            t0 = time.monotonic()                                                        # varies under load
            proc = mlci(repo, "models", "pull", env={"AWS_ENDPOINT_URL": endpoint, "MLCI_S3_RETRY_SECONDS": "3"},
                        timeout=60)
            took[name] = min(took.get(name, 1e9), time.monotonic() - t0)
            assert proc.returncode == 2 and "Traceback" not in proc.stderr and "s3://" in proc.stderr, proc.stderr
    finally:
        stalled.close()
    assert took["refused"] > 2.5, took  # the budget was used
    assert took["stalled"] < took["refused"] + 1.5, f"a 3 s retry budget: {took}"
    assert not (repo / "models").exists() or not any((repo / "models").iterdir())


def test_ctrl_c_stops_a_pull_within_a_second_and_places_nothing(tmp_path: Path, s3_bucket: str):
    size = 48 << 20
    repo, _ = _repo(tmp_path, s3_bucket, size)
    proxy = FaultProxy(_s3_port(), rate=4 << 20)  # ~12 s for the whole object: plenty of time to interrupt
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint, "MLCI_PART_SIZE": str(4 << 20)}
    proc = subprocess.Popen([sys.executable, "-m", "mlci", "models", "pull", "-c", str(repo / "ml-ci.yaml")],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        partial = tmp_path / "cache" / "partial"
        deadline = time.monotonic() + 60
        while not list(partial.glob("*.part.json")):  # the first 4 MiB part is done: transfers are in full flow
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert took < 1.0, f"Ctrl-C took {took:.2f}s to stop the pull"
    models = repo / "models"
    assert not models.exists() or os.listdir(models) == [], os.listdir(models)  # nothing placed, no temp left
