"""Metrics over per-sample outcomes: pure functions, numpy arrays in, numbers out.

The classification statistics accept an extra leading axis (`axis=-1`) so scipy's bootstrap can
evaluate thousands of resamples at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def encode(labels: list[str], predictions: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Integer codes over the union of labels and predictions, in natural (numeric-aware) order."""
    classes = sorted(set(labels) | set(predictions), key=natural)
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[v] for v in labels]), np.array([index[v] for v in predictions])


def natural(value: str) -> tuple[int, float, str]:
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


def auc(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """ROC AUC = Mann-Whitney U / (n1 n0) from average ranks (scipy's rankdata), ties counted half.

    Vectorised over leading axes (bootstrap resamples); nan where a resample lacks one of the two classes.
    Scores may be +-inf (a sample counted wrong or right by the error policy ranks last or first).
    """
    y = np.moveaxis(np.asarray(labels).astype(bool), axis, -1)
    s = np.moveaxis(np.asarray(scores, dtype=float), axis, -1)
    from scipy.stats import rankdata  # here, not at the top: every prediction worker imports this module

    ranks = rankdata(s, axis=-1)
    n1 = y.sum(axis=-1)
    n0 = y.shape[-1] - n1
    u = np.sum(ranks * y, axis=-1) - n1 * (n1 + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where((n1 > 0) & (n0 > 0), u / np.maximum(n1 * n0, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def auc_ovr(codes: np.ndarray, scores: np.ndarray, classes: list[int]) -> np.ndarray | float:
    """Multi-class AUC, one-vs-rest, macro-averaged over `classes` (scikit-learn's multi_class="ovr").

    `codes` (..., n) are class indices, `scores` (..., n, k) one column per class; classes absent from a
    resample are skipped.
    """
    per = np.stack([np.asarray(auc(codes == c, scores[..., c]), dtype=float) for c in classes])
    with np.errstate(invalid="ignore"):
        out = np.nanmean(per, axis=0) if per.size else np.float64(np.nan)
    return float(out) if np.ndim(out) == 0 else out


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


def latency_summary(latency_ms: np.ndarray, timing: str = "batch") -> dict[str, Any]:
    """Per-sample percentiles when every sample was timed on its own; with batch timing each sample holds its
    batch's mean, whose percentiles say nothing about a request's latency, so only the mean is reported."""
    if latency_ms.size == 0:
        return {"p50": None, "p95": None, "mean": None, "timing": timing}
    mean = float(np.mean(latency_ms))
    if timing != "per_sample":
        return {"p50": None, "p95": None, "mean": mean, "timing": "batch"}
    return {"p50": float(np.percentile(latency_ms, 50)), "p95": float(np.percentile(latency_ms, 95)), "mean": mean,
            "timing": "per_sample"}
