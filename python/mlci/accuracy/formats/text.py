""".csv and .jsonl test sets: indexed in one streaming pass, rows parsed only when a worker needs them.

What stays in the controller's memory: each row's byte offset (8 bytes a row, also written to the run's scratch
directory for the workers to memory-map), its label and its id (Python values), plus any columns a folder
dataset asks to keep. Inputs are not kept: a worker seeks to a row's offset and parses that one record. CSV
values that look like numbers become numbers (`3` an int, `2.5` a float); JSONL values stay as they are.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ...errors import UserError
from ..data import Dataset, DataSpec, Ids


class _Lines:
    """Decoded lines of a binary file, for csv.reader, counting physical lines as they are read."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.lineno = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.fh.readline()
        if not line:
            raise StopIteration
        self.lineno += 1
        return line.decode("utf-8")


def number(value: str | None) -> Any:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value
    return int(f) if f.is_integer() and "." not in value and "e" not in value.lower() else f  # type: ignore[union-attr]


def compact(values: list[Any]) -> np.ndarray:
    """A column as an int64 / float64 array when every value is a number, else an object array."""
    if values and all(type(v) is int for v in values):
        try:
            return np.asarray(values, dtype=np.int64)
        except OverflowError:
            pass
    if values and all(type(v) in (int, float) for v in values):
        return np.asarray(values, dtype=np.float64)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def open_text(path: Path, fmt: str, spec: DataSpec, workdir: Path, keep: tuple[str, ...] = ()) -> TextDataset:
    """Index a csv/jsonl file: offsets, labels, ids (and the `keep` columns), checking every row."""
    try:
        if fmt == "csv":
            header, inputs, offsets, labels, ids, kept = _index_csv(path, spec, keep)
        else:
            header, inputs, offsets, labels, ids, kept = _index_jsonl(path, spec, keep)
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read dataset {path}: {exc}", hint=f"is it a valid UTF-8 .{fmt} file?") from None
    except OSError as exc:
        raise UserError(f"cannot read dataset {path}: {exc}") from None
    off = np.asarray(offsets, dtype=np.int64)
    off_path = workdir / "offsets.npy"
    np.save(off_path, off)
    if ids is not None and len(set(ids)) != len(ids):
        raise UserError(f"dataset {path} has duplicate sample ids", hint="ids must be unique (or drop `id:`)")
    ds = TextDataset(path, fmt, spec, len(off), inputs, header, str(off_path), workdir, owns_workdir=True)
    ds.__dict__["labels"] = compact(labels)
    ds.__dict__["ids"] = Ids(len(off), compact(ids) if ids is not None else None)
    ds.kept = kept
    return ds


def _index_csv(path: Path, spec: DataSpec, keep: tuple[str, ...]):  # noqa: ANN202 - internal tuple
    with open(path, "rb") as fh:
        lines = _Lines(fh)
        reader = csv.reader(lines)
        header = next(reader, None)
        if header is None:
            return [], [], [], [], None, {}
        header = [h.strip() for h in header]
        if header:
            header[0] = header[0].lstrip("\ufeff")  # a byte-order mark (spreadsheet exports)
        needed = [spec.label, *([spec.id] if spec.id else []), *keep]
        missing = [c for c in needed if c not in header]
        if missing:
            raise UserError(f"{path}:1: field(s) {', '.join(missing)} missing", hint=f"fields present: {', '.join(header)}")
        inputs = spec.resolve_inputs(header, ["x"], f"{path}:1")
        pos = {c: header.index(c) for c in header}
        li, ii = pos[spec.label], (pos[spec.id] if spec.id else None)
        last = max(pos[c] for c in [*inputs, *needed])
        offsets: list[int] = []
        labels: list[Any] = []
        ids: list[str] | None = [] if spec.id else None
        kept: dict[str, list[Any]] = {k: [] for k in keep}
        while True:
            start, first_line = fh.tell(), lines.lineno + 1
            row = next(reader, None)
            if row is None:
                break
            if not row:
                continue  # a blank line
            if len(row) <= last:
                absent = [c for c in [*inputs, *needed] if pos[c] >= len(row)]
                raise UserError(f"{path}:{first_line}: field(s) {', '.join(absent)} missing",
                                hint=f"the header has {len(header)} fields, this row {len(row)}")
            y = number(row[li])
            if y == "":
                raise UserError(f"{path}:{first_line}: empty label", hint="every sample needs a label")
            offsets.append(start)
            labels.append(y)
            if ids is not None:
                ids.append(row[ii])
            for k in keep:
                kept[k].append(row[pos[k]])
    return header, inputs, offsets, labels, ids, kept


