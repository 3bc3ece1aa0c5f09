"""Folder datasets (images, audio, text files plus a labels table) pinned by a manifest.

A folder is pinned the way DVC pins a directory: by a manifest listing every file with its sha256 and size,
itself identified by the sha256 of its bytes. `mlci data add NAME DIR` uploads each file content-addressed
(`<remote>/sha256/<2>/<62>`, skipping objects already there), then the manifest the same way, and writes the
manifest's URI and sha256 into ml-ci.yaml. So one 64-hex digest in the config covers every byte of the folder:
the manifest is verified against it when fetched, and each file against the manifest when a worker fetches it
(lazily, per batch). Files live next to the manifest: under the prefix the manifest's own `sha256/...` key
hangs from.

A local folder (`uri: data/clips/`) has the same digest, computed by hashing its files; stat stamps in the
cache skip files unchanged since they were last hashed, so a warm run costs one stat per file.

Manifest (JSON, sorted, no whitespace variation, so equal folders give equal bytes)::

    {"files": [{"path": "a/1.wav", "sha256": "<64 hex>", "size": 5120}, ...], "schema": "mlci.folder/1"}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .cache import Cache
from .entries import check_digest, check_relpath
from .hashing import hash_file, same_stamp, stamp_of

SCHEMA = "mlci.folder/1"


@dataclass(frozen=True)
class FileRef:
    path: str  # POSIX, relative to the folder
    sha256: str
    size: int


def render(files: list[FileRef]) -> bytes:
    items = [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in sorted(files, key=lambda f: f.path)]
    return (json.dumps({"files": items, "schema": SCHEMA}, sort_keys=True, separators=(",", ":")) + "\n").encode()


def digest(files: list[FileRef]) -> str:
    return hashlib.sha256(render(files)).hexdigest()


def parse(data: bytes, where: str) -> dict[str, FileRef]:
    """{path: FileRef} of a manifest; paths are checked for traversal before anything uses them."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"folder manifest is not JSON: {exc}", where=where,
                        hint="a folder dataset's uri names the manifest `mlci data add NAME DIR` wrote") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("files"), list):
        raise UserError(f"not an {SCHEMA} manifest", where=where,
                        hint="a folder dataset's uri names the manifest `mlci data add NAME DIR` wrote")
    out: dict[str, FileRef] = {}
    for i, item in enumerate(doc["files"]):
        if not isinstance(item, dict) or not {"path", "sha256", "size"} <= set(item):
            raise UserError(f"manifest entry {i} lacks path/sha256/size", where=where)
        path = check_relpath(item["path"], f"{where} (entry {i})")
        sha = check_digest("sha256", item["sha256"], f"{where} (entry {i})")
        size = item["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise UserError(f"manifest entry {i}: size {size!r} is not a non-negative integer", where=where)
        out[path] = FileRef(path, sha, size)
    return out


def list_files(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every regular file under root, sorted; symlinks are refused (a link could
    pull files from outside the folder into an upload or a verdict)."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                raise UserError(f"{p} is a symbolic link", hint="a folder dataset holds regular files only; copy "
                                "the target in instead")
        for name in filenames:
            p = Path(dirpath) / name
            found.append((p.relative_to(root).as_posix(), p))
    return sorted(found)


def scan(root: Path, cache: Cache | None = None) -> list[FileRef]:
    """Hash every file under root (skipping, through the cache's stamps, files unchanged since last hashed)."""
    stamps = cache.dest_stamps(root) if cache is not None else {}
    refs, updates = [], {}
    for rel, p in list_files(root):
        st = stamp_of(p)
        known = stamps.get(rel)
        if known and same_stamp(known[:4], st) and str(known[-1]).startswith("sha256:"):
            sha = str(known[-1])[len("sha256:"):]
        else:
            sha = hash_file(p, "sha256")
            if st is not None:
                updates[rel] = [*st, f"sha256:{sha}"]
        refs.append(FileRef(rel, sha, st[0] if st else p.stat().st_size))
    if cache is not None and updates:
        with contextlib.suppress(OSError):  # stamps only save work; a read-only cache still gives the digest
            cache.save_dest_stamps(root, updates)
    return refs


def objects_base(manifest_uri: str) -> str:
    """Where a manifest's files live: the prefix its own `sha256/<2>/<62>` key hangs from, else its directory."""
    parts = manifest_uri.rstrip("/").split("/")
    if len(parts) >= 6 and parts[-3] == "sha256" and len(parts[-2]) == 2 and len(parts[-1]) == 62:
        return "/".join(parts[:-3])
    return "/".join(parts[:-1])
