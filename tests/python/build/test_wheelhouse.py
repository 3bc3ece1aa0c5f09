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
