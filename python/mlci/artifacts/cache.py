"""The local content-addressed cache, shared by concurrent builds on one agent.

Layout under the cache root ($MLCI_CACHE, else artifacts.cache, else ~/.cache/mlci; mount it into containers
as a BuildKit cache mount and builds share it too)::

    objects/<algo>/<2 hex>/<rest>       verified objects, read-only (sha256 from mlci, md5 from DVC)
    objects/<algo>/<2 hex>/<rest>.ok    stamp (size mtime_ns inode device) taken right after verification;
                                        its own mtime is the object's last use (`mlci cache gc` evicts by it)
    locks/<algo>-<digest>.lock          flock: one download per object even when several pulls race
    partial/<algo>-<digest>.part(.json) interrupted downloads, resumed by the next pull
    quarantine/                         objects that failed verification, with a .json saying why
    dest-stamps/<hash of DEST>.json     stamps of files placed in a DEST, so a warm pull hashes nothing

Why stamps: re-hashing multi-GB models on every build costs seconds to minutes; a file whose size, mtime,
inode and device are unchanged since it was verified has not been rewritten. Anything that writes to it
changes the mtime, and a stamp mismatch triggers a re-hash, never blind trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..fsutil import write_json_atomic
from .hashing import Stamp, hash_file, same_stamp, stamp_of


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
        a read-only cache mount or an evicted object simply has no use recorded."""
        with contextlib.suppress(OSError):
            os.utime(stamp_file(self.object_path(algo, digest)))

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
    return bool(record) and record[-1] == key and same_stamp(record[:4], stamp)


def place(obj: Path, target: Path) -> None:
    """Put a cached object at `target`: hardlink (instant, no extra space), copy across devices.

    Always through a temp name and a rename: an existing file at `target` may be a hardlink of another
    cache object, and writing into it would corrupt the cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.mlci-{uuid.uuid4().hex[:8]}")
    try:
        try:
            os.link(obj, tmp)
        except OSError:  # EXDEV (cache mount vs image layer), EPERM, EMLINK: copy instead
            shutil.copyfile(obj, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _plain(digest: str) -> str:
    """A DVC directory digest '<md5>.dir' names the manifest whose md5 is <md5>."""
    return digest[:-4] if digest.endswith(".dir") else digest
