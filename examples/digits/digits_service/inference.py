"""Entry points for mlci's accuracy engine: `load()` once per worker, `predict(batch)` per batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Model, default_model_path

_model: Model | None = None


def load() -> Model:
    global _model
    _model = Model.load(default_model_path())
    return _model


def _batch(inputs: Any) -> np.ndarray:
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"expected a batch of 64-pixel images, got shape {x.shape}")
    return x


def predict(inputs: Any, model: Model | None = None) -> list[int]:
    m = model or _model or load()
    return m.predict(_batch(inputs)).tolist()


def predict_proba(inputs: Any, model: Model | None = None) -> list[list[float]]:
    """The ten class probabilities per image (a suite with `output: probabilities` gates AUC on them)."""
    m = model or _model or load()
    return m.scores(_batch(inputs)).tolist()
