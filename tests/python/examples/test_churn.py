"""The churn example is what its files say: data and model reproducible byte for byte, versions pinned alike."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn
import yaml

from ..conftest import ROOT, run_mlci

CHURN = ROOT / "examples" / "churn"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_reproduces_the_pinned_data_and_model(tmp_path: Path) -> None:
    """training/train.py is deterministic: the data sets hash to ml-ci.yaml's sha256 and the model to models.lock."""
    subprocess.run([sys.executable, str(CHURN / "training" / "train.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    cfg = yaml.safe_load((CHURN / "ml-ci.yaml").read_text())
    for name in ("churn-test", "churn-train"):
        assert _sha(tmp_path / f"{name}.npz") == cfg["artifacts"]["data"][name]["sha256"], name
    lock = yaml.safe_load((CHURN / "models.lock").read_text())
    assert lock["files"][0]["path"] == "churn.joblib" and lock["files"][0]["sha256"] == _sha(tmp_path / "churn.joblib")


def test_the_service_and_the_host_pin_the_same_scikit_learn() -> None:
    """The tests and the demo train the model on the host and the image loads it: one scikit-learn version."""
    for req in (CHURN / "requirements.txt", CHURN / "training" / "requirements.txt"):
        assert req.read_text().split() == [f"scikit-learn=={sklearn.__version__}"], req


@pytest.mark.xdist_group("train")
def test_mlci_train_retrains_in_its_image_and_publishes_on_pass(tmp_path: Path, s3_bucket: str, base_image: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's train: section end to end: the training image (scikit-learn from the host wheelhouse) learns
    from the pinned training set, the change suite judges the new model against the current (weak) one, and the
    published model is byte for byte the one the host training makes (deterministic across machines)."""
    import boto3

    monkeypatch.setenv("MLCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLCI_BASE_IMAGE", base_image)
    data = tmp_path / "data"
    subprocess.run([sys.executable, str(CHURN / "training" / "train.py"), "--out", str(data)], check=True,
                   capture_output=True, timeout=300)
    (tmp_path / "weak.json").write_text('{"max_iter": 5, "learning_rate": 0.3, "max_leaf_nodes": 4}')
    subprocess.run([sys.executable, str(CHURN / "training" / "train.py"), "--data", str(data / "churn-train.npz"),
                    "--out", str(tmp_path / "weak"), "--params", str(tmp_path / "weak.json")], check=True,
                   capture_output=True, timeout=300)
    repo = tmp_path / "churn"
    shutil.copytree(CHURN, repo, ignore=shutil.ignore_patterns("models", "models.lock", ".mlci", "__pycache__"))
    s3 = boto3.client("s3")
    cfg = yaml.safe_load((repo / "ml-ci.yaml").read_text())
    cfg["artifacts"]["remote"] = f"s3://{s3_bucket}/churn"
    for name in ("churn-train", "churn-test"):
        s3.upload_file(str(data / f"{name}.npz"), s3_bucket, f"churn/data/{name}.npz")
        cfg["artifacts"]["data"][name]["uri"] = f"s3://{s3_bucket}/churn/data/{name}.npz"
    cfg["report"] = {"history": f"s3://{s3_bucket}/history"}
    cfg["accuracy"]["workers"] = 2
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (repo / "models").mkdir()
    shutil.copy2(tmp_path / "weak" / "churn.joblib", repo / "models" / "churn.joblib")
    run_mlci("models", "add", "models/churn.joblib", cwd=repo, check=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "churn"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **env})
    proc = run_mlci("train", "--out", str(tmp_path / "out"), cwd=repo, timeout=900, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "train.json").read_text())
    assert result["status"] == "published" and result["evaluation"]["verdict"] == "PASS"
    assert result["outputs"]["churn.joblib"] == _sha(data / "churn.joblib")  # the image trained the same bytes
    assert _sha(data / "churn.joblib") in (repo / "models.lock").read_text()
