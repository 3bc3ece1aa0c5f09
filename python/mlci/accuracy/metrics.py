"""Metrics over per-sample outcomes: pure functions, numpy arrays in, numbers out.

The classification statistics accept an extra leading axis (`axis=-1`) so scipy's bootstrap can
evaluate thousands of resamples at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu


def encode(labels: list[str], predictions: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Integer codes over the union of labels and predictions, in natural (numeric-aware) order."""
    classes = sorted(set(labels) | set(predictions), key=_natural)
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[v] for v in labels]), np.array([index[v] for v in predictions])


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _f1_counts(y: np.ndarray, p: np.ndarray, c: int, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.sum((y == c) & (p == c), axis=axis)
    fp = np.sum((y != c) & (p == c), axis=axis)
    fn = np.sum((y == c) & (p != c), axis=axis)
    return tp, fp, fn


def class_f1(y: np.ndarray, p: np.ndarray, c: int, axis: int = -1) -> np.ndarray:
    tp, fp, fn = _f1_counts(y, p, c, axis)
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def macro_f1(y: np.ndarray, p: np.ndarray, axis: int = -1, classes: list[int] | None = None) -> np.ndarray:
    """Mean F1 over the classes present among labels (classes absent from a resample are skipped)."""
    cs = classes if classes is not None else sorted(set(np.unique(y).tolist()))
    stack = np.stack([class_f1(y, p, c, axis) for c in cs])
    with np.errstate(invalid="ignore"):
        return np.nanmean(stack, axis=0)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC = Mann-Whitney U / (n1 n0) (scipy), ties counted half."""
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(mannwhitneyu(pos, neg).statistic / (pos.size * neg.size))


def mae(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(np.abs(y - p), axis=axis)


def rmse(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sqrt(np.mean((y - p) ** 2, axis=axis))


def percentile(x: np.ndarray, q: float, axis: int = -1) -> np.ndarray:
    return np.percentile(x, q, axis=axis)


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def classification_summary(labels: list[str], predictions: list[str]) -> dict[str, Any]:
    """accuracy, per-class precision/recall/F1/support, macro-F1, confusion matrix."""
    n = len(labels)
    if n == 0:
        return {"accuracy": None, "macro_f1": None, "n": 0, "per_class": {}, "confusion": {"labels": [], "matrix": []}}
    classes, y, p = encode(labels, predictions)
    k = len(classes)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y, p), 1)
    per_class = {}
    for i, c in enumerate(classes):
        tp = int(matrix[i, i])
        support = int(matrix[i].sum())
        predicted = int(matrix[:, i].sum())
        prec = tp / predicted if predicted else None
        rec = tp / support if support else None
        f1 = (2 * tp / (support + predicted)) if (support + predicted) else None
        per_class[c] = {"precision": prec, "recall": rec, "f1": f1, "support": support}
    present = [i for i, c in enumerate(classes) if per_class[c]["support"]]
    return {
        "accuracy": float(np.mean(y == p)),
        "macro_f1": _num(float(macro_f1(y, p, classes=present))),
        "n": n,
        "per_class": per_class,
        "confusion": {"labels": classes, "matrix": matrix.tolist()},
    }


def latency_summary(latency_ms: np.ndarray) -> dict[str, float | None]:
    if latency_ms.size == 0:
        return {"p50": None, "p95": None}
    return {"p50": float(np.percentile(latency_ms, 50)), "p95": float(np.percentile(latency_ms, 95))}
