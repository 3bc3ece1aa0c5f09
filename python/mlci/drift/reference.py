"""Reference statistics: what the model was trained on, summarised compactly enough to store next to the model.

Per numeric feature: row count, missing rate, range, mean/sd, PSI bins (reference deciles, or one bin per value
for features with few distinct values) with counts, and the empirical CDF -- exact when the feature has at most
1,024 distinct values (pixels, counts, codes), else a 513-point quantile sketch (max CDF error 1/512) -- so the
check can run a KS test without the training set. Per categorical feature: counts of the 200 most frequent
categories plus an `other` count. The prediction reference (label distribution of the training data unless
the dataset carries predictions) is stored the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import UserError
from .table import Columns, infer_kind, load_table, to_categorical, to_numeric

SCHEMA = "mlci.drift.reference/1"
EXACT_CDF_MAX_VALUES = 1024
SKETCH_POINTS = 513
PSI_BINS = 10
TOP_CATEGORIES = 200


def _f(x: float) -> float:
    return float(x)


def empirical_cdf(values: np.ndarray) -> dict[str, Any]:
    """The CDF as knots x with left limits `pl` and values `pr`; `interp` says what happens between knots.

    step: the exact ECDF (few distinct values). linear: quantile sketch, linear between knots; atoms (a value
    repeated across quantiles) keep their jump as pl < pr at that knot.
    """
    uniq, counts = np.unique(values, return_counts=True)
    n = values.size
    if uniq.size <= EXACT_CDF_MAX_VALUES:
        pr = np.cumsum(counts) / n
        pl = np.concatenate([[0.0], pr[:-1]])
        return {"interp": "step", "x": uniq.tolist(), "pl": pl.tolist(), "pr": pr.tolist()}
    probs = np.linspace(0.0, 1.0, SKETCH_POINTS)
    q = np.quantile(values, probs, method="inverted_cdf")
    knots, first = np.unique(q, return_index=True)
    last = np.concatenate([first[1:] - 1, [q.size - 1]])
    pl = probs[first].copy()
    pr = probs[last].copy()
    pl[0] = 0.0
    return {"interp": "linear", "x": knots.tolist(), "pl": pl.tolist(), "pr": pr.tolist()}


def psi_edges(values: np.ndarray) -> list[float]:
    """Inner bin edges: midpoints between values when there are few distinct ones, else unique deciles."""
    uniq = np.unique(values)
    if uniq.size <= PSI_BINS:
        return ((uniq[1:] + uniq[:-1]) / 2).tolist()
    inner = np.quantile(values, np.linspace(0, 1, PSI_BINS + 1)[1:-1])
    return np.unique(inner).tolist()


def bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts in (-inf, e0), [e0, e1), ..., [e_last, inf): open ends so production values always land in a bin."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    return np.bincount(idx, minlength=len(edges) + 1)


def numeric_stats(raw: list[Any] | np.ndarray, name: str) -> dict[str, Any]:
    values, bad = to_numeric(raw)
    if bad:
        raise UserError(f"column '{name}' mixes numbers and text (e.g. {bad[0]!r})",
                        hint=f"declare it categorical: drift.features.{name}.kind: categorical")
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise UserError(f"column '{name}' has no values in the reference data", hint="exclude it: drift.exclude")
    edges = psi_edges(present)
    return {
        "kind": "numeric",
        "n": int(values.size),
        "missing_rate": _f(1 - present.size / values.size),
        "min": _f(present.min()),
        "max": _f(present.max()),
        "mean": _f(present.mean()),
        "std": _f(present.std(ddof=1)) if present.size > 1 else 0.0,
        "bins": {"edges": edges, "counts": bin_counts(present, edges).tolist()},
        "cdf": empirical_cdf(present),
    }


def categorical_stats(raw: list[Any] | np.ndarray) -> dict[str, Any]:
    labels = to_categorical(raw)
    present = [v for v in labels if v is not None]
    counts = Counter(present)
    top = counts.most_common(TOP_CATEGORIES)
    kept = sum(c for _, c in top)
    return {
        "kind": "categorical",
        "n": len(labels),
        "missing_rate": _f(1 - len(present) / len(labels)) if labels else 0.0,
        "categories": {k: int(c) for k, c in top},
        "other": int(len(present) - kept),
        "truncated": len(counts) > TOP_CATEGORIES,
    }


def feature_stats(raw: list[Any] | np.ndarray, name: str, kind: str | None, *, prediction: bool = False) -> dict[str, Any]:
    kind = kind or infer_kind(raw, prediction=prediction)
    return numeric_stats(raw, name) if kind == "numeric" else categorical_stats(raw)


def build_reference(columns: Columns, *, kinds: dict[str, str | None], exclude: list[str],
                    label: str | None, prediction_field: str, prediction_kind: str | None,
                    source: dict[str, Any]) -> dict[str, Any]:
    """Statistics for every column except excluded ones and the label; the label feeds the prediction reference."""
    if not columns:
        raise UserError("the reference data has no columns")
    unknown = sorted(set(kinds) - set(columns))
    if unknown:
        raise UserError(f"drift.features names column(s) not in the data: {', '.join(unknown)}",
                        hint="available: " + ", ".join(list(columns)[:20]) + (" ..." if len(columns) > 20 else ""))
    if label and label not in columns:
        raise UserError(f"prediction reference field '{label}' is not in the data",
                        hint="set drift.prediction.reference_field (or the dataset's label) to a column of the data")
    features = {
        name: feature_stats(values, name, kinds.get(name))
        for name, values in columns.items()
        if name not in exclude and name != label and name != prediction_field
    }
    pred_source = label or (prediction_field if prediction_field in columns else None)
    prediction = None
    if pred_source:
        prediction = feature_stats(columns[pred_source], pred_source, prediction_kind, prediction=True)
        prediction.update({"field": prediction_field, "source": pred_source})
    rows = len(next(iter(columns.values())))
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mlci_version": __version__,
        "source": {**source, "rows": rows},
        "features": features,
        "prediction": prediction,
    }


def parse_reference(text: str, where: str) -> dict[str, Any]:
    """Validate a reference file's shape so a wrong file fails with a message, not a KeyError later."""
    try:
        ref = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"reference {where} is not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(ref, dict) or ref.get("schema") != SCHEMA or not isinstance(ref.get("features"), dict):
        raise UserError(f"{where} is not a drift reference (expected schema {SCHEMA})",
                        hint="create one with `mlci drift reference --dataset NAME --out FILE`")
    return ref


