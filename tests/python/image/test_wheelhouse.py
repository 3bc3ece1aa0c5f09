"""Wheelhouse keys and the prebuilt ($MLCI_WHEELHOUSE) split: what decides whether image layers are reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlci.build import wheelhouse
from mlci.errors import UserError
from mlci.progress import Progress


def test_key_follows_content_not_mtime(tmp_path: Path) -> None:
    f = tmp_path / "requirements.txt"
    f.write_text("numpy>=1.24\n")
    k1 = wheelhouse.hash_files([f], tmp_path)
    f.touch()
    assert wheelhouse.hash_files([f], tmp_path) == k1
    f.write_text("numpy>=1.25\n")
    assert wheelhouse.hash_files([f], tmp_path) != k1
    assert wheelhouse.hash_files([f], tmp_path, extra="cp312") != wheelhouse.hash_files([f], tmp_path)


def test_service_without_requirements_gets_an_empty_wheelhouse(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLCI_CACHE", str(tmp_path / "cache"))
    wh = wheelhouse._fill("req", "0" * 64, [], "requirements", Progress(0, "t"), need_files=True)
    assert wh.directory.is_dir() and wh.wheels() == []
    assert wh.image == "mlci-wheelhouse:req-0000000000000000"


def test_prebuilt_wheelhouse_is_split_into_deps_and_mlci(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLCI_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "wheels"
    src.mkdir()
    for name in ("mlci-0.1.0-py3-none-any.whl", "numpy-2.0-cp311-x.whl", "boto3-1.0-py3-none-any.whl"):
        (src / name).write_bytes(name.encode())
    monkeypatch.setenv("MLCI_WHEELHOUSE", str(src))
    deps, own = wheelhouse.mlci_wheelhouses(Progress(0, "t"))
    assert own.wheels() == ["mlci-0.1.0-py3-none-any.whl"]
    assert deps.wheels() == ["boto3-1.0-py3-none-any.whl", "numpy-2.0-cp311-x.whl"]
    again = wheelhouse.mlci_wheelhouses(Progress(0, "t"))
    assert (again[0].key, again[1].key) == (deps.key, own.key)  # same files: same images, same cache keys


def test_prebuilt_wheelhouse_without_mlci_is_a_user_error(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "numpy-2.0-cp311-x.whl").write_bytes(b"x")
    monkeypatch.setenv("MLCI_WHEELHOUSE", str(tmp_path))
    with pytest.raises(UserError, match="holds no mlci wheel"):
        wheelhouse.mlci_wheelhouses(Progress(0, "t"))


def test_cache_gc_prunes_wheelhouses_and_their_images_unused_for_long(tmp_path: Path, monkeypatch) -> None:
    """Real images on the engine: every build marks the wheelhouses it uses; `mlci cache gc --older-than`
    removes the directory and the `mlci-wheelhouse:` image of those nobody used for that long."""
    import hashlib
    import os
    import time
    import uuid

    from ..conftest import run_mlci

    cache = tmp_path / "cache"
    monkeypatch.setenv("MLCI_CACHE", str(cache))
    whs = {}
    for label in ("old", "new"):
        key = hashlib.sha256(f"{label}-{uuid.uuid4()}".encode()).hexdigest()
        wh = wheelhouse._fill("req", key, [], "requirements", Progress(0, "t"), need_files=True)
        assert wheelhouse.ensure_image(wh, Progress(0, "t")) == wh.image
        whs[label] = wh
    try:
        old, new = whs["old"], whs["new"]
        marker = cache / "wheelhouse" / ".used" / old.image.split(":", 1)[1]
        assert marker.exists()  # ensure_image recorded the use
        long_ago = time.time() - 40 * 86400
        for f in (marker, old.directory / ".complete"):
            os.utime(f, (long_ago, long_ago))

        dry = run_mlci("cache", "gc", "--older-than", "30d", "--cache", str(cache), "--dry-run")
        assert dry.returncode == 0 and "would remove 1 wheelhouses unused for 30d (1 images)" in dry.stderr
        assert wheelhouse.image_exists(old.image) and old.directory.exists()

        proc = run_mlci("cache", "gc", "--older-than", "30d", "--cache", str(cache))
        assert proc.returncode == 0 and "removed 1 wheelhouses unused for 30d (1 images)" in proc.stderr
        assert not wheelhouse.image_exists(old.image) and not old.directory.exists() and not marker.exists()
        assert wheelhouse.image_exists(new.image) and new.directory.exists()  # used just now: kept

        wheelhouse.ensure_image(new, Progress(0, "t"))  # no gc without --older-than: wheelhouses have no budget
        assert "wheelhouses" not in run_mlci("cache", "gc", "--max-size", "0", "--cache", str(cache)).stderr
    finally:
        for wh in whs.values():
            wheelhouse.remove_image(wh.image)
