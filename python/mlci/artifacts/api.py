"""The artifacts API other parts of mlci call (build, accuracy, report); the CLI is a thin layer over it.

- `pull_models(cfg, lock=, dest=, jobs=)`: what `mlci models pull` does; returns a summary dict.
- `fetch_dataset(cfg, name)`: verified local file of a dataset under `artifacts.data`.
- `fetch_by_digest(cfg, sha256, dest)`: a content-addressed object `<artifacts.remote>/sha256/<2>/<62>`.
- `lock_files(cfg, lock=)`: {repo-relative path: "sha256:<hex>" | "md5:<hex>"} without touching S3.
- `lock_digest(cfg)`: sha256 of the dependency file bytes (provenance for build.json).

Relative `lock`/`dest` arguments are relative to the repository (the directory of ml-ci.yaml); the CLI turns
its flags into absolute paths first, so flags are relative to the working directory as usual. Nothing here
needs more than the boto3 credential chain and a writable cache directory, so it runs unchanged inside a
`docker build` RUN step with $MLCI_CACHE on a BuildKit cache mount.
"""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..config.loader import Config, safe_join
from ..errors import UserError
from ..progress import Progress, human_bytes
from . import dvc, lockfile
from .cache import Cache, clean_temps, dest_stamp_ok, place, plain
from .entries import Entry, check_unique
from .hashing import hash_file, is_hex, stamp_of
from .pool import Pool
from .transfer import Downloader, Fetched

_GLOB_CHARS = set("*?[")


# --- dependency files ----------------------------------------------------------------------------------------
def _arg_path(cfg: Config, value: str | os.PathLike[str]) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else cfg.root / p


def dependency_files(cfg: Config, lock: str | None = None) -> tuple[list[Path], Path]:
    """The dependency file(s) and the base directory their paths map from (a glob's fixed leading part)."""
    spec = str(lock) if lock is not None else cfg["artifacts"]["models"]["lock"]
    if lock is None:
        cfg.resolve(spec.split("*")[0] or ".")  # config values may not escape the repo
    full = _arg_path(cfg, spec)
    if not _GLOB_CHARS & set(spec):
        return [full], full.parent
    parts = Path(spec).expanduser().parts
    fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    base = _arg_path(cfg, Path(*parts[:fixed])) if fixed else cfg.root
    pattern = os.path.join(glob.escape(str(base)), *parts[fixed:])  # the repo path itself may hold '[' etc.
    found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not found:
        raise UserError(f"no dependency file matches {spec}", where=str(cfg.path),
                        hint="fix artifacts.models.lock (or --lock), e.g. models/*.dvc")
    return found, base


def load_entries(cfg: Config, lock: str | None = None) -> list[Entry]:
    """Every entry of the dependency file(s): mlci lock entries (sha256) or DVC outs (md5)."""
    files, base = dependency_files(cfg, lock)
    entries: list[Entry] = []
    for f in files:
        if dvc.is_dvc_file(f):
            prefix = os.path.relpath(f.parent, base).replace(os.sep, "/")
            entries.extend(dvc.entries(f, "" if prefix == "." else prefix))
        else:
            entries.extend(lockfile.read(f))
    check_unique(entries)
    return entries


def lock_files(cfg: Config, lock: str | None = None) -> dict[str, str]:
    """{repo-relative path (artifacts.models.dest + entry path): 'sha256:<hex>' or 'md5:<hex>'} (no S3)."""
    dest = posixpath.normpath(cfg["artifacts"]["models"]["dest"])
    return {posixpath.normpath(posixpath.join(dest, e.path)): e.key for e in load_entries(cfg, lock)}


def lock_digest(cfg: Config, lock: str | None = None) -> str:
    """sha256 of the dependency file's bytes; for a glob of several files, of their sorted (name, digest) list."""
    files, base = dependency_files(cfg, lock)
    digests = []
    for f in files:
        try:
            digests.append((os.path.relpath(f, base), hashlib.sha256(f.read_bytes()).hexdigest()))
        except FileNotFoundError:
            raise UserError(f"dependency file {f} does not exist", hint="run `mlci models add FILE...`") from None
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{n}\0{d}\n" for n, d in sorted(digests)).encode()).hexdigest()


