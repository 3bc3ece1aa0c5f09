"""`mlci cache gc`: keep an agent's shared artifact cache within a size, least recently used first.

Why it is safe while builds run: every use of an object (cache hit, download, a warm pull that finds DEST
already right) refreshes its last-use time (the mtime of its `.ok` stamp), and gc never evicts an object used
within `keep_recent` (default a day), because a pipeline may pull a dataset now and read it from the cache in
a container minutes later. An object is deleted only under its own lock (a download in progress holds it,
so it is skipped), and a pull that loses an object between finding and placing it fetches it again.
Files already placed in a DEST are hardlinks or copies: evicting the cache entry never touches them.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import Cache, stamp_file


@dataclass(frozen=True)
class CachedObject:
    algo: str
    digest: str
    size: int
    last_used: float  # seconds since the epoch


def choose(objects: list[CachedObject], *, now: float, max_bytes: int | None, older_than: float | None,
           keep_recent: float) -> tuple[list[CachedObject], list[CachedObject]]:
    """(evict, kept-although-over-the-limit): objects unused for `older_than` seconds go, then the least
    recently used until the total fits `max_bytes`; nothing used within `keep_recent` seconds goes."""
    evict: list[CachedObject] = []
    total = sum(o.size for o in objects)
    protected: list[CachedObject] = []
    for o in sorted(objects, key=lambda o: (o.last_used, o.digest)):
        age = now - o.last_used
        expired = older_than is not None and age > older_than
        too_big = max_bytes is not None and total > max_bytes
        if not (expired or too_big):
            continue
        if age <= keep_recent:
            if too_big:
                protected.append(o)
            continue
        evict.append(o)
        total -= o.size
    return evict, protected


def scan(cache: Cache) -> list[CachedObject]:
    """Every object in the cache with its size and last use (the `.ok` stamp's mtime, else the object's)."""
    found = []
    objects = cache.root / "objects"
    for algo_dir in sorted(p for p in objects.glob("*") if p.is_dir()):
        for f in algo_dir.glob("??/*"):
            name = f.name
            if name.endswith(".ok") or name.startswith("."):
                continue
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            try:
                used = stamp_file(f).stat().st_mtime
            except FileNotFoundError:
                used = st.st_mtime
            found.append(CachedObject(algo_dir.name, f.parent.name + name, st.st_size, used))
    return found


def collect(cache: Cache, *, max_bytes: int | None, older_than: float | None, keep_recent: float,
            stale_after: float, dry_run: bool = False, now: float | None = None) -> dict[str, Any]:
    """Evict objects, drop abandoned partial downloads and old quarantine entries, forget stamps of DEST
    directories that no longer exist. Returns a summary (what was, or with `dry_run` would be, removed)."""
    now = time.time() if now is None else now
    objects = scan(cache)
    evict, protected = choose(objects, now=now, max_bytes=max_bytes, older_than=older_than,
                              keep_recent=keep_recent)
    evicted, busy = [], []
    for o in evict:
        if dry_run or _evict(cache, o, keep_recent, now):
            evicted.append(o)
        else:
            busy.append(o)
    size = sum(o.size for o in objects)
    freed = sum(o.size for o in evicted)
    partial = _stale_files(cache.root / "partial", now - stale_after, dry_run)
    quarantine = _stale_files(cache.root / "quarantine", now - stale_after, dry_run)
    return {
        "cache": str(cache.root), "dry_run": dry_run,
        "objects": len(objects), "bytes": size,
        "evicted": len(evicted), "evicted_bytes": freed,
        "kept": len(objects) - len(evicted), "kept_bytes": size - freed,
        "busy": len(busy), "recent_over_limit": len(protected),
        "stale_partial": partial, "stale_quarantine": quarantine,
        "forgotten_dests": _forget_missing_dests(cache, dry_run),
        "evicted_objects": [f"{o.algo}:{o.digest}" for o in evicted],
    }


def _evict(cache: Cache, o: CachedObject, keep_recent: float, now: float) -> bool:
    """Delete one object under its lock, unless a pull holds the lock or used it since the scan."""
    with cache.lock(o.algo, o.digest, wait=False) as locked:
        if not locked:
            return False
        obj = cache.object_path(o.algo, o.digest)
        with contextlib.suppress(FileNotFoundError):
            if now - stamp_file(obj).stat().st_mtime <= keep_recent:
                return False
        for f in (obj, stamp_file(obj)):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        return True


def _stale_files(directory: Path, cutoff: float, dry_run: bool) -> int:
    """Files not modified since `cutoff`: partial downloads nobody resumed, quarantined objects and their
    records (kept for a while as evidence, then they only take space)."""
    count = 0
    for f in sorted(directory.glob("*")) if directory.is_dir() else []:
        try:
            if not f.is_file() or f.stat().st_mtime >= cutoff:
                continue
            if not dry_run:
                f.unlink()
            count += 1
        except FileNotFoundError:
            continue
    return count


def _forget_missing_dests(cache: Cache, dry_run: bool) -> int:
    count = 0
    for f in sorted((cache.root / "dest-stamps").glob("*.json")):
        try:
            dest = json.loads(f.read_text()).get("dest")
        except (OSError, ValueError, AttributeError):
            continue
        if dest and not Path(dest).exists():
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
            count += 1
    return count
