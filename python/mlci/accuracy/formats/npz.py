""".npz test sets: the controller maps the label and id arrays, a worker reads only its batch's rows.

An .npz is a zip of .npy files. A member stored without compression (`np.savez`) is a plain .npy inside the zip,
so its rows are read in place, at their offset in the archive (by pread, see rows.py; the label and id arrays
by memory map). A compressed member (`np.savez_compressed`) cannot be, so the controller unpacks it once per run
(streamed, never whole in memory) into the run's scratch directory and every worker reads that copy.
"""

from __future__ import annotations

import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from ..data import Dataset, DataSpec, Ids, has_duplicates
from .rows import RowFile

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (version .. uncompressed size), name length, extra length


def _npy_ref(file: Path, start: int, where: str) -> dict[str, Any]:
    """Where the array data of the .npy at byte `start` of `file` lies, and its dtype/shape/order."""
    with open(file, "rb") as fh:
        fh.seek(start)
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise UserError(f"{where}: not a valid .npy array: {exc}", hint="write the dataset with np.savez") from None
        offset = fh.tell()
    if dtype.hasobject:
        raise UserError(f"{where}: holds Python objects (pickled), which mlci does not load",
                        hint="store numbers or fixed-width strings (e.g. np.array(ids, dtype=str))")
    return {"path": str(file), "offset": offset, "descr": np.lib.format.dtype_to_descr(dtype),
            "shape": list(shape), "fortran": bool(fortran)}


def _memmap(ref: dict[str, Any]) -> np.ndarray:
    dtype = np.lib.format.descr_to_dtype(ref["descr"])
    shape = tuple(ref["shape"])
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype=dtype)
    return np.memmap(ref["path"], dtype=dtype, mode="r", offset=ref["offset"], shape=shape,
                     order="F" if ref["fortran"] else "C")


def _member_refs(path: Path, names: list[str], workdir: Path) -> dict[str, dict[str, Any]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"cannot read dataset {path}: {exc}", hint="is it a valid .npz file?") from None
    refs = {}
    with zf:
        for name in names:
            info = zf.getinfo(f"{name}.npy")
            where = f"{path} (array '{name}')"
            if info.compress_type == zipfile.ZIP_STORED:
                with open(path, "rb") as fh:
                    fh.seek(info.header_offset)
                    sig, n_name, n_extra = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
                if sig != b"PK\x03\x04":
                    raise UserError(f"{where}: corrupt zip entry", hint="re-write the dataset with np.savez")
                refs[name] = _npy_ref(path, info.header_offset + _LOCAL_HEADER.size + n_name + n_extra, where)
            else:
                target = workdir / f"npz-{len(refs)}.npy"
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                refs[name] = _npy_ref(target, 0, where)
    return refs


def open_npz(path: Path, spec: DataSpec, workdir: Path) -> NpzDataset:
    try:
        with zipfile.ZipFile(path) as zf:
            keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"cannot read dataset {path}: {exc}", hint="is it a valid .npz file?") from None
    if spec.label not in keys:
        raise UserError(f"array '{spec.label}' missing from {path}",
                        hint=f"arrays present: {', '.join(keys)}; set `label:`")
    if spec.id and spec.id not in keys:
        raise UserError(f"id array '{spec.id}' missing from {path}", hint=f"arrays present: {', '.join(keys)}")
    id_key = spec.id or ("id" if "id" in keys else None)
    inputs = spec.resolve_inputs([k for k in keys if k != id_key] if not spec.id else keys, ["x"],
                                 f"{path}: array(s)")
    names = list(dict.fromkeys([*inputs, spec.label, *([id_key] if id_key else [])]))
    refs = _member_refs(path, names, workdir)
    for name in names:
        shape = tuple(refs[name]["shape"])
        if not shape or (name in (spec.label, id_key) and len(shape) != 1):
            raise UserError(f"{path}: '{name}' must hold one row per sample (shape {shape})",
                            hint="save inputs with shape (n, ...) and labels and ids with shape (n,)")
    n = refs[spec.label]["shape"][0]
    for name in names:
        rows = refs[name]["shape"][0]
        if rows != n:
            raise UserError(f"{path}: '{name}' has {rows} rows but '{spec.label}' has {n}", hint="arrays must align")
    ds = NpzDataset(path, spec, n, inputs, refs, id_key, workdir, owns_workdir=True)
    if id_key and has_duplicates(ds.ids.values):
        raise UserError(f"dataset {path} has duplicate sample ids", hint="ids must be unique (or drop `id:`)")
    return ds


class NpzDataset(Dataset):
    format = "npz"

    def __init__(self, path: Path, spec: DataSpec, n: int, input_names: list[str], refs: dict[str, dict[str, Any]],
                 id_key: str | None, workdir: Path | None = None, owns_workdir: bool = False):
        super().__init__(path, spec, n, input_names, workdir, owns_workdir)
        self.refs = refs
        self.id_key = id_key
        self._arrays: dict[str, np.ndarray] = {}
        self._readers: dict[str, RowFile] = {}

    def array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = _memmap(self.refs[name])
        return self._arrays[name]

    def _labels(self) -> np.ndarray:
        return np.asarray(self.array(self.spec.label)).reshape(self.n)

    def _ids(self) -> Ids:
        return Ids(self.n, np.asarray(self.array(self.id_key)).reshape(self.n) if self.id_key else None)

    def _columns(self, idx: np.ndarray) -> dict[str, Any]:
        return {name: self._rows(name, idx) for name in self.input_names}

    def _rows(self, name: str, idx: np.ndarray) -> np.ndarray:
        """Rows of an input array: by pread (rows.py) for the usual C-order array, else from the memory map."""
        ref = self.refs[name]
        if ref["fortran"] or not ref["shape"]:
            return np.asarray(self.array(name)[idx])
        if name not in self._readers:
            self._readers[name] = RowFile(ref["path"], ref["offset"], np.lib.format.descr_to_dtype(ref["descr"]),
                                          tuple(ref["shape"][1:]), ref["shape"][0])
        return self._readers[name].take(idx)

    def worker_spec(self) -> dict[str, Any]:
        return {"format": "npz", "path": str(self.path), "spec": self.spec.to_json(), "n": self.n,
                "inputs": self.input_names, "refs": self.refs, "id_key": self.id_key}

    @classmethod
    def from_spec(cls, s: dict[str, Any]) -> NpzDataset:
        return cls(Path(s["path"]), DataSpec.from_json(s["spec"]), s["n"], s["inputs"], s["refs"], s["id_key"])
