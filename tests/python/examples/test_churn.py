"""The churn example is what its files say: data and model reproducible byte for byte, versions pinned alike."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import sklearn
import yaml

from ..conftest import ROOT

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