def _cache(cfg: Config) -> Cache:
    return Cache(paths.cache_dir(cfg["artifacts"]["cache"]))


def _place_fetched(dl: Downloader, e: Entry, target: Path) -> Fetched:
    """Fetch into the cache and place at `target`; once more if `mlci cache gc` evicted the object between
    the two (the only window in which a pull can lose it)."""
    fetched = dl.ensure(e.algo, e.digest, e.uri, e.size, e.where)
    try:
        place(fetched.path, target, dl.stop)
    except FileNotFoundError:
        if fetched.path.exists():
            raise
        fetched = dl.ensure(e.algo, e.digest, e.uri, e.size, e.where)
        place(fetched.path, target, dl.stop)
    return fetched


def _dest(cfg: Config, dest: str | os.PathLike[str] | None) -> Path:
    if dest is None:
        return cfg.resolve(cfg["artifacts"]["models"]["dest"])
    return _arg_path(cfg, dest).resolve()


def _targets(dest: Path, entries: list[Entry]) -> dict[str, str]:
    """{entry path: DEST/path}, refusing paths that leave DEST through a symlink (the lexical check ran at parse
    time). Each directory is resolved once (a 2,000-entry lock shares a few dozen), and a file only when it is a
    symlink itself: resolving every path costs ~10 lstat calls per file. Strings, not Paths: a warm pull of
    thousands of files is mostly this bookkeeping."""
    dirs: dict[str, str] = {}
    out = {}
    for e in entries:
        parent, _, name = e.path.rpartition("/")
        if parent not in dirs:
            dirs[parent] = str(safe_join(dest, parent or ".", what=f"entry '{e.path}' ({e.where})"))
        target = os.path.join(dirs[parent], name)
        if os.path.islink(target):
            target = str(safe_join(dest, e.path, what=f"entry '{e.path}' ({e.where})"))
        out[e.path] = target
    return out


class _Report:
    """Thread-safe progress: byte counts feed the terminal bar, one line per file in logs."""

    def __init__(self, total: int, label: str):
        self.p = Progress(total, label)
        self.lock = threading.Lock()

    def bytes(self, n: int) -> None:
        if self.p.tty:
            with self.lock:
                self.p.advance(n)

    def file(self, size: int, message: str | None, counted: int = 0) -> None:
        with self.lock:
            self.p.advance(size - counted, message)  # downloaded bytes were counted as they arrived

    def log(self, message: str) -> None:
        with self.lock:
            self.p.log(message)

    def close(self, summary: str) -> None:
        self.p.close(summary)


@dataclass
class _Outcome:
    entry: Entry
    state: str  # unchanged | verified | cache hit | downloaded
    size: int
    downloaded: int = 0
    resumed: int = 0
    seconds: float = 0.0
    stamp: list[Any] | None = None


def _expand(entries: list[Entry], dl: Downloader) -> list[Entry]:
    """Replace DVC directory entries by their files (manifests come through the cache)."""
    out: list[Entry] = []
    for e in entries:
        if e.is_dir:
            fetched = dl.ensure(e.algo, e.digest, e.uri, None, e.where)
            out.extend(dvc.expand_dir(e, fetched.path.read_bytes()))
        else:
            out.append(e)
    check_unique(out)
    return out


DVC_PUSH_HINT = ("the DVC remote lacks this object: run `dvc push` where the model was added (and commit the "
                 ".dvc / dvc.lock file that names it)")


def _missing_hint(entries: list[Entry]) -> str | None:
    """For DVC's objects (md5) a missing object means an un-pushed `dvc add`."""
    return DVC_PUSH_HINT if any(e.algo == "md5" for e in entries) else None


