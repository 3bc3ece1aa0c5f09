"""Tabular data as columns: flattening log records, loading dataset files, typing columns.

Reference and logs go through the same flattening so their column names agree: nested objects become
`a.b`, lists of scalars become `a.0, a.1, ...` (the digits service logs `x: [64 numbers]` -> x.0..x.63, and a
2-D npz array `x` gives the same names).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

Columns = dict[str, list[Any]]
MISSING_STRINGS = frozenset({"", "na", "n/a", "nan", "null", "none"})


def flatten(record: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flatten a JSON record into dotted column names (a list of scalars becomes name.0, name.1, ...)."""
    out = {} if out is None else out
    if isinstance(record, dict):
        for key, value in record.items():
            flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(record, list) and prefix:
        for i, value in enumerate(record):
            flatten(value, f"{prefix}.{i}", out)
    else:
        out[prefix or "value"] = record
    return out


def rows_to_columns(rows: Iterable[dict[str, Any]]) -> Columns:
    """Row dicts -> columns; a key absent from a row is a missing value (None) there."""
    rows = list(rows)
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            names.setdefault(key, None)
    return {name: [row.get(name) for row in rows] for name in names}


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_STRINGS


def to_numeric(values: list[Any] | np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Floats with NaN for missing values, plus the values that are present but not numbers (schema problems)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64), []
    out = np.empty(len(values), dtype=np.float64)
    bad: list[Any] = []
    for i, value in enumerate(values):
        if is_missing(value):
            out[i] = np.nan
        elif isinstance(value, bool):
            out[i] = np.nan
            bad.append(value)
        elif isinstance(value, (int, float)):
            out[i] = float(value)
        else:
            try:
                out[i] = float(str(value))
            except ValueError:
                out[i] = np.nan
                bad.append(value)
    return out, bad


def to_categorical(values: list[Any] | np.ndarray) -> list[str | None]:
    """Category labels as strings (1 and 1.0 and "1" are one category), None for missing."""
    out: list[str | None] = []
    for value in values.tolist() if isinstance(values, np.ndarray) else values:
        if is_missing(value):
            out.append(None)
        elif isinstance(value, float) and value.is_integer():
            out.append(str(int(value)))
        elif isinstance(value, str):
            text = value.strip()
            try:
                number = float(text)
            except ValueError:
                out.append(text)
            else:
                out.append(str(int(number)) if number.is_integer() else text)
        else:
            out.append(str(value))
    return out


def infer_kind(values: list[Any] | np.ndarray, *, prediction: bool = False) -> str:
    """numeric or categorical. Predictions that are few distinct integers (class labels) are categorical."""
    numbers, bad = to_numeric(values)
    if bad:
        return "categorical"
    present = numbers[~np.isnan(numbers)]
    if prediction and present.size and np.all(present == np.round(present)) and np.unique(present).size <= 50:
        return "categorical"
    return "numeric"


def parse_jsonl(text: str, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of a JSON-lines text, and messages for lines that are not JSON objects."""
    rows, errors = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{where}:{number}: not JSON ({exc.msg})")
            continue
        if not isinstance(record, dict):
            errors.append(f"{where}:{number}: a JSON {type(record).__name__}, not an object")
            continue
        rows.append(flatten(record))
    return rows, errors


def parse_csv(text: str, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of a CSV text with a header row (each file brings its own header)."""
    reader = csv.DictReader(io.StringIO(text))
    rows, errors = [], []
    for row in reader:
        if None in row:  # more cells than header names
            errors.append(f"{where}:{reader.line_num}: {len(row[None])} cell(s) beyond the header")
            row.pop(None)
        rows.append(dict(row))
    return rows, errors


def load_table(path: Path, fmt: str | None = None) -> Columns:
    """A dataset file as columns: npz (arrays of 2 or more dimensions expand to name.j, row-major), csv or jsonl."""
    fmt = fmt or path.suffix.lstrip(".").lower()
    if not path.is_file():
        raise UserError(f"data file {path} not found", hint="pass an existing --data file or pull the dataset first")
    if fmt == "npz":
        columns: Columns = {}
        try:
            with np.load(path, allow_pickle=False) as npz:
                for name in npz.files:
                    array = npz[name]
                    if array.ndim == 1:
                        columns[name] = array  # type: ignore[assignment]
                    elif array.ndim >= 2:  # images (N x 8 x 8) too: one column per value, row-major
                        flat = array.reshape(array.shape[0], -1)
                        for j in range(flat.shape[1]):
                            columns[f"{name}.{j}"] = flat[:, j]  # type: ignore[assignment]
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {path} as npz: {exc}") from None
        return columns
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text ({fmt})", hint="pass .npz, .csv or .jsonl data") from None
    if fmt in ("jsonl", "ndjson", "json"):
        rows, errors = parse_jsonl(text, str(path))
    elif fmt == "csv":
        rows, errors = parse_csv(text, str(path))
    else:
        raise UserError(f"unknown data format '{fmt}' for {path}", hint="use .npz, .csv or .jsonl")
    if errors:
        raise UserError(f"{len(errors)} malformed record(s) in {path}; first: {errors[0]}")
    return rows_to_columns(rows)
