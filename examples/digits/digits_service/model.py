"""A softmax-regression model over 8x8 digit images, stored as an .npz of weights.

Pure numpy so the service image stays small; the same functions serve HTTP and the accuracy engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

N_FEATURES = 64
N_CLASSES = 10


class Model:
    def __init__(self, weights: np.ndarray, bias: np.ndarray):
        if weights.shape != (N_FEATURES, N_CLASSES) or bias.shape != (N_CLASSES,):
            raise ValueError(f"bad model shapes {weights.shape}, {bias.shape}")
        self.weights = weights
        self.bias = bias

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Model:
        with np.load(path) as z:
            return cls(z["weights"], z["bias"])

    def scores(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, N_FEATURES) / 16.0
        logits = x @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.scores(x).argmax(axis=1)


def default_model_path() -> Path:
    """$DIGITS_MODEL, else $MLCI_MODELS_DIR/digits.npz (mlci points it at a baseline model for change gates),
    else models/ next to the package, where `mlci models pull` puts it."""
    env = os.environ.get("DIGITS_MODEL")
    if env:
        return Path(env)
    models_dir = os.environ.get("MLCI_MODELS_DIR")
    if models_dir:
        return Path(models_dir) / "digits.npz"
    return Path(__file__).resolve().parent.parent / "models" / "digits.npz"