def _run_all(items: list[Any], fn: Any, jobs: int, dl: Downloader | None = None) -> list[Any]:
    """fn over items on daemon threads; every item runs, then one error names every failure. On Ctrl-C (or any
    other escape) `dl` is cancelled: no transfer continues and no file is placed after it."""
    errors: list[tuple[Any, BaseException]] = []

    def guarded(item: Any) -> Any:
        try:
            return fn(item)
        except (UserError, OSError) as exc:
            errors.append((item, exc))
            return None

    pool = Pool(jobs, "mlci-file")
    try:
        futures = [pool.submit(guarded, item) for item in items]
        results = [f.result() for f in futures]
    except BaseException:
        if dl is not None:
            dl.cancel()
        pool.shutdown(cancel=True)
        raise
    pool.shutdown()
    if errors:
        if len(errors) == 1:
            exc = errors[0][1]
            raise exc if isinstance(exc, UserError) else UserError(str(exc))
        lines = "\n  ".join(str(exc).replace("\n", "\n    ") for _, exc in errors)
        raise UserError(f"{len(errors)} of {len(items)} files failed:\n  {lines}")
    return results


# --- pull ------------------------------------------------------------------------------------------------------
def pull_models(cfg: Config, *, lock: str | None = None, dest: str | None = None, jobs: int | None = None) -> dict:
    """Make DEST hold exactly what the dependency file names; returns
    {files, bytes, cache_hits, downloaded_files, downloaded_bytes, resumed_bytes, unchanged, rehashed, seconds,
    mb_per_s, dest}: `unchanged` files were already in DEST (`rehashed` of them had to be hashed because their
    stamp changed; the rest cost one stat each)."""
    started = time.monotonic()
    entries = load_entries(cfg, lock)
    dest_dir = _dest(cfg, dest)
    cache = _cache(cfg)
    jobs = int(jobs or cfg["artifacts"]["jobs"])
    report = _Report(sum(e.size or 0 for e in entries), "models")
    dl = Downloader(cache, jobs, on_bytes=report.bytes, log=report.log)
    dl.missing_hint = _missing_hint(entries)
    try:
        files = _expand(entries, dl)
        targets = _targets(dest_dir, files)  # all paths checked before anything is written
        stamps = cache.dest_stamps(dest_dir)

        def unchanged(e: Entry) -> _Outcome | None:
            """One stat: the file is in place as verified before (its stamp matches) or not."""
            try:
                st = stamp_of(targets[e.path])
            except OSError:  # reported with the entry's location by the worker that handles it
                return None
            if not dest_stamp_ok(stamps.get(e.path), e.key, st):
                return None
            cache.touch(e.algo, e.digest)  # still in use: `mlci cache gc` keeps it
            out = _Outcome(e, "unchanged", st[0] if st else 0, stamp=[*st, e.key] if st else None)
            report.file(out.size, None)  # no line: the summary counts the files already in place
            return out

        def one(e: Entry) -> _Outcome:
            t0 = time.monotonic()
            target = Path(targets[e.path])
            st = stamp_of(target)
            if st is not None and target.is_file() and hash_file(target, e.algo) == plain(e.digest):
                out = _Outcome(e, "verified", st[0])
                cache.touch(e.algo, e.digest)
            else:
                fetched = _place_fetched(dl, e, target)
                state = "cache hit" if fetched.hit else ("resumed" if fetched.resumed else "downloaded")
                out = _Outcome(e, state, fetched.path.stat().st_size, fetched.downloaded, fetched.resumed)
            st = stamp_of(target)
            out.stamp = [*st, e.key] if st else None
            out.seconds = time.monotonic() - t0
            report.file(out.size, f"{e.path}  {human_bytes(out.size)}  {out.seconds:.2f}s  {out.state}",
                        counted=out.downloaded)
            return out

        # a warm pull is a stat per file: done here, without handing thousands of no-ops to worker threads
        done = {e.path: o for e in files if (o := unchanged(e)) is not None}
        rest = _run_all([e for e in files if e.path not in done], one, jobs, dl)
        outcomes: list[_Outcome] = [*done.values(), *rest]
    finally:
        dl.close()
    changed = {o.entry.path: o.stamp for o in outcomes if o.stamp and o.stamp != stamps.get(o.entry.path)}
    if changed:  # a warm pull rewrites nothing
        cache.save_dest_stamps(dest_dir, changed)
    clean_temps({Path(d) for d in {os.path.dirname(t) for t in targets.values()}})
    seconds = time.monotonic() - started
    downloaded = sum(o.downloaded for o in outcomes)
    summary = {
        "files": len(outcomes),
        "bytes": sum(o.size for o in outcomes),
        "cache_hits": sum(o.state == "cache hit" for o in outcomes),
        "downloaded_files": sum(o.state in ("downloaded", "resumed") for o in outcomes),
        "downloaded_bytes": downloaded,
        "resumed_bytes": sum(o.resumed for o in outcomes),
        "unchanged": sum(o.state in ("unchanged", "verified") for o in outcomes),
        "rehashed": sum(o.state == "verified" for o in outcomes),
        "seconds": round(seconds, 3),
        "mb_per_s": round(downloaded / 1e6 / seconds, 1) if seconds > 0 else 0.0,
        "dest": str(dest_dir),
    }
    report.close(
        f"{summary['files']} files, {human_bytes(summary['bytes'])} in {dest_dir}: "
        f"{summary['downloaded_files']} downloaded ({human_bytes(downloaded)}, {summary['mb_per_s']} MB/s), "
        f"{summary['cache_hits']} cache hits, {summary['unchanged']} already in place, {seconds:.2f}s"
    )
    return summary