def _index_jsonl(path: Path, spec: DataSpec, keep: tuple[str, ...]):  # noqa: ANN202 - internal tuple
    offsets: list[int] = []
    labels: list[Any] = []
    ids: list[str] | None = [] if spec.id else None
    kept: dict[str, list[Any]] = {k: [] for k in keep}
    inputs: list[str] | None = None
    header: list[str] = []
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            start = fh.tell()
            line = fh.readline()
            if not line:
                break
            lineno += 1
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON: {exc.msg}", hint="one JSON object per line") from None
            except ValueError as exc:  # e.g. an integer of more than 4,300 digits
                raise UserError(f"{path}:{lineno}: cannot read the row: {str(exc)[:160]}",
                                hint="one JSON object per line") from None
            except RecursionError:
                raise UserError(f"{path}:{lineno}: the row is nested too deeply to read",
                                hint="one flat JSON object per line (inputs may nest a few levels)") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object", hint="one JSON object per line")
            if inputs is None:
                header = list(row)
                inputs = spec.resolve_inputs(header, ["x"], f"{path}:{lineno}") if spec.label in row else []
            wanted = [*inputs, spec.label, *([spec.id] if spec.id else []), *keep]
            missing = [k for k in wanted if k not in row]
            if missing:
                raise UserError(f"{path}:{lineno}: field(s) {', '.join(missing)} missing",
                                hint=f"fields present: {', '.join(map(str, row))}")
            y = row[spec.label]
            if y is None or y == "":
                raise UserError(f"{path}:{lineno}: empty label", hint="every sample needs a label")
            offsets.append(start)
            labels.append(y)
            if ids is not None:
                ids.append(str(row[spec.id]))
            for k in keep:
                kept[k].append(row[k])
    return header, inputs or [], offsets, labels, ids, kept


class TextDataset(Dataset):
    def __init__(self, path: Path, fmt: str, spec: DataSpec, n: int, input_names: list[str], header: list[str],
                 offsets: str, workdir: Path | None = None, owns_workdir: bool = False):
        super().__init__(path, spec, n, input_names, workdir, owns_workdir)
        self.format = fmt
        self.header = header
        self.offsets_path = offsets
        self.kept: dict[str, list[Any]] = {}
        self.raw: set[str] = set()  # csv columns kept as strings (file names such as 007.wav)
        self._fh: BinaryIO | None = None
        self._offsets: np.ndarray | None = None

    def _row(self, i: int) -> dict[str, Any]:
        if self._fh is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open for the worker's life
            self._offsets = np.load(self.offsets_path, mmap_mode="r")
        assert self._offsets is not None
        self._fh.seek(int(self._offsets[i]))
        if self.format == "jsonl":
            return json.loads(self._fh.readline())
        row = next(csv.reader(_Lines(self._fh)))
        return {h: v if h in self.raw else number(v) for h, v in zip(self.header, row, strict=False)}

    def _labels(self) -> np.ndarray:
        return compact([self._row(i)[self.spec.label] for i in range(self.n)])

    def label_values(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        if "labels" in self.__dict__:  # the controller indexed them
            return super().label_values(indices)
        return [self._row(int(i))[self.spec.label] for i in indices]  # a worker reads only these rows

    def _ids(self) -> Ids:
        if not self.spec.id:
            return Ids(self.n)
        return Ids(self.n, lambda idx: [str(self._row(int(i))[self.spec.id]) for i in idx])

    def _columns(self, idx: np.ndarray) -> dict[str, Any]:
        rows = [self._row(int(i)) for i in idx]
        cols = {c: [r[c] for r in rows] for c in self.input_names}
        if len(self.input_names) == 1 and self.spec.batch_as == "auto":
            base = self.path.parent  # a lone string column naming files next to the dataset: absolute paths
            name = self.input_names[0]
            cols[name] = [str(base / v) if isinstance(v, str) and v and not os.path.isabs(v)
                          and (base / v).is_file() else v for v in cols[name]]
        return cols

    def worker_spec(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.path), "spec": self.spec.to_json(), "n": self.n,
                "inputs": self.input_names, "header": self.header, "offsets": self.offsets_path,
                "raw": sorted(self.raw)}

    @classmethod
    def from_spec(cls, s: dict[str, Any]) -> TextDataset:
        ds = cls(Path(s["path"]), s["format"], DataSpec.from_json(s["spec"]), s["n"], s["inputs"], s["header"],
                 s["offsets"])
        ds.raw = set(s.get("raw") or ())
        return ds
