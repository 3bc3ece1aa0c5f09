"""DVC interoperability: `.dvc` files, dvc.lock and `.dir` manifests written by hand in DVC's documented
format, objects in DVC's 3.x (`files/md5/<2>/<30>`) and 2.x (`<2>/<30>`) remote layouts; no DVC installed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from mlci.artifacts import api
from mlci.config import load_config
from mlci.errors import UserError

from .conftest import client, mlci


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put(bucket: str, key: str, data: bytes) -> None:
    client().put_object(Bucket=bucket, Key=key, Body=data)


def dvc_repo(tmp_path: Path, bucket: str, lock: str) -> tuple[Path, dict[str, bytes]]:
    """A service repo tracked by DVC: .dvc/config with a default S3 remote, three .dvc files under models/."""
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".dvc" / "config").write_text(
        f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://{bucket}/dvcstore\n")
    (repo / "ml-ci.yaml").write_text(
        f"service: svc\nartifacts:\n  cache: {tmp_path / 'cache'}\n  models: {{lock: '{lock}', dest: models/}}\n")
    models = repo / "models"
    models.mkdir()
    model, legacy = os.urandom(50_000), os.urandom(20_000)
    images = {"a.png": os.urandom(3000), "sub/b.png": os.urandom(4000)}
    # DVC 3.x file out
    put(bucket, f"dvcstore/files/md5/{md5(model)[:2]}/{md5(model)[2:]}", model)
    (models / "model.bin.dvc").write_text(
        f"outs:\n- md5: {md5(model)}\n  size: {len(model)}\n  hash: md5\n  path: model.bin\n")
    # DVC 2.x out (no `hash:` field): the 2.x remote layout
    put(bucket, f"dvcstore/{md5(legacy)[:2]}/{md5(legacy)[2:]}", legacy)
    (models / "legacy.bin.dvc").write_text(f"outs:\n- md5: {md5(legacy)}\n  size: {len(legacy)}\n  path: legacy.bin\n")
    # DVC 3.x directory out: a .dir manifest listing the files
    manifest = json.dumps([{"md5": md5(d), "relpath": r} for r, d in sorted(images.items())]).encode()
    put(bucket, f"dvcstore/files/md5/{md5(manifest)[:2]}/{md5(manifest)[2:]}.dir", manifest)
    for data in images.values():
        put(bucket, f"dvcstore/files/md5/{md5(data)[:2]}/{md5(data)[2:]}", data)
    (models / "images.dvc").write_text(
        f"outs:\n- md5: {md5(manifest)}.dir\n  size: {sum(map(len, images.values()))}\n  nfiles: 2\n"
        "  hash: md5\n  path: images\n")
    files = {"model.bin": model, "legacy.bin": legacy, **{f"images/{r}": d for r, d in images.items()}}
    return repo, files


def test_dvc_files_pull_status_and_lock_files(tmp_path: Path, s3_bucket: str):
    repo, files = dvc_repo(tmp_path, s3_bucket, "models/*.dvc")
    proc = mlci(repo, "models", "pull")
    assert proc.returncode == 0, proc.stderr
    for rel, data in files.items():
        assert (repo / "models" / rel).read_bytes() == data
    cfg = load_config(repo / "ml-ci.yaml")
    assert api.lock_files(cfg) == {
        "models/model.bin": f"md5:{md5(files['model.bin'])}",
        "models/legacy.bin": f"md5:{md5(files['legacy.bin'])}",
        "models/images": f"md5:{hashlib.md5(_manifest(files)).hexdigest()}.dir",
    }
    assert {r["state"] for r in api.status(cfg, full=True)} == {"ok"}
    assert len(api.status(cfg)) == 4  # the directory is expanded to its files
    warm = api.pull_models(cfg)
    assert warm["unchanged"] == 4 and warm["downloaded_files"] == 0


def _manifest(files: dict[str, bytes]) -> bytes:
    items = sorted((k[len("images/"):], v) for k, v in files.items() if k.startswith("images/"))
    return json.dumps([{"md5": md5(d), "relpath": r} for r, d in items]).encode()


def test_dvc_lock_outs(tmp_path: Path, s3_bucket: str):
    repo, files = dvc_repo(tmp_path, s3_bucket, "dvc.lock")
    data = files["model.bin"]
    (repo / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: python train.py\n    deps:\n    - path: train.py\n"
        f"      md5: {'0' * 32}\n      size: 1\n    outs:\n    - path: out/model.bin\n      hash: md5\n"
        f"      md5: {md5(data)}\n      size: {len(data)}\n")
    cfg = load_config(repo / "ml-ci.yaml")
    summary = api.pull_models(cfg, dest=str(repo))  # dvc.lock paths are relative to the repo root
    assert summary["downloaded_files"] == 1
    assert (repo / "out" / "model.bin").read_bytes() == data


def test_dvc_errors(tmp_path: Path, s3_bucket: str):
    repo, files = dvc_repo(tmp_path, s3_bucket, "models/model.bin.dvc")
    cfg = load_config(repo / "ml-ci.yaml")
    model = files["model.bin"]
    corrupted = bytes([model[0] ^ 0xFF]) + model[1:]  # always differs (a fixed first byte would not, 1 in 256)
    put(s3_bucket, f"dvcstore/files/md5/{md5(model)[:2]}/{md5(model)[2:]}", corrupted)
    with pytest.raises(UserError, match=f"md5 mismatch .*expected {md5(model)}"):
        api.pull_models(cfg)
    assert not (repo / "models" / "model.bin").exists()

    evil = json.dumps([{"md5": md5(b"x"), "relpath": "../../evil"}]).encode()
    put(s3_bucket, f"dvcstore/files/md5/{md5(evil)[:2]}/{md5(evil)[2:]}.dir", evil)
    (repo / "models" / "evil.dvc").write_text(f"outs:\n- md5: {md5(evil)}.dir\n  hash: md5\n  path: d\n")
    with pytest.raises(UserError, match="escapes DEST"):
        api.pull_models(cfg, lock=str(repo / "models" / "evil.dvc"))
    assert not (tmp_path / "evil").exists() and not (repo / "evil").exists()

    (repo / "models" / "bad.dvc").write_text("outs:\n- path: x.bin\n  md5: nothex\n  hash: md5\n")
    with pytest.raises(UserError, match=r"bad.dvc:3: md5 'nothex'"):
        api.pull_models(cfg, lock=str(repo / "models" / "bad.dvc"))

    (repo / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
    with pytest.raises(UserError, match="no DVC remote configured") as info:
        api.pull_models(cfg)
    assert "dvc remote add" in str(info.value)


def test_dvc_config_remotes_and_layouts(tmp_path: Path):
    from mlci.artifacts import dvc

    d = tmp_path / ".dvc"
    d.mkdir()
    (d / "config").write_text("[core]\n    remote = a\n['remote \"a\"']\n    url = s3://bucket-a/x\n"
                              "[remote \"b\"]\n    url = s3://bucket-b/y/\n[cache]\n    url = s3://not-a-remote\n")
    (d / "config.local").write_text("[core]\n    remote = b\n")
    assert dvc.read_remotes(d) == ("b", {"a": "s3://bucket-a/x", "b": "s3://bucket-b/y/"})
    assert dvc.find_dvc_dir(tmp_path / "deep" / "er") == d
    h = "0123456789abcdef0123456789abcdef"
    assert dvc.object_uri("s3://bucket-b/y/", h, legacy=False) == f"s3://bucket-b/y/files/md5/01/{h[2:]}"
    assert dvc.object_uri("s3://bucket-b/y", h, legacy=True) == f"s3://bucket-b/y/01/{h[2:]}"

    (tmp_path / "m.dvc").write_text(f"outs:\n- md5: {h}\n  size: 1\n  hash: md5\n  path: m.bin\n  remote: a\n"
                                    f"- md5: {h[::-1]}\n  size: 2\n  path: old.bin\n"
                                    f"- md5: {h}\n  size: 1\n  path: in-git.txt\n  cache: false\n")
    by_path = {e.path: e for e in dvc.entries(tmp_path / "m.dvc")}
    assert set(by_path) == {"m.bin", "old.bin"}  # `cache: false` outs are in git, not in the remote
    assert by_path["m.bin"].uri == f"s3://bucket-a/x/files/md5/01/{h[2:]}"  # the out's own remote wins
    assert by_path["old.bin"].uri == f"s3://bucket-b/y/{h[::-1][:2]}/{h[::-1][2:]}"  # 2.x out, 2.x layout
