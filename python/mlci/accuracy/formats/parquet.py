"""Parquet test sets (pyarrow): column selection, label and id read alone, inputs read per row by the workers.

Parquet has no random row access: a row is only reachable by decoding its whole row group (often the whole
file), and a stratified sample touches every row group in every batch. So the controller reads the label (and
id) columns, then streams only the input columns, one bounded record batch at a time, into a file in the run's
scratch directory that workers read rows from:

- numeric and boolean columns, and fixed-size lists of numbers (the tabular case, embeddings): a row-major file
  of numpy records, one pread per row (rows.py);
- anything else (strings, bytes, nested or nullable values): an uncompressed Arrow IPC file that the workers
  memory-map (zero copy) and gather their rows from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from ..data import Dataset, DataSpec, Ids

BATCH_BYTES = 32 << 20  # decoded bytes per record batch while converting


def pyarrow() -> Any:
    """pyarrow, or a UserError saying how to get it (it is an optional dependency: ~130 MB installed)."""
    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UserError("this dataset is Parquet, which needs pyarrow, and pyarrow is not installed here",
                        hint="add `pyarrow` to the service's requirements.txt (it is installed next to mlci in "
                        "the image), or `pip install 'mlci[parquet]'`") from None
    return pa


def _numeric_dtype(t: Any) -> np.dtype | None:
    """The numpy dtype of an Arrow integer/floating type (None for anything else)."""
    pa = pyarrow()
    if pa.types.is_floating(t):
        return np.dtype(f"<f{t.bit_width // 8}")
    if pa.types.is_signed_integer(t):
        return np.dtype(f"<i{t.bit_width // 8}")
    if pa.types.is_unsigned_integer(t):
        return np.dtype(f"<u{t.bit_width // 8}")
    return None


def _plain_values(arr: Any) -> np.ndarray | None:
    """A null-free numeric or boolean Arrow array as numpy, straight from its buffers (pyarrow's own numpy
    conversion imports pandas when it is installed: a second and ~60 MB per process for nothing)."""
    pa = pyarrow()
    if arr.null_count:
        return None
    dtype = _numeric_dtype(arr.type)
    if dtype is not None:
        data = np.frombuffer(arr.buffers()[1], dtype=dtype, count=arr.offset + len(arr))
        return data[arr.offset:]
    if pa.types.is_boolean(arr.type):
        bits = np.unpackbits(np.frombuffer(arr.buffers()[1], dtype=np.uint8), bitorder="little")
        return bits[arr.offset:arr.offset + len(arr)].astype(bool)
    return None


def _list_values(arr: Any) -> np.ndarray | None:
    """A null-free list column whose lists all have one length, of numbers: a 2-D numpy array."""
    pa = pyarrow()
    t = arr.type
    if arr.null_count or not (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)):
        return None
    if pa.types.is_fixed_size_list(t):
        width = t.list_size
    else:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_list(t) else np.int32,
                                count=arr.offset + len(arr) + 1)[arr.offset:]
        lengths = np.diff(offsets)
        if len(lengths) and (lengths != lengths[0]).any():
            return None
        width = int(lengths[0]) if len(lengths) else 0
    flat = _plain_values(arr.flatten())
    return None if flat is None else flat.reshape(len(arr), width)


def column_values(col: Any) -> Any:
    """An Arrow column as predict gets it: numbers as a numpy array, equal-length lists of numbers as a 2-D
    array, anything else (strings, bytes, nested or nullable values) as a list of Python values."""
    pa = pyarrow()
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    for convert in (_plain_values, _list_values):
        values = convert(arr)
        if values is not None:
            return values
    return arr.to_pylist()


def open_parquet(path: Path, spec: DataSpec, workdir: Path) -> ParquetDataset:
    pa = pyarrow()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, pre_buffer=False)  # decode a column chunk at a time, not whole row groups
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"cannot read dataset {path}: {exc}", hint="is it a valid Parquet file?") from None
    names = pf.schema_arrow.names
    needed = [spec.label, *([spec.id] if spec.id else [])]
    missing = [c for c in needed if c not in names]
    if missing:
        raise UserError(f"{path}: column(s) {', '.join(missing)} missing",
                        hint=f"columns present: {', '.join(names)}; set `label:` / `id:`")
    inputs = spec.resolve_inputs(names, ["x"], f"{path}: column(s)")
    n = pf.metadata.num_rows
    table = pf.read(columns=needed)
    labels = table[spec.label]
    if labels.null_count:
        first = labels.is_null().combine_chunks().to_pylist().index(True)
        raise UserError(f"{path}: row {first} has an empty label", hint="every sample needs a label")
    ids = None
    if spec.id:
        ids = table[spec.id].combine_chunks()
        if ids.null_count or pc.count_distinct(ids).as_py() != len(ids):
            raise UserError(f"dataset {path} has duplicate or empty sample ids", hint="ids must be unique (or drop `id:`)")
    storage = _to_rows(pf, inputs, workdir / "inputs.rows", n)
    if storage is None:
        _to_ipc(pf, inputs, workdir / "inputs.arrow", n)
        storage = {"ipc": str(workdir / "inputs.arrow")}
    ds = ParquetDataset(path, spec, n, inputs, storage, workdir, owns_workdir=True)
    values = column_values(labels)
    ds.__dict__["labels"] = values if isinstance(values, np.ndarray) and values.ndim == 1 else _objects(labels)
    ds.__dict__["ids"] = Ids(n, ids)
    return ds


def _objects(col: Any) -> np.ndarray:
    arr = np.empty(len(col), dtype=object)
    arr[:] = col.to_pylist()
    return arr


def _batch_rows(pf: Any, inputs: list[str], n: int) -> int:
    """Rows per record batch while converting, so one batch decodes to about BATCH_BYTES."""
    meta = pf.metadata
    wanted = set(inputs)
    decoded = sum(meta.row_group(g).column(c).total_uncompressed_size
                  for g in range(meta.num_row_groups) for c in range(meta.num_columns)
                  if meta.row_group(g).column(c).path_in_schema.split(".")[0] in wanted)
    return int(min(16384, max(256, BATCH_BYTES // max(1, decoded // max(n, 1)))))


def row_dtype(schema: Any, inputs: list[str]) -> np.dtype | None:
    """A numpy record dtype for a row of the input columns, when every one is a number, a boolean or a
    fixed-size list of numbers; None otherwise."""
    pa = pyarrow()
    fields: list[tuple[Any, ...]] = []
    for c in inputs:
        t = schema.field(c).type
        if _numeric_dtype(t) is not None or pa.types.is_boolean(t):
            fields.append((c, _numeric_dtype(t) or np.dtype(bool)))
        elif pa.types.is_fixed_size_list(t) and _numeric_dtype(t.value_type) is not None:
            fields.append((c, _numeric_dtype(t.value_type), (t.list_size,)))
        else:
            return None
    return np.dtype(fields)


def _to_rows(pf: Any, inputs: list[str], target: Path, n: int) -> dict[str, Any] | None:
    """Stream the input columns into a row-major file of records; None (and no file) when a column is not
    numeric or holds nulls (numpy has no nulls): the caller falls back to Arrow IPC."""
    from .rows import RowFile

    pa = pyarrow()
    dtype = row_dtype(pf.schema_arrow, inputs)
    if dtype is None:
        return None
    with open(target, "wb") as out:
        for batch in pf.iter_batches(batch_size=_batch_rows(pf, inputs, n), columns=inputs, use_threads=False):
            rec = np.empty(batch.num_rows, dtype=dtype)
            for c in inputs:
                col = batch.column(c)
                if col.null_count:
                    out.close()
                    target.unlink()
                    return None
                rec[c] = column_values(col)
            out.write(rec.tobytes())
    pa.default_memory_pool().release_unused()
    shape: tuple[int, ...] = ()
    return {"rows": RowFile(str(target), 0, dtype, shape, n).to_json()}


def _to_ipc(pf: Any, inputs: list[str], target: Path, n: int) -> None:
    """Stream the input columns into an uncompressed Arrow IPC file, a bounded record batch at a time."""
    pa = pyarrow()
    schema = pa.schema([pf.schema_arrow.field(c) for c in inputs])
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in pf.iter_batches(batch_size=_batch_rows(pf, inputs, n), columns=inputs, use_threads=False):
            writer.write_batch(batch)
    pa.default_memory_pool().release_unused()


class ParquetDataset(Dataset):
    format = "parquet"

    def __init__(self, path: Path, spec: DataSpec, n: int, input_names: list[str], storage: dict[str, Any],
                 workdir: Path | None = None, owns_workdir: bool = False):
        super().__init__(path, spec, n, input_names, workdir, owns_workdir)
        self.storage = storage  # {"rows": RowFile json} or {"ipc": path}
        self._table: Any = None
        self._rows: Any = None

    def _labels(self) -> np.ndarray:
        import pyarrow.parquet as pq

        col = pq.read_table(self.path, columns=[self.spec.label])[self.spec.label]
        values = column_values(col)
        return values if isinstance(values, np.ndarray) and values.ndim == 1 else _objects(col)

    def _ids(self) -> Ids:
        if not self.spec.id:
            return Ids(self.n)
        import pyarrow.parquet as pq

        return Ids(self.n, pq.read_table(self.path, columns=[self.spec.id])[self.spec.id].combine_chunks())

    def _columns(self, idx: np.ndarray) -> dict[str, Any]:
        if "rows" in self.storage:
            from .rows import RowFile

            if self._rows is None:
                self._rows = RowFile.from_json(self.storage["rows"])
            rec = self._rows.take(idx)
            return {c: rec[c] for c in self.input_names}
        pa = pyarrow()
        if self._table is None:
            self._table = pa.ipc.open_file(pa.memory_map(self.storage["ipc"], "r")).read_all()
        rows = self._table.take(pa.array(idx, type=pa.int64()))
        return {c: column_values(rows[c]) for c in self.input_names}

    def worker_spec(self) -> dict[str, Any]:
        return {"format": "parquet", "path": str(self.path), "spec": self.spec.to_json(), "n": self.n,
                "inputs": self.input_names, "storage": self.storage}

    @classmethod
    def from_spec(cls, s: dict[str, Any]) -> ParquetDataset:
        return cls(Path(s["path"]), DataSpec.from_json(s["spec"]), s["n"], s["inputs"], s["storage"])
