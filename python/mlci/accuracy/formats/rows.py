"""Rows of a row-major array in a file, read with pread: a worker holds its batch's rows and nothing else.

Why not a memory map: a batch's rows are scattered over the whole file, and on current kernels a fault on a
mapped file maps the whole page-cache folio around it (up to megabytes), so a worker's resident memory grows by
megabytes per random row until it holds most of the file. With pread the file stays in the (shared,
reclaimable) page cache and the process copies only the bytes of its rows.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class RowFile:
    """`n` rows starting at byte `offset` of `path`; a row is `shape` items of `dtype` (a record dtype for a
    table's row, a plain one with a shape for an array's)."""

    def __init__(self, path: str, offset: int, dtype: np.dtype, shape: tuple[int, ...], n: int):
        self.path, self.offset, self.n = path, offset, n
        self.dtype, self.shape = np.dtype(dtype), tuple(shape)
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64))
        self._fd: int | None = None

    def take(self, idx: np.ndarray) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise IndexError(f"row index out of range 0..{self.n - 1}")
        size = self.row_bytes
        data = b"".join(os.pread(self._fd, size, self.offset + i * size) for i in idx.tolist())
        # a copy: writable, like any array predict may modify in place
        return np.frombuffer(data, dtype=self.dtype).reshape(len(idx), *self.shape).copy()

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "offset": self.offset, "descr": np.lib.format.dtype_to_descr(self.dtype),
                "shape": list(self.shape), "n": self.n}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowFile:
        descr = data["descr"]
        descr = [tuple(f) for f in descr] if isinstance(descr, list) else descr  # JSON turned tuples into lists
        return cls(data["path"], data["offset"], np.lib.format.descr_to_dtype(descr), tuple(data["shape"]),
                   data["n"])

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
