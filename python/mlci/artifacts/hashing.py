"""Digests and stat stamps.

Hashing is the only CPU cost of a pull, so it reads with `readinto` into one reused buffer (no per-chunk
allocation) and lets hashlib release the GIL: several files hash in parallel on several cores.

A stamp is (size, mtime_ns, inode, device, ctime_ns) of a file that was verified. A warm pull compares stamps
instead of re-hashing multi-GB files on every build; anything that rewrites a file changes its ctime (which,
unlike the mtime, cannot be set back), so only changed files are hashed again. `mlci models verify` ignores
stamps and always hashes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]*")
ALGOS = ("sha256", "md5")

Stamp = tuple[int, int, int, int, int]


def new_hash(algo: str) -> Any:
    if algo not in ALGOS:
        raise ValueError(f"unsupported digest algorithm {algo!r}")
    return hashlib.new(algo)


def hash_file(path: str | os.PathLike[str], algo: str = "sha256", *, limit: int | None = None) -> str:
    """Hex digest of a file (or of its first `limit` bytes)."""
    h = new_hash(algo)
    update_from_file(h, path, 0, limit)
    return h.hexdigest()


def update_from_file(h: Any, path: str | os.PathLike[str], start: int = 0, length: int | None = None) -> int:
    """Feed bytes [start, start+length) of a file into `h`; returns the number of bytes read."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    done = 0
    with open(path, "rb", buffering=0) as fh:
        if start:
            fh.seek(start)
        while length is None or done < length:
            want = CHUNK if length is None else min(CHUNK, length - done)
            n = fh.readinto(view[:want])
            if not n:
                break
            h.update(view[:n])
            done += n
    return done


def stamp_of(path: str | os.PathLike[str]) -> Stamp | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)


def split_digest(value: str) -> tuple[str, str]:
    """'sha256:<hex>' -> ('sha256', hex)."""
    algo, _, hexd = value.partition(":")
    return algo, hexd


def is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.fullmatch(value) is not None


def same_stamp(a: Any, b: Stamp | None) -> bool:
    return b is not None and a is not None and tuple(a) == tuple(b)


def file_size(path: Path) -> int:
    return path.stat().st_size