# --- status / verify --------------------------------------------------------------------------------------------
def status(cfg: Config, *, lock: str | None = None, dest: str | None = None, full: bool = False,
           jobs: int | None = None) -> list[dict[str, Any]]:
    """Per file: ok / missing / modified. `full` hashes every file (verify); otherwise stamps are trusted
    and only files whose stamp changed are hashed (status)."""
    entries = load_entries(cfg, lock)
    dest_dir = _dest(cfg, dest)
    cache = _cache(cfg)
    jobs = int(jobs or cfg["artifacts"]["jobs"])
    dl = Downloader(cache, jobs)
    dl.missing_hint = _missing_hint(entries)
    try:
        files = _expand(entries, dl)
    finally:
        dl.close()
    stamps = cache.dest_stamps(dest_dir)
    targets = _targets(dest_dir, files)

    def one(e: Entry) -> dict[str, Any]:
        target = Path(targets[e.path])
        st = stamp_of(target)
        row: dict[str, Any] = {"path": e.path, "expected": e.key, "where": e.where}
        if st is None or not target.is_file():
            row.update(state="missing", actual=None)
        elif not full and dest_stamp_ok(stamps.get(e.path), e.key, st):
            row.update(state="ok", actual=e.key, hashed=False)
        else:
            actual = f"{e.algo}:{hash_file(target, e.algo)}"
            row.update(state="ok" if actual == f"{e.algo}:{plain(e.digest)}" else "modified", actual=actual,
                       hashed=True)
        row["stamp"] = [*st, e.key] if st and row["state"] == "ok" else None
        return row

    rows: list[dict[str, Any]] = _run_all(files, one, jobs)
    cache.save_dest_stamps(dest_dir, {r["path"]: r.pop("stamp") for r in rows if r.get("stamp")},
                           drop={r["path"] for r in rows if r["state"] != "ok"})
    for r in rows:
        r.pop("stamp", None)
    return rows


