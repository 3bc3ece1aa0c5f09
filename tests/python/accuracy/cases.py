"""Helpers for the engine tests that run both examples: digits (labels) and churn (probabilities)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.python.conftest import run_mlci

DATASET = {"digits": "digits-test", "churn": "churn-test"}


def configure(root: Path, suites: dict[str, Any], **accuracy: Any) -> Path:
    """The example's own ml-ci.yaml with these suites (and accuracy keys); its data set read from data/."""
    path = root / "ml-ci.yaml"
    cfg = yaml.safe_load(path.read_text())
    name = cfg["service"]
    ds = cfg["artifacts"]["data"][DATASET[name]]
    ds["uri"] = f"data/{DATASET[name]}.npz"
    ds.pop("sha256", None)
    cfg["accuracy"]["suites"] = {k: {"dataset": DATASET[name], **v} for k, v in suites.items()}
    cfg["accuracy"].update(accuracy)
    cfg.pop("train", None)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_suite(root: Path, suite: str, models: Path, out: Path, *args: str, env: dict[str, str] | None = None):
    # one OpenMP thread per process, as the churn image sets it: scikit-learn's boosting otherwise starts a thread
    # per core in every worker of a shared, loaded machine
    full = {"MLCI_CACHE": str(root.parent / "cache"), "MLCI_MODELS_DIR": str(models), "OMP_NUM_THREADS": "1",
            "GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567", **(env or {})}
    return run_mlci("accuracy", "run", "--suite", suite, "--out", str(out), *args, cwd=root, env=full, timeout=300)


def record(out: Path, suite: str) -> dict[str, Any]:
    return json.loads((out / "accuracy" / suite / "accuracy.json").read_text())


def write_module(root: Path, name: str, source: str) -> None:
    (root / f"{name}.py").write_text(source)
