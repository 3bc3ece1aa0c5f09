"""Fixtures for the accuracy engine's end-to-end tests: trained digits models and a service copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "digits"


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """good/digits.npz (~0.93), bad/digits.npz (degraded, ~0.82) and the 6,471-sample test set."""
    out = tmp_path_factory.mktemp("digits-train")
    train = EXAMPLE / "training" / "train.py"
    for extra in ([], ["--degraded"]):
        subprocess.run([sys.executable, str(train), "--out", str(out), *extra], check=True, capture_output=True)
    (out / "good").mkdir()
    (out / "bad").mkdir()
    shutil.copy(out / "digits.npz", out / "good" / "digits.npz")
    shutil.copy(out / "digits-degraded.npz", out / "bad" / "digits.npz")
    return {"good": out / "good", "bad": out / "bad", "data": out / "digits-test.npz"}


def private_copy(example: Path, dst: Path, test_set: Path) -> Path:
    """A copy of an example service (no models, no outputs) with its test set at data/<example>-test.npz."""
    shutil.copytree(example, dst, ignore=shutil.ignore_patterns("models", ".mlci", "__pycache__"))
    (dst / "data").mkdir()
    shutil.copy(test_set, dst / "data" / f"{example.name}-test.npz")
    return dst


@pytest.fixture()
def service(tmp_path: Path, digits: dict[str, Path]) -> Path:
    """A private copy of the digits service with the test set at data/digits-test.npz."""
    return private_copy(EXAMPLE, tmp_path / "digits", digits["data"])


CHURN = ROOT / "examples" / "churn"


@pytest.fixture(scope="session")
def churn_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """good/churn.joblib (accuracy ~0.95, AUC ~0.98), bad/churn.joblib (5 small boosting rounds: accuracy ~0.85,
    macro-F1 ~0.81, AUC ~0.90) and both 20,000-row data sets, made by the example's own deterministic training
    script."""
    out = tmp_path_factory.mktemp("churn-train")
    train = CHURN / "training" / "train.py"
    subprocess.run([sys.executable, str(train), "--out", str(out / "good")], check=True, capture_output=True)
    (out / "weak.json").write_text('{"max_iter": 5, "learning_rate": 0.3, "max_leaf_nodes": 4}')
    subprocess.run([sys.executable, str(train), "--data", str(out / "good" / "churn-train.npz"), "--out",
                    str(out / "bad"), "--params", str(out / "weak.json")], check=True, capture_output=True)
    return {"good": out / "good", "bad": out / "bad", "data": out / "good" / "churn-test.npz"}


@pytest.fixture()
def churn(tmp_path: Path, churn_files: dict[str, Path]) -> Path:
    """A private copy of the churn service with the test set at data/churn-test.npz."""
    return private_copy(CHURN, tmp_path / "churn", churn_files["data"])