# --- add ---------------------------------------------------------------------------------------------------------
class _Uploader:
    """Content-addressed uploads to `<remote>/sha256/<2>/<62>`: an object already there (same size) is skipped,
    and every uploaded file is copied into the local cache, so the next pull of it is a cache hit."""

    def __init__(self, cfg: Config, remote: str, jobs: int, report: _Report):
        import boto3.s3.transfer

        from .. import s3 as s3mod

        self.s3mod, self.remote, self.report = s3mod, remote, report
        self.cache = _cache(cfg)
        self.client = s3mod.client(max_pool=2 * jobs + 4)
        self.dl = Downloader(self.cache, jobs, log=report.log)
        self.tconf = boto3.s3.transfer.TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=16 << 20,
                                                      max_concurrency=max(2, jobs))

    def put(self, p: Path, name: str, sha: str | None = None) -> tuple[str, int, str, str]:
        """(sha256, size, uri, 'uploaded' | 'already in S3') for the file `p` (`name` is how messages call it)."""
        size = p.stat().st_size
        sha = sha or hash_file(p, "sha256")
        uri = lockfile.object_uri(self.remote, sha)
        bucket, key = self.s3mod.parse_uri(uri)
        state = "already in S3"
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
            exists = int(head["ContentLength"]) == size
        except Exception as exc:  # noqa: BLE001 - 404 is the expected case
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code not in ("404", "NoSuchKey", "NotFound"):
                raise self.s3mod.explain(exc, uri) from None
            exists = False
        if not exists:
            self.dl.call(lambda s3: s3.upload_file(str(p), bucket, key, Config=self.tconf,
                                                   ExtraArgs={"Metadata": {"sha256": sha}}), uri, name)
            state = "uploaded"
        try:
            self.cache.insert_copy(p, "sha256", sha)
        except OSError as exc:  # the cache is an optimisation: never fail an upload for it
            self.report.log(f"warning: could not copy {name} into the cache: {exc}")
        return sha, size, uri, state

    def close(self) -> None:
        self.dl.close()


def _upload_remote(cfg: Config, remote: str | None) -> str:
    from .. import s3 as s3mod

    remote = remote or cfg["artifacts"]["remote"]
    if not remote:
        raise UserError("no remote to upload to", where=str(cfg.path),
                        hint="set artifacts.remote: s3://bucket/prefix in ml-ci.yaml or pass --remote")
    s3mod.parse_uri(remote)
    return remote


def add_models(cfg: Config, files: list[str], *, remote: str | None = None, lock: str | None = None,
               jobs: int | None = None) -> list[Entry]:
    """Upload files content-addressed (skipping objects already there) and write/update the mlci lock file."""
    spec = str(lock) if lock is not None else cfg["artifacts"]["models"]["lock"]
    lock_path = _arg_path(cfg, spec) if lock is not None else cfg.resolve(spec)
    if dvc.is_dvc_file(lock_path) or _GLOB_CHARS & set(spec):
        raise UserError(f"{lock_path} is a DVC file or a glob: `mlci models add` writes an mlci lock file",
                        hint="with DVC use `dvc add` + `dvc push`; or pass --lock models.lock")
    remote = _upload_remote(cfg, remote)
    dest_dir = cfg.resolve(cfg["artifacts"]["models"]["dest"])
    old = lockfile.read(lock_path) if lock_path.exists() else []
    jobs = int(jobs or cfg["artifacts"]["jobs"])
    report = _Report(len(files), "models add")
    seen: dict[str, str] = {}
    for name in files:
        p = Path(name).expanduser().resolve()
        if not p.is_file():
            raise UserError(f"{name} is not a file", hint="pass the model files to add (directories: add their files)")
        rel = os.path.relpath(p, dest_dir).replace(os.sep, "/") if dest_dir in p.parents else p.name
        if rel in seen:
            raise UserError(f"{name} and {seen[rel]} would both be stored as '{rel}'", hint="add one of them")
        seen[rel] = name
    up = _Uploader(cfg, remote, jobs, report)

    def one(name: str) -> Entry:
        t0 = time.monotonic()
        p = Path(name).expanduser().resolve()
        rel = os.path.relpath(p, dest_dir).replace(os.sep, "/") if dest_dir in p.parents else p.name
        sha, size, uri, state = up.put(p, name)
        report.file(1, f"{rel}  {human_bytes(size)}  {time.monotonic() - t0:.2f}s  {state} -> {uri}")
        return Entry(path=rel, algo="sha256", digest=sha, size=size, uri=uri, where=str(lock_path))

    try:
        new = _run_all(list(files), one, jobs)
    finally:
        up.close()
    merged = lockfile.merge(old, new)
    lockfile.write(lock_path, merged)
    report.close(f"{len(new)} file(s) recorded in {lock_path}")
    return new


