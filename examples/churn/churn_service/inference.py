"""Entry points for mlci's accuracy engine: `load()` once per worker, then a predict function per batch.

`predict` returns class probabilities, one [P(stays), P(churns)] row per customer (ml-ci.yaml: `output:
probabilities`); `churn_score` returns P(churns) alone (`output: scores`), which the `retention` suite uses at its
own decision threshold. The HTTP server uses the same functions.
"""

from __future__ import annotations

from typing import Any

from . import model as churn_model

_model: Any = None


def load() -> Any:
    global _model
    _model = churn_model.load()
    return _model


def predict(inputs: Any, model: Any = None) -> list[list[float]]:
    m = model or _model or load()
    return m.predict_proba(churn_model.as_batch(inputs)).tolist()


def churn_score(inputs: Any, model: Any = None) -> list[float]:
    m = model or _model or load()
    return m.predict_proba(churn_model.as_batch(inputs))[:, 1].tolist()
