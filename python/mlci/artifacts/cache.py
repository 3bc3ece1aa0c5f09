"""The local content-addressed cache, shared by concurrent builds on one agent.

Layout under the cache root ($MLCI_CACHE, else artifacts.cache, else ~/.cache/mlci; mount it into containers
as a BuildKit cache mount and builds share it too)::

    objects/<algo>/<2 hex>/<rest>       verified objects, read-only (sha256 from mlci, md5 from DVC)
    objects/<algo>/<2 hex>/<rest>.ok    stamp (size mtime_ns inode device ctime_ns) taken right after verification;
                                        its own mtime is the object's last use (`mlci cache gc` evicts by it)
    locks/<algo>-<digest>.lock          flock: one download per object even when several pulls race
    partial/<algo>-<digest>.part(.json) interrupted downloads, resumed by the next pull
    quarantine/                         objects that failed verification, with a .json saying why
    dest-stamps/<hash of DEST>.json     stamps of files placed in a DEST, so a warm pull hashes nothing

Why stamps: re-hashing multi-GB models on every build costs seconds to minutes; a file whose size, mtime,
inode, device and ctime are unchanged since it was verified has not been rewritten. Anything that writes to
it changes the mtime and the ctime (which, unlike the mtime, nobody can set back), and a stamp mismatch
triggers a re-hash, never blind trust. Files placed in a DEST are copies (or reflinks), never hard links of
the objects, so editing one cannot reach the cache; an object edited in the cache itself (a container with
the cache mounted, a chmod) fails its stamp and is re-verified, and quarantined if it no longer matches.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..fsutil import write_json_atomic
from .hashing import Stamp, hash_file, same_stamp, stamp_of
from .pool import Cancelled


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)

    # --- objects -------------------------------------------------------------------------------------------
    def object_path(self, algo: str, digest: str) -> Path:
        return self.root / "objects" / algo / digest[:2] / digest[2:]

    def partial_path(self, algo: str, digest: str) -> Path:
        return self.root / "partial" / f"{algo}-{digest}.part"

    @contextlib.contextmanager
    def lock(self, algo: str, digest: str, on_wait: Callable[[], None] | None = None, *,
             wait: bool = True) -> Iterator[bool]:
        """Exclusive flock per object: works across processes and containers sharing the cache directory.
        `on_wait` is called when another holder makes us wait (so a log says why a pull is idle); with
        `wait=False` the context yields False instead of waiting (gc skips objects a pull is working on)."""
        path = self.root / "locks" / f"{algo}-{digest}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if on_wait:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def touch(self, algo: str, digest: str) -> None:
        """Record a use (the stamp file's mtime is the last-use time `mlci cache gc` evicts by). Best effort:
        a read-only cache mount or an evicted object simply has no use recorded. (String paths: a warm pull
        touches thousands.)"""
        with contextlib.suppress(OSError):
            os.utime(os.path.join(self.root, "objects", algo, digest[:2], digest[2:] + ".ok"))

    def trusted(self, algo: str, digest: str) -> bool:
        """The object exists and its stamp matches (verified earlier, not rewritten since)."""
        obj = self.object_path(algo, digest)
        try:
            recorded = tuple(int(x) for x in stamp_file(obj).read_text().split())
        except (FileNotFoundError, ValueError):
            return False
        return same_stamp(recorded, stamp_of(obj))

    def check(self, algo: str, digest: str, uri: str) -> bool:
        """Under the object's lock: is a usable verified object present? Re-hash when the stamp is stale;
        a corrupted entry is quarantined (and False returned, so the caller downloads it again)."""
        obj = self.object_path(algo, digest)
        if not obj.exists():
            return False
        if self.trusted(algo, digest):
            return True
        actual = hash_file(obj, algo)
        if actual == _plain(digest):
            self._write_stamp(obj)
            return True
        self.quarantine(obj, algo, digest, actual, uri, "corrupted cache entry")
        return False

    def commit(self, tmp: Path, algo: str, digest: str) -> Path:
        """Move a verified temp file into the cache (read-only) and stamp it."""
        obj = self.object_path(algo, digest)
        obj.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, obj)
        self._write_stamp(obj)
        return obj

    def insert_copy(self, src: Path, algo: str, digest: str) -> Path:
        """Copy a local file that was just hashed (e.g. by `models add`) into the cache."""
        with self.lock(algo, digest):
            if self.trusted(algo, digest):
                return self.object_path(algo, digest)
            tmp = self.root / "partial" / f".{algo}-{digest}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp)
            if hash_file(tmp, algo) != _plain(digest):  # the source changed while we copied
                tmp.unlink()
                raise OSError(f"{src} changed while it was copied into the cache")
            return self.commit(tmp, algo, digest)

    def _write_stamp(self, obj: Path) -> None:
        st = stamp_of(obj)
        assert st is not None
        write_hint(stamp_file(obj), " ".join(map(str, st)) + "\n")

    def quarantine(self, path: Path, algo: str, expected: str, actual: str, uri: str, reason: str) -> Path:
        """Move a bad file aside (never delete evidence) and record why."""
        qdir = self.root / "quarantine"
        qdir.mkdir(parents=True, exist_ok=True)
        target = qdir / f"{algo}-{_plain(expected)[:16]}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.replace(path, target)
        with contextlib.suppress(OSError):  # `mlci cache gc --stale` counts from now, not from the download
            os.utime(target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stamp_file(path))
        write_json_atomic(target.with_name(target.name + ".json"), {
            "reason": reason, "uri": uri, "algo": algo, "expected": expected, "actual": actual,
            "size": target.stat().st_size, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        return target

    # --- stamps of files placed in a DEST ----------------------------------------------------------------------
    def _dest_stamp_file(self, dest: Path) -> Path:
        key = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:40]
        return self.root / "dest-stamps" / f"{key}.json"

    def dest_stamps(self, dest: Path) -> dict[str, list[Any]]:
        """{relpath: [size, mtime_ns, inode, device, 'algo:digest']} for files verified in DEST."""
        try:
            data = json.loads(self._dest_stamp_file(dest).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data.get("files", {}) if isinstance(data, dict) else {}

    def save_dest_stamps(self, dest: Path, updates: dict[str, list[Any]], drop: set[str] = frozenset()) -> None:
        """Merge under a lock, so two pulls into one DEST do not lose each other's stamps."""
        f = self._dest_stamp_file(dest)
        f.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(f) + ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            files = self.dest_stamps(dest)
            for k in drop:
                files.pop(k, None)
            files.update(updates)
            write_hint(f, json.dumps({"dest": str(dest.resolve()), "files": files}, sort_keys=True))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def stamp_file(obj: Path) -> Path:
    """The `.ok` stamp next to an object: its content is the verified stat stamp, its mtime the last use."""
    return obj.parent / (obj.name + ".ok")


def write_hint(path: Path, text: str) -> None:
    """Atomic (temp + rename) but not fsynced: stamps, part lists and indexes are hints that are re-checked
    (a lost or stale hint costs a re-hash or a re-download, never a wrong file), and an fsync per object or
    per part would cost more than the whole transfer of small files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def plain(digest: str) -> str:
    return _plain(digest)


def dest_stamp_ok(record: list[Any] | None, key: str, stamp: Stamp | None) -> bool:
    return bool(record) and record[-1] == key and same_stamp(record[:-1], stamp)


# Placement. A placed file is its own inode (a reflink where the filesystem has them, else a copy), never a
# hard link of the cache object: a model edited in place in one workspace must not change the object every
# other build on the agent is given. Cancelling (Ctrl-C) takes _PLACING, so no file is placed after it.
_PLACING = threading.Lock()
_TEMPS: set[Path] = set()
_FICLONE = 0x40049409  # linux/fs.h: share the source's extents (btrfs, XFS, overlayfs on them)
_COPY_CHUNK = 64 << 20
TEMP_INFIX = ".mlci-"
STALE_TEMP_S = 900


def place(obj: Path, target: Path, stop: threading.Event | None = None) -> None:
    """Put a cached object at `target` through a temp name and a rename, so nothing half-written is ever at
    `target`. Raises Cancelled when `stop` is set (the temp file is removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{TEMP_INFIX}{uuid.uuid4().hex[:8]}")
    with _PLACING:
        _check(stop)
        _TEMPS.add(tmp)
    try:
        _clone(obj, tmp, stop)
        with _PLACING:
            _check(stop)
            os.replace(tmp, target)
    finally:
        with _PLACING:
            _TEMPS.discard(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def stop_placing(stop: threading.Event) -> None:
    """Set `stop` so that no further file is placed, and remove the temp files of placements in flight."""
    with _PLACING:
        stop.set()
        for tmp in list(_TEMPS):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Cancelled()


def _clone(src: Path, dst: Path, stop: threading.Event | None) -> None:
    """dst = a new file with src's bytes: a reflink when possible, else an in-kernel copy (copy_file_range),
    in chunks so that a cancel is noticed. The new file's mode follows the umask, like any file mlci writes."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except OSError:
            pass
        size = os.fstat(fin.fileno()).st_size
        done = 0
        while done < size:
            _check(stop)
            try:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(_COPY_CHUNK, size - done))
            except OSError:  # no copy_file_range across these filesystems: copy through user space
                fin.seek(done)
                fout.seek(done)
                shutil.copyfileobj(fin, fout, 1 << 20)
                return
            if n == 0:
                raise OSError(f"{src} shrank while it was copied")
            done += n


def clean_temps(directories: set[Path], now: float | None = None) -> int:
    """Remove temp files earlier placements left in these directories: any that is the same file as its
    target (an old hard-link placement whose rename was a no-op) or that nobody has written for
    STALE_TEMP_S (a killed pull). A temp a concurrent pull is writing right now is left alone."""
    now = time.time() if now is None else now
    removed = 0
    for d in directories:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if not name.startswith(".") or TEMP_INFIX not in name:
                continue
            path = d / name
            with _PLACING:
                if path in _TEMPS:
                    continue
            final = d / name[1:].rsplit(TEMP_INFIX, 1)[0]
            try:
                st = os.lstat(path)
                same = final.exists() and os.path.samestat(st, os.stat(final))
                if same or now - st.st_mtime > STALE_TEMP_S:
                    os.unlink(path)
                    removed += 1
            except OSError:
                continue
    return removed


def _plain(digest: str) -> str:
    """A DVC directory digest '<md5>.dir' names the manifest whose md5 is <md5>."""
    return digest[:-4] if digest.endswith(".dir") else digest