def add_dataset(cfg: Config, name: str, path: str, *, remote: str | None = None, fmt: str | None = None,
                labels: str | None = None, jobs: int | None = None) -> dict[str, Any]:
    """`mlci data add NAME PATH`: upload a dataset file (or a folder's files and its manifest) content-addressed,
    then write `uri`, `sha256` and `format` of `artifacts.data.NAME` into ml-ci.yaml in place (comments and
    layout kept; the entry's other keys untouched). Returns {name, uri, sha256, format, files, uploaded}."""
    import re
    import tempfile

    from ..accuracy.data import detect_format
    from ..config.loader import parse_yaml, validate
    from ..config.yamledit import set_values
    from ..fsutil import write_text_atomic
    from . import folder

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UserError(f"dataset name '{name}' is not valid", hint="letters, digits, '_', '.', '-' (e.g. speech-test)")
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise UserError(f"{path} does not exist", hint="pass a dataset file or a folder")
    fmt = fmt or detect_format(p, None)
    if p.is_dir() != (fmt == "folder"):
        raise UserError(f"{path} is {'a folder' if p.is_dir() else 'a file'} but the format is '{fmt}'",
                        hint="a folder dataset is a directory (format folder); other formats are one file")
    remote = _upload_remote(cfg, remote)
    jobs = int(jobs or cfg["artifacts"]["jobs"])
    entry = cfg["artifacts"]["data"].get(name) or {}
    values: dict[str, Any] = {}
    if fmt == "folder":
        files = folder.scan(p, _cache(cfg))
        table = labels or entry.get("labels")
        present = {f.path for f in files}
        if table is None:
            found = [t for t in ("labels.csv", "labels.jsonl", "labels.parquet") if t in present]
            if len(found) != 1:
                raise UserError(f"{path}: {'no' if not found else 'more than one'} labels table at the top",
                                hint="add one labels.csv/.jsonl/.parquet naming each file and its label, or pass "
                                "--labels FILE")
        elif table not in present:
            raise UserError(f"{path}: labels table '{table}' is not in the folder", hint="pass --labels FILE")
        if labels:
            values["labels"] = labels
        report = _Report(len(files) + 1, "data add")
        up = _Uploader(cfg, remote, jobs, report)
        try:
            def one(f: folder.FileRef) -> str:
                state = up.put(p / f.path, f.path, f.sha256)[3]
                report.file(1, f"{f.path}  {human_bytes(f.size)}  {state}")
                return state

            states = _run_all(files, one, jobs)
            with tempfile.TemporaryDirectory(prefix="mlci-manifest-") as tmp:
                m = Path(tmp) / "manifest.json"
                m.write_bytes(folder.render(files))
                sha, _, uri, state = up.put(m, f"{name} manifest")
                states.append(state)
                report.file(1, f"manifest  {len(files)} files  {state} -> {uri}")
        finally:
            up.close()
        count = len(files)
    else:
        report = _Report(1, "data add")
        up = _Uploader(cfg, remote, jobs, report)
        try:
            sha, size, uri, state = up.put(p, str(path))
        finally:
            up.close()
        report.file(1, f"{p.name}  {human_bytes(size)}  {state} -> {uri}")
        states, count = [state], 1
    values = {"uri": uri, "sha256": sha, "format": fmt, **values}
    text = cfg.path.read_text(encoding="utf-8")
    new_text = set_values(text, ["artifacts", "data", name], values, str(cfg.path))
    data, lines = parse_yaml(new_text, str(cfg.path))
    _, issues = validate(data, lines)
    if issues:
        raise UserError(f"{cfg.path} would not be valid after recording the dataset: {issues[0].render(str(cfg.path))}",
                        hint="fix the file, then run the command again (the upload is done and will be skipped)")
    if new_text != text:
        write_text_atomic(cfg.path, new_text)
    report.close(f"artifacts.data.{name}: {uri} (sha256 {sha[:12]}...) recorded in {cfg.path}")
    return {"name": name, "uri": uri, "sha256": sha, "format": fmt, "files": count,
            "uploaded": sum(s == "uploaded" for s in states)}


