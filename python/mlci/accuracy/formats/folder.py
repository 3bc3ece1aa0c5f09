"""Folder datasets: files (images, audio, text) plus a labels table naming them, files read per batch.

The labels table (`labels.csv`, `labels.jsonl` or `labels.parquet` in the folder, or the one `labels:` names)
is opened like any table dataset; its `files` column(s) hold paths relative to the folder. The controller checks
every named file is in the folder (its manifest) before anything runs. A worker turns a batch's file columns
into what predict asked for (`read: path|bytes|text`): a local folder is read in place; a folder in S3 has each
file fetched through the artifacts cache, verified against the manifest's sha256, and placed (hard-linked)
under the run's scratch directory with its own name, so libraries that go by file extension still work.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ...artifacts import folder as manifest
from ...artifacts.entries import check_relpath
from ...errors import UserError
from ..data import Dataset, DataSpec, Ids, detect_format

LABEL_TABLES = ("labels.csv", "labels.jsonl", "labels.parquet")


def open_folder(path: Path, spec: DataSpec, workdir: Path, opts: dict[str, Any]) -> FolderDataset:
    """`path`: a local folder, or the (verified) manifest file of a folder in S3 (`opts['uri']`)."""
    local = path.is_dir()
    where = str(path) if local else str(opts.get("uri") or path)
    entries = ({f.path: f for f in opts["files"]} if local and opts.get("files") is not None
               else {f.path: f for f in manifest.scan(path)} if local
               else manifest.parse(path.read_bytes(), where))
    table_rel = spec.labels or _default_table(entries, where)
    if table_rel not in entries:
        raise UserError(f"{where}: labels table '{table_rel}' is not in the folder",
                        hint=f"files at the top: {', '.join(sorted(p for p in entries if '/' not in p)[:10]) or '(none)'}")
    table_fmt = detect_format(Path(table_rel), None)
    if table_fmt not in ("csv", "jsonl", "parquet"):
        raise UserError(f"{where}: labels table '{table_rel}' must be .csv, .jsonl or .parquet")
    objects = None if local else manifest.objects_base(str(opts["uri"]))
    table_path = path / table_rel if local else _fetch(opts, objects, entries[table_rel], where)
    inner_spec = DataSpec(format=table_fmt, inputs=spec.inputs or spec.files, label=spec.label, id=spec.id,
                          exclude=spec.exclude, batch_as="columns")
    (workdir / "table").mkdir()
    file_cols = list(spec.files)
    if table_fmt == "parquet":
        from .parquet import open_parquet, pyarrow

        pyarrow()
        import pyarrow.parquet as pq

        inner = open_parquet(table_path, inner_spec, workdir / "table")
        missing = [c for c in file_cols if c not in pq.ParquetFile(table_path).schema_arrow.names]
        if missing:
            raise UserError(f"{where}: files column(s) {', '.join(missing)} missing from {table_rel}",
                            hint="set `files:` to the column naming each sample's file")
        values = {c: pq.read_table(table_path, columns=[c])[c].to_pylist() for c in file_cols}
    else:
        from .text import open_text

        inner = open_text(table_path, table_fmt, inner_spec, workdir / "table", keep=tuple(file_cols))
        inner.raw = set(file_cols)
        values = inner.kept
    digests = np.zeros((len(inner), len(file_cols), 32), dtype=np.uint8)
    sizes = np.zeros((len(inner), len(file_cols)), dtype=np.int64)
    for j, c in enumerate(file_cols):
        for i, rel in enumerate(values[c]):
            row = f"{where}/{table_rel} row {i + 1}"
            if not isinstance(rel, str):
                raise UserError(f"{row}: '{c}' is {rel!r}, not a file path", hint="a path relative to the folder")
            norm = check_relpath(rel, row, c)
            ref = entries.get(norm)
            if ref is None:
                raise UserError(f"{row}: file '{rel}' is not in the folder",
                                hint="add the file (then re-run `mlci data add`) or fix the labels table")
            digests[i, j] = np.frombuffer(bytes.fromhex(ref.sha256), dtype=np.uint8)
            sizes[i, j] = ref.size
    np.save(workdir / "digests.npy", digests)
    np.save(workdir / "sizes.npy", sizes)
    (workdir / "files").mkdir()
    return FolderDataset(path, spec, len(inner), inner.input_names, inner, {
        "root": str(path) if local else None, "objects": objects, "where": where,
        "digests": str(workdir / "digests.npy"), "sizes": str(workdir / "sizes.npy"),
        "files_dir": str(workdir / "files"), "cache": opts.get("cache"), "jobs": int(opts.get("jobs") or 8),
    }, workdir, owns_workdir=True)


def _default_table(entries: dict[str, Any], where: str) -> str:
    found = [t for t in LABEL_TABLES if t in entries]
    if len(found) != 1:
        raise UserError(f"{where}: {'no' if not found else 'more than one'} labels table "
                        f"({', '.join(found or LABEL_TABLES)})",
                        hint="put one labels.csv/.jsonl/.parquet at the top of the folder, or set `labels:`")
    return found[0]


def _downloader(cache: str | None, jobs: int) -> Any:
    from ...artifacts.cache import Cache
    from ...artifacts.transfer import Downloader
    from ...paths import cache_dir

    return Downloader(Cache(Path(cache) if cache else cache_dir()), jobs)


def _fetch(opts: dict[str, Any], objects: str | None, ref: manifest.FileRef, where: str) -> Path:
    from ...artifacts.lockfile import object_uri

    dl = _downloader(opts.get("cache"), 1)
    try:
        return dl.ensure("sha256", ref.sha256, object_uri(str(objects), ref.sha256), ref.size,
                         f"{where} ({ref.path})").path
    finally:
        dl.close()


class FolderDataset(Dataset):
    format = "folder"

    def __init__(self, path: Path, spec: DataSpec, n: int, input_names: list[str], table: Dataset,
                 files: dict[str, Any], workdir: Path | None = None, owns_workdir: bool = False):
        super().__init__(path, spec, n, input_names, workdir, owns_workdir)
        self.table = table
        self.files = files
        self._digests: np.ndarray | None = None
        self._sizes: np.ndarray | None = None
        self._dl: Any = None

    def _labels(self) -> np.ndarray:
        return self.table.labels

    def label_values(self, indices: Any) -> list[Any]:
        return self.table.label_values(indices)

    def _ids(self) -> Ids:
        return self.table.ids

    def _columns(self, idx: np.ndarray) -> dict[str, Any]:
        cols = self.table._columns(idx)
        for j, c in enumerate(self.spec.files):
            if c in cols:
                cols[c] = self._read([str(v) for v in cols[c]], idx, j)
        return cols

    def _read(self, rels: list[str], idx: np.ndarray, j: int) -> list[Any]:
        """The batch's files of column j as paths, bytes or text (fetched and verified first, for S3)."""
        if self.files["root"]:
            paths = [Path(self.files["root"]) / r for r in rels]
        else:
            if self._digests is None:
                self._digests = np.load(self.files["digests"], mmap_mode="r")
                self._sizes = np.load(self.files["sizes"], mmap_mode="r")
                self._dl = _downloader(self.files["cache"], self.files["jobs"])
            paths = [Path(self.files["files_dir"]) / r for r in rels]
            todo = {(r, int(i)) for r, i, p in zip(rels, idx.tolist(), paths, strict=True) if not p.is_file()}
            if todo:
                with ThreadPoolExecutor(min(len(todo), self.files["jobs"])) as pool:
                    list(pool.map(lambda t: self._place(t[0], t[1], j), sorted(todo)))
        read = self.spec.read
        if read == "bytes":
            return [p.read_bytes() for p in paths]
        if read == "text":
            return [p.read_text(encoding="utf-8") for p in paths]
        return [str(p) for p in paths]

    def _place(self, rel: str, i: int, j: int) -> None:
        from ...artifacts.cache import place
        from ...artifacts.lockfile import object_uri

        assert self._digests is not None and self._sizes is not None
        sha = bytes(self._digests[i, j]).hex()
        fetched = self._dl.ensure("sha256", sha, object_uri(self.files["objects"], sha), int(self._sizes[i, j]),
                                  f"{self.files['where']} ({rel})")
        place(fetched.path, Path(self.files["files_dir"]) / rel)

    def worker_spec(self) -> dict[str, Any]:
        return {"format": "folder", "path": str(self.path), "spec": self.spec.to_json(), "n": self.n,
                "inputs": self.input_names, "table": self.table.worker_spec(), "files": self.files}

    @classmethod
    def from_spec(cls, s: dict[str, Any]) -> FolderDataset:
        from ..data import reopen

        return cls(Path(s["path"]), DataSpec.from_json(s["spec"]), s["n"], s["inputs"], reopen(s["table"]), s["files"])
