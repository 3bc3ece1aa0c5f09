"""Interrupted pulls resume; an S3 server killed mid-download and brought back still yields a verified file;
four pulls racing on one cache download each object once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlci.artifacts import api
from mlci.config import load_config

from .conftest import Forwarder, client, free_port, start_moto, write_repo

BIG = 24 << 20
SLOW = {"MLCI_PART_SIZE": str(1 << 20)}  # many small ranged requests: a transfer long enough to interrupt


PULL = ("import json, sys; from mlci.config import load_config; from mlci.artifacts.api import pull_models; "
        "print(json.dumps(pull_models(load_config(sys.argv[1]), dest=sys.argv[2] or None, jobs=int(sys.argv[3]))))")


def _popen_pull(repo: Path, env: dict[str, str], jobs: int, dest: Path | None = None) -> subprocess.Popen:
    """`mlci models pull` in its own process (the API directly: the full CLI imports every concern)."""
    return subprocess.Popen([sys.executable, "-c", PULL, str(repo / "ml-ci.yaml"), str(dest or ""), str(jobs)],
                            cwd=repo, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_parts(cache: Path, at_least: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Until the partial download has recorded `at_least` finished parts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for meta in (cache / "partial").glob("*.part.json"):
            try:
                if len(json.loads(meta.read_text())["done"]) >= at_least:
                    return
            except (ValueError, KeyError, FileNotFoundError):
                pass
        assert proc.poll() is None, f"pull ended early: {proc.communicate()}"
        time.sleep(0.05)
    raise AssertionError("download did not progress")


def _repo_with_big_model(tmp_path: Path, bucket: str, s3) -> tuple[Path, bytes, str]:
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    key = f"models/sha256/{digest[:2]}/{digest[2:]}"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    repo = write_repo(tmp_path / "repo", bucket, tmp_path / "cache").parent / "repo"
    (repo / "models.lock").write_text(
        f"version: 1\nfiles:\n- path: big.bin\n  sha256: {digest}\n  size: {BIG}\n  uri: s3://{bucket}/{key}\n")
    return repo, data, key


def test_killed_pull_resumes(tmp_path: Path, s3_bucket: str):
    repo, data, _ = _repo_with_big_model(tmp_path, s3_bucket, client())
    proc = _popen_pull(repo, SLOW, 1)
    _wait_parts(tmp_path / "cache", 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (repo / "models" / "big.bin").exists()

    proc = _popen_pull(repo, SLOW, 2)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["resumed_bytes"] >= 5 << 20 and summary["downloaded_bytes"] == BIG - summary["resumed_bytes"]
    assert "resuming" in err
    assert hashlib.sha256((repo / "models" / "big.bin").read_bytes()).digest() == hashlib.sha256(data).digest()


def test_server_killed_mid_download_and_restarted(tmp_path: Path):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    servers = [start_moto(port)]
    forwarder = None
    try:
        s3 = client(endpoint)
        bucket = "art-kill"
        s3.create_bucket(Bucket=bucket)
        repo, data, key = _repo_with_big_model(tmp_path, bucket, s3)
        env = {**SLOW, "AWS_ENDPOINT_URL": endpoint}
        proc = _popen_pull(repo, env, 2)
        _wait_parts(tmp_path / "cache", 4, proc)
        servers[0].kill()  # the S3 server dies mid-transfer
        servers[0].wait()
        time.sleep(2)  # the client sees refused connections and backs off
        assert proc.poll() is None, proc.communicate()
        port2 = free_port()  # the same storage comes back at the same address
        servers.append(start_moto(port2))
        s3b = client(f"http://127.0.0.1:{port2}")
        s3b.create_bucket(Bucket=bucket)
        s3b.put_object(Bucket=bucket, Key=key, Body=data)
        forwarder = Forwarder(port, port2)
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "retrying" in err  # the outage outlasted botocore's own retries: mlci's backoff carried it
        assert (repo / "models" / "big.bin").read_bytes() == data
        assert json.loads(out)["files"] == 1
    finally:
        if forwarder:
            forwarder.close()
        for s in servers:
            s.kill()
            s.wait()


def test_four_concurrent_pulls_share_one_cache(tmp_path: Path, s3_bucket: str):
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache")
    cfg = load_config(repo / "ml-ci.yaml")
    src = tmp_path / "src"
    src.mkdir()
    blobs = {f"m{i}.bin": os.urandom((i + 1) * 700_000) for i in range(6)}
    blobs["big.bin"] = os.urandom(6 << 20)  # several parts with MLCI_PART_SIZE=1MiB
    for name, data in blobs.items():
        (src / name).write_bytes(data)
    api.add_models(cfg, [str(src / n) for n in blobs])
    (tmp_path / "cache").rename(tmp_path / "add-cache")  # start cold: every object must come from S3

    procs = [_popen_pull(repo, SLOW, 3, tmp_path / f"dest{i}") for i in range(4)]
    results = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    summaries = [json.loads(out) for out, _ in results]
    assert sum(s["downloaded_files"] for s in summaries) == len(blobs)  # one download per object
    assert sum(s["cache_hits"] for s in summaries) == 3 * len(blobs)
    for i in range(4):
        for name, data in blobs.items():
            assert (tmp_path / f"dest{i}" / name).read_bytes() == data
    assert not list((tmp_path / "cache" / "partial").glob("*.part"))


def test_concurrent_pulls_into_one_dest_leave_no_temp_files(tmp_path: Path, s3_bucket: str):
    """Several pulls placing the same files in one DEST at once: each file complete, no `.NAME.mlci-*` left;
    temp files earlier mlci versions or killed pulls left there are cleaned, a fresh one of a live pull is not."""
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache")
    cfg = load_config(repo / "ml-ci.yaml")
    src = tmp_path / "src"
    src.mkdir()
    blobs = {f"m{i}.bin": os.urandom(300_000 + i) for i in range(8)}
    for name, data in blobs.items():
        (src / name).write_bytes(data)
    api.add_models(cfg, [str(src / n) for n in blobs])
    dest = repo / "models"
    procs = [_popen_pull(repo, {}, 4) for _ in range(4)]
    results = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    assert sorted(os.listdir(dest)) == sorted(blobs)
    assert all((dest / n).read_bytes() == d for n, d in blobs.items())

    os.link(dest / "m0.bin", dest / ".m0.bin.mlci-0a1b2c3d")  # an old hard-link placement's no-op rename
    (dest / ".m1.bin.mlci-deadbeef").write_bytes(b"half")  # a killed pull's temp file, long untouched
    os.utime(dest / ".m1.bin.mlci-deadbeef", (time.time() - 3600, time.time() - 3600))
    (dest / ".m2.bin.mlci-feedf00d").write_bytes(b"being written")  # a concurrent pull's, right now
    (dest / "m3.bin").unlink()
    api.pull_models(cfg)
    assert sorted(os.listdir(dest)) == sorted([*blobs, ".m2.bin.mlci-feedf00d"])
