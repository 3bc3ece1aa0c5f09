"""A mismatch never reaches DEST: corrupted S3 objects and corrupted cache entries, against the real S3 server."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mlci.artifacts import api
from mlci.config import load_config
from mlci.errors import UserError

from .conftest import client, mlci, write_repo


def _setup(tmp_path: Path, bucket: str, files: dict[str, bytes]):
    repo = write_repo(tmp_path / "repo", bucket, tmp_path / "cache")
    cfg = load_config(repo / "ml-ci.yaml")
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    entries = api.add_models(cfg, [str(src / n) for n in files])
    return repo, cfg, {e.path: e for e in entries}


def test_corrupted_object_in_s3_is_reported_and_quarantined(tmp_path: Path, s3_bucket: str):
    good = os.urandom(300_000)
    repo, cfg, entries = _setup(tmp_path, s3_bucket, {"model.bin": good, "other.bin": b"fine" * 1000})
    e = entries["model.bin"]
    key = e.uri.split("/", 3)[3]
    bad = bytearray(good)
    bad[1234] ^= 0xFF  # same size, one byte flipped
    client().put_object(Bucket=s3_bucket, Key=key, Body=bytes(bad))
    (tmp_path / "cache").rename(tmp_path / "old-cache")  # force a download

    proc = mlci(repo, "models", "pull")
    assert proc.returncode == 2
    actual = hashlib.sha256(bad).hexdigest()
    assert f"expected {e.digest}, got {actual}" in proc.stderr and e.uri in proc.stderr
    assert "models.lock:" in proc.stderr  # names the entry
    assert "Traceback" not in proc.stderr
    assert not (repo / "models" / "model.bin").exists()  # the bad bytes never reach DEST
    assert (repo / "models" / "other.bin").read_bytes() == b"fine" * 1000  # the other file is unaffected
    quarantine = tmp_path / "cache" / "quarantine"
    records = [json.loads(p.read_text()) for p in quarantine.glob("*.json")]
    assert [(r["expected"], r["actual"], r["uri"]) for r in records] == [(e.digest, actual, e.uri)]
    assert (quarantine / Path(next(quarantine.glob("*.json")).stem)).read_bytes() == bytes(bad)
    assert not (tmp_path / "cache" / "objects" / "sha256" / e.digest[:2] / e.digest[2:]).exists()

    client().put_object(Bucket=s3_bucket, Key=key, Body=good[:1000])  # a truncated object: caught by size
    with pytest.raises(UserError, match="is 1000 bytes but the dependency file says 300000"):
        api.pull_models(cfg)


def test_corrupted_cache_entry_is_detected_and_refetched(tmp_path: Path, s3_bucket: str):
    data = os.urandom(200_000)
    repo, cfg, entries = _setup(tmp_path, s3_bucket, {"model.bin": data})
    e = entries["model.bin"]
    first = api.pull_models(cfg)
    assert first["cache_hits"] == 1  # `models add` put it in the cache
    obj = tmp_path / "cache" / "objects" / "sha256" / e.digest[:2] / e.digest[2:]
    st = obj.stat()
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as fh:  # bit rot or tampering: same size, mtime set back (only the ctime moves)
        fh.seek(100)
        fh.write(b"\0" * 16)
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))
    # DEST holds its own copy: the damage in the cache does not reach it
    assert [r["state"] for r in api.status(cfg, full=True)] == ["ok"]

    second = api.pull_models(cfg, dest=str(tmp_path / "dest2"))  # the ctime gives it away: re-hashed, refetched
    assert second["downloaded_files"] == 1 and second["cache_hits"] == 0
    assert (tmp_path / "dest2" / "model.bin").read_bytes() == data
    records = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "quarantine").glob("*.json")]
    assert [r["reason"] for r in records] == ["corrupted cache entry"]


def test_a_model_edited_in_a_workspace_cannot_poison_the_cache(tmp_path: Path, s3_bucket: str):
    """Placed files are independent of the cache objects: editing one in place (as root, or after a chmod)
    changes that workspace only; the next pull there notices (by its stamp) and restores it."""
    data = os.urandom(300_000)
    repo, cfg, entries = _setup(tmp_path, s3_bucket, {"model.bin": data})
    e = entries["model.bin"]
    api.pull_models(cfg)
    placed = repo / "models" / "model.bin"
    obj = tmp_path / "cache" / "objects" / "sha256" / e.digest[:2] / e.digest[2:]
    assert os.stat(placed).st_ino != os.stat(obj).st_ino and os.stat(obj).st_nlink == 1
    st = placed.stat()
    os.chmod(placed, 0o644)
    with open(placed, "r+b") as fh:  # edited in place, mtime set back
        fh.write(b"poison")
    os.utime(placed, ns=(st.st_atime_ns, st.st_mtime_ns))

    other = api.pull_models(cfg, dest=str(tmp_path / "other-build"))
    assert other["cache_hits"] == 1 and (tmp_path / "other-build" / "model.bin").read_bytes() == data
    assert hashlib.sha256(obj.read_bytes()).hexdigest() == e.digest
    again = api.pull_models(cfg)  # the edited workspace: its stamp changed (ctime), hashed, restored
    assert again["rehashed"] == 0 and again["cache_hits"] == 1 and placed.read_bytes() == data


def test_cache_on_another_device_copies_into_dest(tmp_path: Path, s3_bucket: str):
    """A BuildKit cache mount and the image layer are different filesystems: DEST gets copies, not links."""
    import shutil
    import tempfile

    shm = Path(tempfile.mkdtemp(prefix="mlci-art-", dir="/dev/shm"))
    try:
        repo = write_repo(tmp_path / "repo", s3_bucket, shm / "cache")
        cfg = load_config(repo / "ml-ci.yaml")
        assert os.stat(shm).st_dev != os.stat(tmp_path).st_dev
        data = os.urandom(100_000)
        (tmp_path / "m.bin").write_bytes(data)
        api.add_models(cfg, [str(tmp_path / "m.bin")])
        summary = api.pull_models(cfg)
        placed = repo / "models" / "m.bin"
        assert summary["cache_hits"] == 1 and placed.read_bytes() == data
        assert os.stat(placed).st_dev != os.stat(next((shm / "cache" / "objects").rglob("*[!.ok]"))).st_dev
        assert api.pull_models(cfg)["unchanged"] == 1
    finally:
        shutil.rmtree(shm, ignore_errors=True)