# --- datasets and single objects ------------------------------------------------------------------------------------
def fetch_dataset(cfg: Config, name: str) -> Path:
    """The verified local file of dataset `name` (an s3:// object via the cache, or a repo file)."""
    return _dataset(cfg, name)[0]


def _dataset(cfg: Config, name: str) -> tuple[Path, str]:
    """(verified file, how it was obtained: local | cache hit | downloaded)."""
    datasets = cfg["artifacts"]["data"]
    if name not in datasets:
        raise UserError(f"no dataset '{name}' under artifacts.data", where=str(cfg.path),
                        hint=f"defined: {', '.join(sorted(datasets)) or '(none)'}")
    ds = datasets[name]
    uri, sha = ds["uri"], ds.get("sha256")
    where = f"{cfg.path}: artifacts.data.{name}"
    cache = _cache(cfg)
    if not uri.startswith("s3://"):
        path = cfg.resolve(uri)
        if path.is_dir():  # a folder dataset: pinned by the digest of its manifest
            from . import folder

            actual = folder.digest(folder.scan(path, cache))
            if sha and actual != sha:
                raise UserError(f"folder {path} has manifest sha256 {actual}, expected {sha}", where=where,
                                hint="restore the folder, or re-pin it: `mlci data add NAME DIR` (or update sha256)")
            return path, "local"
        if not path.is_file():
            raise UserError(f"dataset file {path} does not exist", where=where, hint="fix artifacts.data uri")
        if sha:
            key = f"sha256:{sha}"
            stamps = cache.dest_stamps(path.parent)
            st = stamp_of(path)
            if not dest_stamp_ok(stamps.get(path.name), key, st):
                actual = hash_file(path, "sha256")
                if actual != sha:
                    raise UserError(f"sha256 mismatch for {path}: expected {sha}, got {actual}", where=where,
                                    hint="restore the file or update artifacts.data.<name>.sha256")
                cache.save_dest_stamps(path.parent, {path.name: [*st, key]} if st else {})
        return path, "local"
    dl = Downloader(cache, int(cfg["artifacts"]["jobs"]))
    try:
        fetched = dl.ensure("sha256", sha, uri, None, where) if sha else dl.fetch_unknown(uri, where)[1]
    finally:
        dl.close()
    return fetched.path, "cache hit" if fetched.hit else "downloaded"


def _pull_folder(cfg: Config, name: str, manifest_path: Path, dest: Path | None) -> int:
    """Fetch every file a folder manifest lists into the cache, verified (and place them under `dest`)."""
    from . import folder

    uri = cfg["artifacts"]["data"][name]["uri"]
    where = f"{cfg.path}: artifacts.data.{name}"
    refs = list(folder.parse(manifest_path.read_bytes(), uri).values())
    base = folder.objects_base(uri)
    jobs = int(cfg["artifacts"]["jobs"])
    dl = Downloader(_cache(cfg), jobs)
    targets = {r.path: safe_join(dest, r.path, what=f"manifest path '{r.path}'") for r in refs} if dest else {}

    def one(r: folder.FileRef) -> int:
        fetched = dl.ensure("sha256", r.sha256, lockfile.object_uri(base, r.sha256), r.size, f"{where} ({r.path})")
        if dest is not None:
            place(fetched.path, targets[r.path], dl.stop)
        return r.size

    try:
        return sum(_run_all(refs, one, jobs, dl))
    finally:
        dl.close()


