"""Round trip with the example service: train, `models add` to a fresh bucket, pull into a fresh cache, verify."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlci.artifacts import api
from mlci.errors import UserError

from ..conftest import EXAMPLE
from .conftest import client, mlci, use_bucket_and_cache


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    for extra in ([], ["--degraded"]):
        subprocess.run([sys.executable, str(EXAMPLE / "training" / "train.py"), "--out", str(out), "--steps", "60",
                        *extra], check=True, capture_output=True, timeout=120)
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_add_pull_verify_round_trip(example_copy: Path, s3_bucket: str, trained: Path, tmp_path: Path):
    repo, cache = example_copy, tmp_path / "cache"
    cfg = use_bucket_and_cache(repo, s3_bucket, cache)
    model, degraded = trained / "digits.npz", trained / "digits-degraded.npz"

    proc = mlci(repo, "models", "add", str(model), str(degraded))  # the real CLI
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("uploaded") == 2
    lock = (repo / "models.lock").read_text()
    assert "version: 1" in lock and lock.index("digits-degraded.npz") < lock.index("path: digits.npz")
    key = f"digits/sha256/{sha(model)[:2]}/{sha(model)[2:]}"
    assert client().head_object(Bucket=s3_bucket, Key=key)["ContentLength"] == model.stat().st_size

    again = api.add_models(cfg, [str(model)])  # same bytes: no second upload, byte-identical lock
    assert again[0].digest == sha(model)
    assert (repo / "models.lock").read_text() == lock

    shutil.rmtree(cache)  # a fresh cache: everything comes from S3
    proc = mlci(repo, "models", "pull", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    lines = proc.stderr.splitlines()  # no TTY: one line per file (size, time, how), then the summary
    assert any(line.startswith("[models] digits.npz ") and line.endswith("downloaded") for line in lines), lines
    assert "2 downloaded" in lines[-1] and "MB/s" in lines[-1] and "0 cache hits" in lines[-1]
    assert summary["files"] == 2 and summary["downloaded_files"] == 2 and summary["cache_hits"] == 0
    assert sha(repo / "models" / "digits.npz") == sha(model)
    assert sha(repo / "models" / "digits-degraded.npz") == sha(degraded)

    verify = mlci(repo, "models", "verify")
    assert verify.returncode == 0 and verify.stdout.count("ok ") == 2, verify.stdout

    warm = api.pull_models(cfg)  # DEST already matches: stat only, nothing hashed or downloaded
    assert (warm["unchanged"], warm["rehashed"], warm["downloaded_files"]) == (2, 0, 0)
    # ...and the CLI does it without importing boto3 (~0.3 s of a warm pull's start-up): no S3 call is needed
    probe = subprocess.run([sys.executable, "-c", "import sys\nfrom mlci.cli import main\n"
                            "rc = main(['models', 'pull', '-c', sys.argv[1]])\nprint(rc, 'botocore' in sys.modules)",
                            str(repo / "ml-ci.yaml")], capture_output=True, text=True, cwd=repo)
    assert probe.stdout.split() == ["0", "False"], probe.stdout + probe.stderr
    os.utime(repo / "models" / "digits.npz")  # a changed stamp: that one file is hashed again
    touched = api.pull_models(cfg)
    assert (touched["unchanged"], touched["rehashed"], touched["downloaded_files"]) == (2, 1, 0)

    other = api.pull_models(cfg, dest=str(tmp_path / "elsewhere"))  # second DEST: filled from the cache
    assert other["cache_hits"] == 2 and other["downloaded_files"] == 0
    # each DEST gets its own file: editing one workspace's model cannot reach the cache or another workspace
    assert os.stat(tmp_path / "elsewhere" / "digits.npz").st_ino != os.stat(repo / "models" / "digits.npz").st_ino

    assert api.lock_files(cfg) == {"models/digits.npz": f"sha256:{sha(model)}",
                                   "models/digits-degraded.npz": f"sha256:{sha(degraded)}"}
    assert api.lock_digest(cfg) == sha(repo / "models.lock")

    # The service loads the pulled model from where it expects it.
    check = subprocess.run([sys.executable, "-c", "from digits_service.model import Model, default_model_path;"
                            "print(Model.load(default_model_path()).weights.shape)"],
                           cwd=repo, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo)})
    assert check.stdout.strip() == "(64, 10)", check.stderr


def test_status_reports_missing_and_modified(example_copy: Path, s3_bucket: str, trained: Path, tmp_path: Path):
    repo = example_copy
    cfg = use_bucket_and_cache(repo, s3_bucket, tmp_path / "cache")
    api.add_models(cfg, [str(trained / "digits.npz"), str(trained / "digits-degraded.npz")])
    api.pull_models(cfg)
    assert {r["state"] for r in api.status(cfg)} == {"ok"}

    (repo / "models" / "digits-degraded.npz").unlink()
    target = repo / "models" / "digits.npz"
    target.unlink()  # a fresh inode: editing in place would also change the cache's hardlinked copy
    target.write_bytes(b"not the model")
    proc = mlci(repo, "models", "status", "--json")
    assert proc.returncode == 1
    states = {r["path"]: r["state"] for r in json.loads(proc.stdout)}
    assert states == {"digits.npz": "modified", "digits-degraded.npz": "missing"}

    fixed = api.pull_models(cfg)
    assert fixed["cache_hits"] == 2 and fixed["downloaded_files"] == 0
    assert {r["state"] for r in api.status(cfg, full=True)} == {"ok"}


def test_dataset_and_digest_fetch(example_copy: Path, s3_bucket: str, trained: Path, tmp_path: Path):
    repo, cache = example_copy, tmp_path / "cache"
    test_set = trained / "digits-test.npz"
    s3 = client()
    s3.upload_file(str(test_set), s3_bucket, "data/digits-test.npz")
    s3.upload_file(str(test_set), s3_bucket, "data/unpinned.npz")
    (repo / "local.npz").write_bytes(test_set.read_bytes())
    (repo / "ml-ci.yaml").write_text(f"""service: digits
