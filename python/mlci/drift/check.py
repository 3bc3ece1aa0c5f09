"""One drift check, data in / data out: reference + sampled log columns + settings -> the drift.json record.

I/O (S3, files, Jenkins) stays in cli.py so this is testable with plain arrays.
"""

from __future__ import annotations

from typing import Any

from ..errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, UserError
from .table import Columns, to_numeric
from .tests import check_categorical, check_numeric, decide

RECORD_SCHEMA = "mlci.drift/1"
METHOD = ("numeric: KS vs the reference CDF (scipy kstwo, two-sample effective n); categorical/prediction "
          "labels: chi-square homogeneity (scipy chi2_contingency); Holm across features; drift = significant "
          "AND PSI >= threshold, or missing/out-of-range rate over threshold")
MAX_NON_NUMERIC = 0.01


def checked_features(ref: dict[str, Any], drift_cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> reference stats of every feature to check (config exclusions applied; prediction included)."""
    out = {name: st for name, st in ref["features"].items() if name not in drift_cfg["exclude"]}
    if ref.get("prediction"):
        out[ref["prediction"]["field"]] = ref["prediction"]
    return out


def schema_problems(features: dict[str, dict[str, Any]], columns: Columns) -> list[str]:
    """Column-by-column differences between the reference and the logs that make a comparison meaningless."""
    problems = []
    for name, st in features.items():
        if name not in columns:
            problems.append(f"column '{name}' ({st['kind']} in the reference) is missing from the logs")
            continue
        if st["kind"] == "numeric":
            _, bad = to_numeric(columns[name])
            present = sum(1 for v in columns[name] if v is not None)
            if bad and len(bad) > MAX_NON_NUMERIC * max(present, 1):
                examples = ", ".join(repr(b) for b in list(dict.fromkeys(map(str, bad)))[:3])
                problems.append(f"column '{name}' is numeric in the reference but holds non-numeric values in the "
                                f"logs ({len(bad)} of {present}, e.g. {examples})")
    return problems


def thresholds_for(names: list[str], drift_cfg: dict[str, Any]) -> dict[str, dict[str, float]]:
    out = {}
    for name in names:
        own = drift_cfg["features"].get(name) or {}
        out[name] = {key: own.get(key) if own.get(key) is not None else drift_cfg[key]
                     for key in ("psi", "max_missing_increase", "max_out_of_range")}
    return out


def run_check(ref: dict[str, Any], columns: Columns, drift_cfg: dict[str, Any]) -> dict[str, Any]:
    """Compare; returns the record without I/O metadata (cli.py adds logs/reference/git/timing)."""
    features = checked_features(ref, drift_cfg)
    problems = schema_problems(features, columns)
    if problems:
        raise UserError("logs do not match the reference schema:\n  " + "\n  ".join(problems),
                        hint="log the same fields the model was trained on (nested fields flatten to a.b, "
                             "lists to a.0, a.1 ...), rebuild the reference, or list columns in drift.exclude")
    rows = len(next(iter(columns.values()))) if columns else 0
    pred_field = ref["prediction"]["field"] if ref.get("prediction") else None
    results = []
    for name, st in features.items():
        res = check_numeric(st, columns[name]) if st["kind"] == "numeric" else check_categorical(st, columns[name])
        res.update({"name": name, "kind": st["kind"], "role": "prediction" if name == pred_field else "feature"})
        results.append(res)
    alpha = drift_cfg["alpha"]
    decide(results, thresholds_for([r["name"] for r in results], drift_cfg), alpha)
    drifted = [r for r in results if r["drifted"]]
    inconclusive = rows < drift_cfg["min_rows"]
    if inconclusive:
        verdict, code = "INCONCLUSIVE", EXIT_INCONCLUSIVE
        summary = f"only {rows} log rows in the window (< drift.min_rows {drift_cfg['min_rows']}): no verdict"
    elif drifted:
        verdict, code = "DRIFT", EXIT_FAIL
        named = ", ".join(f"{r['name']} ({r['reasons'][0]})" for r in drifted[:5])
        more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
        summary = f"{len(drifted)} of {len(results)} feature(s) drifted: {named}{more}"
    else:
        verdict, code = "NO_DRIFT", EXIT_OK
        summary = f"no drift in {len(results)} feature(s) over {rows} rows (family-wise level {alpha:g})"
    extra = sorted(set(columns) - set(features))
    return {
        "schema": RECORD_SCHEMA,
        "verdict": verdict,
        "exit_code": code,
        "summary": summary,
        "settings": {"alpha": alpha, "psi": drift_cfg["psi"], "correction": "holm", "method": METHOD,
                     "max_missing_increase": drift_cfg["max_missing_increase"],
                     "max_out_of_range": drift_cfg["max_out_of_range"]},
        "features": results,
        "drifted": [r["name"] for r in drifted],
        "not_checked": extra[:100],
    }
