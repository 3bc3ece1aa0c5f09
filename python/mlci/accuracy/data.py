"""Labelled test sets, opened lazily: the controller reads only labels (and ids), workers only their batch rows.

Formats (`artifacts.data.<name>.format`, default from the file extension):

- `npz`: arrays; a worker reads its rows of members stored uncompressed (`np.savez`) in place, compressed ones
  (`np.savez_compressed`) from a copy unpacked once per run.
- `parquet`: the label and id columns are read; the input columns are streamed once per run into a row file
  (or an Arrow IPC file for strings and nested values) the workers read rows from (a Parquet file has no
  random row access). Needs pyarrow (`pip install mlci[parquet]`, or `pyarrow` in the service's requirements).
- `csv`, `jsonl`: one streaming pass records each row's byte offset, label and id (these stay in the
  controller's memory); workers seek to their rows and parse only those.
- `folder`: a folder (local, or an S3 manifest written by `mlci data add`) holding files plus a labels table
  (csv/jsonl/parquet) whose `files` column names them; files are read (fetched, verified) per batch.

Labels are kept raw and compared through `label_key` for classification (so `3`, `3.0` and `"3"` coincide and
a label-encoding mismatch between data and model shows up as "labels the model emits that the dataset never
has") and as floats for regression.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import weakref
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

FORMATS = ("npz", "csv", "jsonl", "parquet", "folder")
EXTENSIONS = {"npz": "npz", "csv": "csv", "jsonl": "jsonl", "parquet": "parquet", "pq": "parquet"}
BATCH_AS = ("auto", "records", "array", "columns")
READ_AS = ("path", "bytes", "text")
ALL = "*"


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


def has_duplicates(values: np.ndarray) -> bool:
    """Whether a column repeats a value (sort-based: numpy's hash-based unique is slow on large columns)."""
    s = np.sort(np.asarray(values), kind="stable")
    return bool(len(s) > 1 and (s[1:] == s[:-1]).any())


def py(value: Any) -> Any:
    """A numpy scalar as the Python value (JSON records and team checks see plain values)."""
    return value.item() if isinstance(value, np.generic) else value


def label_codes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(code per row, class names): names are the sorted `label_key`s, code k means names[k].

    Vectorised for numeric columns; object columns (strings, mixed JSON values) go through one dict pass, so a
    million labels cost a fraction of a second either way."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "biuf":
        uniq, inverse = np.unique(arr, return_inverse=True)
        raw_keys = [label_key(u) for u in uniq.tolist()]
    else:
        seen: dict[Any, int] = {}
        inverse = np.empty(len(arr), dtype=np.int64)
        for i, v in enumerate(arr.tolist()):
            k = v if isinstance(v, (str, int, float, bool)) else repr(v)
            inverse[i] = seen.setdefault(k, len(seen))
        raw_keys = [label_key(v) for v in seen]
    names = sorted(set(raw_keys))
    position = {name: i for i, name in enumerate(names)}
    remap = np.array([position[k] for k in raw_keys], dtype=np.int64)
    return remap[np.asarray(inverse).reshape(-1)] if len(remap) else np.zeros(0, dtype=np.int64), names


@dataclass(frozen=True)
class DataSpec:
    """How to read one dataset: which format, which columns, what predict receives."""

    format: str | None = None
    inputs: tuple[str, ...] | None = None  # None: the format's default; ("*",): all but label, id, exclude
    label: str = "y"
    id: str | None = None
    exclude: tuple[str, ...] = ()
    batch_as: str = "auto"
    files: tuple[str, ...] = ("file",)
    read: str = "path"
    labels: str | None = None  # folder: the labels table inside the folder
    group: str | None = None  # the column naming each sample's group (accuracy/grouping.py)

    @classmethod
    def from_entry(cls, entry: dict[str, Any] | None) -> DataSpec:
        """From an `artifacts.data.<name>` entry (already validated by the schema); None: the defaults."""
        if not entry:
            return cls()
        return cls(format=entry.get("format"), inputs=names_of(entry.get("inputs")),
                   label=entry.get("label") or "y", id=entry.get("id"), exclude=tuple(entry.get("exclude") or ()),
                   batch_as=entry.get("batch_as") or "auto", files=names_of(entry.get("files")) or ("file",),
                   read=entry.get("read") or "path", labels=entry.get("labels"), group=entry.get("group"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSpec:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def resolve_inputs(self, available: Sequence[str], default: Sequence[str], where: str) -> list[str]:
        """The input columns: listed ones (each must exist), all but label/id/exclude, or the format default."""
        names = list(self.inputs) if self.inputs else list(default)
        if ALL in names and len(names) > 1:
            raise UserError(f"{where}: `inputs` mixes '*' with column names",
                            hint="either list the columns, or '*' with `exclude:` for the ones to leave out")
        if names == [ALL]:
            drop = {self.label, self.id, self.group, *self.exclude}
            names = [c for c in available if c not in drop]
            if not names:
                raise UserError(f"{where}: no input columns left after removing label, id and exclude",
                                hint=f"columns present: {', '.join(available)}")
            return names
        missing = [c for c in names if c not in available]
        if missing:
            raise UserError(f"{where}: input column(s) {', '.join(missing)} missing",
                            hint=f"columns present: {', '.join(available)}; set `inputs:` (a name, a list, or '*' "
                            "for all but the label)")
        return names


def names_of(value: Any) -> tuple[str, ...] | None:
    """`x`, `a,b` (the older comma form) or `[a, b]` -> a tuple of names; None stays None."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else [str(v) for v in value]
    parts = tuple(p.strip() for item in items for p in item.split(",") if p.strip())
    return parts or None


class Ids:
    """Sample ids without materialising a million strings: row numbers, or a column kept compact."""

    def __init__(self, n: int, values: Any = None):
        self.n = n
        self.values = values  # None (row index), np.ndarray, a pyarrow Array, or a function of the indices

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> str:
        return self.take([int(i)])[0]

    def take(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        idx = np.asarray(indices, dtype=np.int64)
        if self.values is None:
            return [str(i) for i in idx.tolist()]
        if isinstance(self.values, np.ndarray):
            return [str(py(v)) for v in self.values[idx].tolist()]
        if callable(self.values):
            return list(self.values(idx))
        # a pyarrow array: element access (a numpy index array would make pyarrow import pandas, if installed)
        return [str(self.values[i].as_py()) for i in idx.tolist()]

    def __iter__(self):  # noqa: ANN204 - lists of ids in small tests and team checks
        return iter(self.take(np.arange(self.n)))

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, tuple, Ids)) else NotImplemented


class Dataset:
    """One opened dataset. Subclasses implement `_columns` (input values at rows) and the label/id columns.

    The controller opens a dataset once (`open_dataset`: it may prepare files for the workers in a temporary
    directory it owns); each worker re-opens it from `worker_spec()` (`reopen`), which is cheap."""

    format = ""

    def __init__(self, path: Path, spec: DataSpec, n: int, input_names: list[str], workdir: Path | None = None,
                 owns_workdir: bool = False):
        self.path = Path(path)
        self.spec = spec
        self.n = n
        self.input_names = input_names
        self.workdir = workdir
        if owns_workdir and workdir is not None:
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(workdir), True)

    def __len__(self) -> int:
        return self.n

    # --- the controller's columns ----------------------------------------------------------------------------
    @cached_property
    def labels(self) -> np.ndarray:
        return self._labels()

    @cached_property
    def ids(self) -> Ids:
        return self._ids()

    def label_values(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        return [py(v) for v in self.labels[np.asarray(indices, dtype=np.int64)].tolist()]

    def _labels(self) -> np.ndarray:
        raise NotImplementedError

    def _ids(self) -> Ids:
        return Ids(self.n)

    # --- the workers' rows -----------------------------------------------------------------------------------
    def take(self, indices: Sequence[int] | np.ndarray) -> Any:
        """The inputs at these rows as one batch for predict (shape per `batch_as`)."""
        idx = np.asarray(indices, dtype=np.int64)
        return shape_batch(self._columns(idx), self.input_names, self.spec.batch_as, where=str(self.path))

    def records(self, indices: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """The inputs at these rows as one {column: value} mapping per row."""
        idx = np.asarray(indices, dtype=np.int64)
        return shape_batch(self._columns(idx), self.input_names, "records", where=str(self.path))

    def columns(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """The inputs at these rows as {column: values}, before any batch shaping (duplicates.py)."""
        return self._columns(np.asarray(indices, dtype=np.int64))

    def _columns(self, idx: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def worker_spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()


def shape_batch(cols: dict[str, Any], names: list[str], batch_as: str, *, where: str) -> Any:
    """Column values (arrays or lists, one entry per row) -> what predict receives."""
    if batch_as == "columns":
        return {n: cols[n] for n in names}
    if batch_as == "array":
        parts = []
        for n in names:
            a = cols[n] if isinstance(cols[n], np.ndarray) else np.asarray(cols[n], dtype=object)
            if a.dtype.kind == "O":
                try:
                    a = a.astype(np.float64)
                except (TypeError, ValueError):
                    raise UserError(f"{where}: column '{n}' is not numeric, so `batch_as: array` cannot stack it",
                                    hint="use batch_as: records or columns, or drop the column from inputs") from None
            parts.append(a.reshape(len(a), -1))
        return parts[0] if len(parts) == 1 else np.hstack(parts)
    if batch_as == "auto" and len(names) == 1:
        return cols[names[0]]
    n_rows = len(cols[names[0]]) if names else 0
    return [{n: plain(cols[n][j]) for n in names} for j in range(n_rows)]


def plain(value: Any) -> Any:
    """A value of a record as plain Python (arrays as lists), so records serialise as JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return py(value)


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path.is_dir():
        return "folder"
    ext = path.suffix.lstrip(".").lower()
    if ext not in EXTENSIONS:
        raise UserError(f"cannot tell the format of {path}",
                        hint="use a .npz, .csv, .jsonl or .parquet file, a folder with a labels table, or set `format:`")
    return EXTENSIONS[ext]


# What a damaged or hostile file makes the readers raise: a truncated .npz (BadZipFile, EOFError, zlib.error), a
# .csv field beyond csv's limit (csv.Error), a .jsonl row nested past the parser's recursion limit, bad bytes.
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, csv.Error, RecursionError)


def unreadable(path: Path, fmt: str, exc: BaseException) -> UserError:
    """The exit-2 error for a dataset file the readers could not take (never a traceback)."""
    if isinstance(exc, UserError):
        return exc
    why = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {str(exc)[:200]}"
    return UserError(f"cannot read dataset {path}: {why}", hint=f"is it a valid, complete .{fmt} file? "
                     "Re-create or re-download it")


def new_workdir() -> Path:
    """Per-run scratch for files the workers share (unpacked arrays, Arrow copies, fetched folder files)."""
    return Path(tempfile.mkdtemp(prefix="mlci-data-"))


def open_dataset(path: Path, spec: DataSpec, *, folder: dict[str, Any] | None = None) -> Dataset:
    """Open a dataset in the controller; every problem is a UserError naming the file and the missing piece.

    `folder` carries what a folder dataset needs beyond its path (see formats.folder.open_folder)."""
    path = Path(path)
    fmt = detect_format(path, spec.format)
    if fmt != "folder" and not path.is_file():
        raise UserError(f"dataset file {path} not found", hint="check the dataset uri, or pass --data PATH")
    workdir = new_workdir()
    try:
        ds = _open(fmt, path, spec, workdir, folder)
    except BaseException as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        if isinstance(exc, UNREADABLE):
            raise unreadable(path, fmt, exc) from None
        raise
    if len(ds) == 0:
        ds.close()
        raise UserError(f"dataset {path} is empty", hint="a test set needs labelled samples")
    missing = missing_labels(ds.labels)
    if missing.size:
        ids = ds.ids.take(missing[:5].tolist())
        ds.close()
        raise UserError(f"dataset {path}: {missing.size} sample(s) have no label (NaN), e.g. id {', '.join(ids)}",
                        hint="fix or drop those rows: a missing label is not a class")
    return ds


def missing_labels(labels: Any) -> np.ndarray:
    """Rows whose label is NaN (float, or the text 'nan') or None: not a class and not a number."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "f":
        return np.flatnonzero(np.isnan(arr))
    if arr.dtype.kind in "biu":
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero([y is None or (isinstance(y, float) and y != y)
                           or (isinstance(y, str) and y.strip().lower() == "nan") for y in arr.tolist()])


def _open(fmt: str, path: Path, spec: DataSpec, workdir: Path, folder: dict[str, Any] | None) -> Dataset:
    if fmt == "npz":
        from .formats.npz import open_npz
        return open_npz(path, spec, workdir)
    if fmt in ("csv", "jsonl"):
        from .formats.text import open_text
        return open_text(path, fmt, spec, workdir)
    if fmt == "parquet":
        from .formats.parquet import open_parquet
        return open_parquet(path, spec, workdir)
    if fmt == "folder":
        from .formats.folder import open_folder
        return open_folder(path, spec, workdir, folder or {})
    raise UserError(f"unknown dataset format '{fmt}'", hint=f"one of {', '.join(FORMATS)}")


def reopen(spec: dict[str, Any]) -> Dataset:
    """A worker's view of a dataset the controller opened (from `Dataset.worker_spec()`)."""
    fmt = spec["format"]
    if fmt == "npz":
        from .formats.npz import NpzDataset
        return NpzDataset.from_spec(spec)
    if fmt in ("csv", "jsonl"):
        from .formats.text import TextDataset
        return TextDataset.from_spec(spec)
    if fmt == "parquet":
        from .formats.parquet import ParquetDataset
        return ParquetDataset.from_spec(spec)
    from .formats.folder import FolderDataset
    return FolderDataset.from_spec(spec)


def load(path: Path, fmt: str | None = None, inputs: str | Sequence[str] | None = None, label: str = "y",
         id_field: str | None = None, **options: Any) -> Dataset:
    """Open a local dataset file or folder with explicit settings (tests, team tools)."""
    spec = DataSpec(format=fmt, inputs=names_of(inputs), label=label, id=id_field,
                    **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    return open_dataset(Path(path), spec)