def reference_from_file(path: Path, drift_cfg: dict[str, Any], *, fmt: str | None = None, label: str | None = None,
                        default_label: str | None = None, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reference of a data file under the `drift` config section -- the entry point for `mlci train` to
    store a reference next to its training record. `label` must exist when given; `default_label` (the
    dataset's configured label) is used only when the file has it."""
    columns = load_table(path, fmt)
    if not label and default_label and default_label in columns:
        label = default_label
    kinds = {name: f["kind"] for name, f in drift_cfg["features"].items() if f["kind"]}
    return build_reference(columns, kinds=kinds, exclude=drift_cfg["exclude"], label=label,
                           prediction_field=drift_cfg["prediction"]["field"],
                           prediction_kind=drift_cfg["prediction"]["kind"],
                           source=source or {"uri": str(path)})


def dataset_reference(cfg: Any, name: str, drift_cfg: dict[str, Any], *, label: str | None = None) -> dict[str, Any]:
    """The reference of dataset `name` under artifacts.data, fetched sha256-verified by the artifacts engine
    (cache first) -- shared by `mlci drift reference --dataset` and `mlci train`, so both describe the data the
    same way. Cached files are content-addressed (no extension): the format comes from config or the URI."""
    from ..artifacts.api import fetch_dataset
    from ..artifacts.hashing import hash_file

    path = fetch_dataset(cfg, name)
    ds = cfg["artifacts"]["data"][name]
    fmt = ds["format"] or Path(ds["uri"]).suffix.lstrip(".").lower()
    source = {"dataset": name, "uri": ds["uri"], "sha256": hash_file(path)}
    return reference_from_file(path, drift_cfg, fmt=fmt, label=label or drift_cfg["prediction"]["reference_field"],
                               default_label=ds["label"], source=source)
