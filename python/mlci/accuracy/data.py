"""Labelled test sets: .npz (arrays), .csv and .jsonl (any JSON inputs), read into one shape.

Labels are kept as strings for classification (so `3`, `3.0` and `"3"` compare equal and a label-encoding
mismatch between data and model shows up as "labels the model emits that the dataset never has") and as
floats for regression.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

FORMATS = ("npz", "csv", "jsonl")


def label_key(value: Any) -> str:
    """Canonical string for a class label (ints, integral floats and their strings coincide)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return str(int(f)) if f.is_integer() else value
    return str(value)


@dataclass
class Dataset:
    path: Path
    format: str
    ids: list[str]
    inputs: Any  # np.ndarray (npz) or list of JSON values
    labels: list[Any]  # raw labels, JSON-compatible

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, indices: list[int] | np.ndarray) -> Any:
        """The inputs at these rows, as a batch for predict (array rows, or a list of values)."""
        if isinstance(self.inputs, np.ndarray):
            return self.inputs[np.asarray(indices, dtype=np.int64)]
        base = self.path.parent
        out = []
        for i in indices:
            value = self.inputs[int(i)]
            if isinstance(value, str) and value and not os.path.isabs(value) and (base / value).is_file():
                value = str(base / value)  # file paths are relative to the dataset
            out.append(value)
        return out


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    ext = path.suffix.lstrip(".").lower()
    if ext not in FORMATS:
        raise UserError(f"cannot tell the format of {path}", hint=f"use one of .{', .'.join(FORMATS)} or set `format:`")
    return ext


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def load(path: Path, fmt: str | None = None, inputs: str = "x", label: str = "y", id_field: str | None = None) -> Dataset:
    """Read a dataset file; every problem is a UserError naming the file and the missing piece."""
    if not path.is_file():
        raise UserError(f"dataset file {path} not found", hint="check the dataset uri, or pass --data PATH")
    fmt = detect_format(path, fmt)
    try:
        if fmt == "npz":
            ds = _load_npz(path, inputs, label, id_field)
        elif fmt == "csv":
            with open(path, newline="", encoding="utf-8") as fh:
                ds = _from_rows(path, "csv", list(csv.DictReader(fh)), inputs, label, id_field)
        else:
            ds = _from_rows(path, "jsonl", _read_jsonl(path), inputs, label, id_field)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"cannot read dataset {path}: {exc}", hint=f"is it a valid .{fmt} file?") from None
    if len(ds) == 0:
        raise UserError(f"dataset {path} is empty", hint="a test set needs labelled samples")
    if len(set(ds.ids)) != len(ds.ids):
        raise UserError(f"dataset {path} has duplicate sample ids", hint="ids must be unique (or drop `id:`)")
    missing = [ds.ids[i] for i, y in enumerate(ds.labels) if _missing_label(y)]
    if missing:
        raise UserError(f"dataset {path}: {len(missing)} sample(s) have no label (NaN), e.g. id "
                        f"{', '.join(missing[:5])}", hint="fix or drop those rows: a missing label is not a class")
    return ds


def _missing_label(y: Any) -> bool:
    """NaN (float, numpy or the text 'nan') or None: not a class and not a number."""
    if y is None:
        return True
    if isinstance(y, float):
        return y != y
    return isinstance(y, str) and y.strip().lower() == "nan"


def _load_npz(path: Path, inputs: str, label: str, id_field: str | None) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        for key in (inputs, label):
            if key not in keys:
                raise UserError(f"array '{key}' missing from {path}", hint=f"arrays present: {', '.join(keys)}; set `inputs:`/`label:`")
        x, y = z[inputs], z[label]
        id_key = id_field or ("id" if "id" in keys else None)
        if id_field and id_field not in keys:
            raise UserError(f"id array '{id_field}' missing from {path}", hint=f"arrays present: {', '.join(keys)}")
        ids = [str(_py(v)) for v in z[id_key]] if id_key else [str(i) for i in range(len(y))]
    if len(x) != len(y) or len(ids) != len(y):
        raise UserError(f"{path}: '{inputs}' has {len(x)} rows but '{label}' has {len(y)}", hint="arrays must align")
    return Dataset(path, "npz", ids, x, [_py(v) for v in y])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON: {exc.msg}", hint="one JSON object per line") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object", hint="one JSON object per line")
            rows.append(row)
    return rows


def _number(value: str) -> Any:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return int(f) if f.is_integer() and "." not in value and "e" not in value.lower() else f


def _from_rows(path: Path, fmt: str, rows: list[dict[str, Any]], inputs: str, label: str, id_field: str | None) -> Dataset:
    if not rows:
        return Dataset(path, fmt, [], [], [])
    cols = [c.strip() for c in inputs.split(",")]
    ids, xs, ys = [], [], []
    for i, row in enumerate(rows):
        where = f"{path}:{i + 2 if fmt == 'csv' else i + 1}"
        missing = [k for k in [*cols, label, *([id_field] if id_field else [])] if k not in row]
        if missing:
            raise UserError(f"{where}: field(s) {', '.join(missing)} missing", hint=f"fields present: {', '.join(map(str, row))}")
        if fmt == "csv":
            x = {c: _number(row[c]) for c in cols} if len(cols) > 1 else _number(row[cols[0]])
            y = _number(row[label])
        else:
            x = {c: row[c] for c in cols} if len(cols) > 1 else row[cols[0]]
            y = row[label]
        if y is None or y == "":
            raise UserError(f"{where}: empty label", hint="every sample needs a label")
        ids.append(str(row[id_field]) if id_field else str(i))
        xs.append(x)
        ys.append(y)
    return Dataset(path, fmt, ids, xs, ys)