def fetch_by_digest(cfg: Config, sha256: str, dest: Path) -> Path:
    """Fetch `<artifacts.remote>/sha256/<2>/<62>` verified into `dest` (a file path; an existing directory
    gets the file named by the digest). Used to fetch a baseline model by its recorded digest."""
    sha = sha256.split(":", 1)[1] if sha256.startswith("sha256:") else sha256
    if not is_hex(sha, 64):
        raise UserError(f"'{sha256}' is not a sha256 digest", hint="64 lowercase hex digits, optionally sha256:")
    remote = cfg["artifacts"]["remote"]
    if not remote:
        raise UserError("artifacts.remote is not set: no content-addressed store to fetch from",
                        where=str(cfg.path), hint="set artifacts.remote: s3://bucket/prefix")
    uri = lockfile.object_uri(remote, sha)
    dest = Path(dest)
    target = dest / sha if dest.is_dir() else dest
    dl = Downloader(_cache(cfg), int(cfg["artifacts"]["jobs"]))
    try:
        fetched = dl.ensure("sha256", sha, uri, None, f"sha256:{sha}")
    finally:
        dl.close()
    place(fetched.path, target)
    return target


def _file_name(uri: str, where: str) -> str:
    """The file name a dataset gets in `data pull --dest`: the last part of its URI, which must be a name (an
    S3 key may end in `..`, `.` or `/`, none of which names a file inside DEST)."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or uri.endswith("/") or "\\" in name or "\0" in name:
        raise UserError(f"'{uri}' does not end in a file name that can be placed in --dest", where=where,
                        hint="point the dataset at an object whose key ends in a file name, e.g. .../test.npz")
    return name


def pull_data(cfg: Config, names: list[str] | None = None, dest: str | None = None) -> list[dict[str, Any]]:
    """`mlci data pull`: fetch datasets (all when none named) into the cache, optionally placed in DEST."""
    datasets = cfg["artifacts"]["data"]
    wanted = names or sorted(datasets)
    unknown = [n for n in wanted if n not in datasets]
    if unknown:  # all names checked before anything is fetched
        raise UserError(f"no dataset {', '.join(repr(n) for n in unknown)} under artifacts.data",
                        where=str(cfg.path), hint=f"defined: {', '.join(sorted(datasets)) or '(none)'}")
    report = _Report(len(wanted), "data")
    rows = []
    started = time.monotonic()
    for name in wanted:
        t0 = time.monotonic()
        path, state = _dataset(cfg, name)
        target = None if dest is None else _arg_path(cfg, dest) / (
            name if datasets[name]["format"] == "folder" or path.is_dir()
            else _file_name(datasets[name]["uri"], f"{cfg.path}: artifacts.data.{name}.uri"))
        if path.is_dir():  # a local folder
            from . import folder

            files = folder.list_files(path)
            for rel, src in files if target is not None else []:
                place(src, target / rel)
            size = sum(src.stat().st_size for _, src in files)
        elif datasets[name]["format"] == "folder":  # the manifest of a folder in S3: fetch its files too
            size = _pull_folder(cfg, name, path, target)
        else:
            if target is not None:
                place(path, target)
            size = path.stat().st_size
        path = target or path
        seconds = time.monotonic() - t0
        report.file(1, f"{name}  {human_bytes(size)}  {seconds:.2f}s  {state}")
        rows.append({"name": name, "path": str(path), "size": size, "state": state, "seconds": round(seconds, 3)})
    report.close(f"{len(rows)} dataset(s), {human_bytes(sum(r['size'] for r in rows))}, "
                 f"{sum(r['state'] == 'cache hit' for r in rows)} cache hits, {time.monotonic() - started:.2f}s")
    return rows