artifacts:
  remote: s3://{s3_bucket}/models
  cache: {cache}
  data:
    digits-test: {{uri: s3://{s3_bucket}/data/digits-test.npz, sha256: {sha(test_set)}}}
    unpinned: {{uri: s3://{s3_bucket}/data/unpinned.npz}}
    local: {{uri: local.npz, sha256: {sha(test_set)}}}
    wrong: {{uri: s3://{s3_bucket}/data/unpinned.npz, sha256: '{"0" * 64}'}}
""")
    from mlci.config import load_config

    cfg = load_config(repo / "ml-ci.yaml")
    for name in ("digits-test", "unpinned", "local"):
        assert sha(api.fetch_dataset(cfg, name)) == sha(test_set)
    with pytest.raises(UserError, match="mismatch .*expected 0{64}"):
        api.fetch_dataset(cfg, "wrong")
    (repo / "local.npz").write_bytes(b"changed")
    with pytest.raises(UserError, match="sha256 mismatch"):
        api.fetch_dataset(cfg, "local")

    (repo / "models").mkdir()
    api.add_models(cfg, [str(trained / "digits.npz")])
    shutil.rmtree(cache)
    got = api.fetch_by_digest(cfg, f"sha256:{sha(trained / 'digits.npz')}", tmp_path / "baseline.npz")
    assert got == tmp_path / "baseline.npz" and sha(got) == sha(trained / "digits.npz")

    proc = mlci(repo, "data", "pull", "digits-test", "unpinned", "--dest", str(tmp_path / "data"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert {r["name"] for r in json.loads(proc.stdout)} == {"digits-test", "unpinned"}
    assert sha(tmp_path / "data" / "digits-test.npz") == sha(test_set)
    bad = mlci(repo, "data", "pull", "nope")
    assert bad.returncode == 2 and "no dataset 'nope'" in bad.stderr and "digits-test" in bad.stderr
