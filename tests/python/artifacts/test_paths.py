"""Dependency files that try to write outside DEST, or are malformed, are rejected before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlci.artifacts import api, lockfile
from mlci.config import load_config
from mlci.errors import UserError

from .conftest import mlci, write_repo

GOOD = "a" * 64


def lock_text(*paths: str) -> str:
    body = "".join(f"- path: {p}\n  sha256: {GOOD}\n  size: 3\n  uri: s3://b/m/sha256/aa/{GOOD[2:]}\n" for p in paths)
    return f"version: 1\nfiles:\n{body}"


def test_traversal_rejected_by_the_cli_before_any_write(tmp_path: Path):
    repo = write_repo(tmp_path / "repo", "bucket-unused", tmp_path / "cache")
    (repo / "models.lock").write_text(lock_text("ok.bin", "../escape.bin"))
    proc = mlci(repo, "models", "pull")
    assert proc.returncode == 2, proc.stderr
    assert "models.lock:7" in proc.stderr and "escapes DEST" in proc.stderr  # file:line of the offending path
    assert "Traceback" not in proc.stderr
    assert not (repo / "models").exists() and not (tmp_path / "escape.bin").exists()
    assert not (tmp_path / "cache" / "objects").exists()  # nothing fetched either


@pytest.mark.parametrize("bad, message", [("sub/../../escape.bin", "escapes DEST"), ("/etc/evil.bin", "absolute"),
                                          ("'sub\\\\x.bin'", "backslash"), ("..", "escapes DEST"),
                                          ("'.'", "destination directory itself")])
def test_traversal_rejected(tmp_path: Path, bad: str, message: str):
    repo = write_repo(tmp_path / "repo", "bucket-unused", tmp_path / "cache")
    (repo / "models.lock").write_text(lock_text("ok.bin", bad))
    with pytest.raises(UserError, match=message) as info:
        api.pull_models(load_config(repo / "ml-ci.yaml"))
    assert "models.lock:7" in str(info.value)
    assert not (repo / "models").exists() and not (tmp_path / "escape.bin").exists()


def test_symlink_out_of_dest_rejected(tmp_path: Path):
    repo = write_repo(tmp_path / "repo", "bucket-unused", tmp_path / "cache")
    (repo / "models").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, repo / "models" / "link")
    (repo / "models.lock").write_text(lock_text("link/x.bin"))
    with pytest.raises(UserError, match="escapes"):
        api.pull_models(load_config(repo / "ml-ci.yaml"))
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("text, line, message", [
    ("version: 1\nfiles:\n- path: a.bin\n  size: 3\n\tsha256: x\n", 5, "not valid YAML"),
    ("version: 1\nfiles:\n- path: a.bin\n  size: 3\n  uri: s3://b/k\n", 3, "lacks sha256"),
    (lock_text("a.bin").replace(GOOD, "xyz", 1), 4, "not 64 lowercase hex"),
    (lock_text("a.bin").replace("size: 3", "size: -1"), 5, "not a non-negative integer"),
    (lock_text("a.bin").replace("s3://b/", "http://b/"), 6, "not an s3:// URI"),
    (lock_text("a.bin", "a.bin"), 7, "listed twice"),
    ("version: 7\nfiles: []\n", 1, "unsupported dependency file version"),
])
def test_malformed_lock_names_file_and_line(tmp_path: Path, text: str, line: int, message: str):
    p = tmp_path / "models.lock"
    p.write_text(text)
    with pytest.raises(UserError) as info:
        lockfile.read(p)
    assert message in str(info.value) and f"models.lock:{line}" in str(info.value)


def test_render_is_stable_and_round_trips():
    from mlci.artifacts.entries import Entry

    entries = [Entry("z/b.bin", "sha256", GOOD, 3, f"s3://b/sha256/aa/{GOOD[2:]}", "x"),
               Entry("a: weird #name.bin", "sha256", "b" * 64, 0, "s3://b/k", "x")]
    text = lockfile.render(entries)
    assert lockfile.render(list(reversed(entries))) == text
    parsed = lockfile.parse(text, "models.lock")
    assert [(e.path, e.digest, e.size, e.uri) for e in parsed] == sorted(
        (e.path, e.digest, e.size, e.uri) for e in entries)


def test_missing_lock_file_says_how_to_create_it(tmp_path: Path):
    repo = write_repo(tmp_path / "repo", "bucket-unused", tmp_path / "cache")
    proc = mlci(repo, "models", "pull")
    assert proc.returncode == 2 and "mlci models add" in proc.stderr and "Traceback" not in proc.stderr
