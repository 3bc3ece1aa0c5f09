"""The churn model: a scikit-learn classifier saved with joblib, and where to find its file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

N_FEATURES = 12
CLASSES = (0, 1)  # 0 stays, 1 churns: the column order of predict_proba


def default_model_path() -> Path:
    """$CHURN_MODEL, else $MLCI_MODELS_DIR/churn.joblib (mlci points it at a baseline model for change gates),
    else models/ next to the package, where `mlci models pull` puts it."""
    env = os.environ.get("CHURN_MODEL")
    if env:
        return Path(env)
    models_dir = os.environ.get("MLCI_MODELS_DIR")
    if models_dir:
        return Path(models_dir) / "churn.joblib"
    return Path(__file__).resolve().parent.parent / "models" / "churn.joblib"


def load(path: str | os.PathLike[str] | None = None) -> Any:
    import joblib

    model = joblib.load(path or default_model_path())
    if tuple(int(c) for c in model.classes_) != CLASSES or model.n_features_in_ != N_FEATURES:
        raise ValueError(f"unexpected model: classes {list(model.classes_)}, {model.n_features_in_} features")
    return model


def as_batch(inputs: Any) -> np.ndarray:
    x = np.asarray(inputs, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise ValueError(f"expected a batch of rows with {N_FEATURES} features, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features must be finite numbers")
    return x
