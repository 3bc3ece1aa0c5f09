"""Atomic file writes (nothing half-written is ever left where a later step would read it) that honour the
umask like any other program's files; reading files users wrote; owner locks that tell a killed run's debris
from work in progress."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import UserError


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Write to a temp file next to `path`, fsync, then rename over it; on error the temp file is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 is for temp files, not for models.lock or a report
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it, racing threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        current = os.umask(0o022)
        os.umask(current)
    return current


_UMASK_LOCK = threading.Lock()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_writer(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_writer(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_user_text(path: str | os.PathLike[str], what: str, missing_hint: str) -> str:
    """The text of a file the user wrote; missing, unreadable and non-UTF-8 files are UserErrors naming it (for
    bad bytes: the line and offset)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist", hint=missing_hint) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserError(f"{what} is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}",
                        where=f"{path}:{line}", hint="save it as UTF-8 (or restore it from git)") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


class OwnerLock:
    """An flock held for as long as the process that took it lives. The kernel drops it when that process dies,
    however it dies (SIGKILL included), so a later run tells debris from work in progress by trying the lock.

    The file appears under its final name already locked (locked under a temp name, then renamed), so nobody
    can mistake a lock being created for an abandoned one."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd

    @classmethod
    def take(cls, path: str | os.PathLike[str]) -> OwnerLock:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(tmp, path)
        return cls(path, fd)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)

    @staticmethod
    def abandoned(path: str | os.PathLike[str]) -> bool:
        """True when the lock file exists and nobody holds it (its owner died without cleaning up)."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        else:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own lock


def reap_abandoned(parent: Path, prefix: str, owner: str, legacy_age_s: float = 3600) -> list[Path]:
    """Remove directories `parent/prefix*` whose owner lock (`<dir>/<owner>`) is abandoned: what a killed run
    left. A directory without an owner lock (made by an older mlci) goes once it is `legacy_age_s` old."""
    removed = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    except OSError:
        return removed
    now = time.time()
    for d in candidates:
        lock = d / owner
        try:
            stale = OwnerLock.abandoned(lock) if lock.exists() else now - d.stat().st_mtime > legacy_age_s
        except OSError:
            continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
