"""The run-cache key: what makes two training runs the same run.

key = sha256 over (code digest, each input's pinned data digest, params digest, the command and outputs).
The code digest covers every file of the training build context plus the Dockerfile and build arguments, but
not the files publishing rewrites (dependency file, training record, model directory, output directories):
otherwise publishing a model would change the "code" and no run could ever be reused.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..artifacts.hashing import hash_file
from .settings import TrainSettings

SKIP_DIRS = {".git", ".mlci", "__pycache__", ".pytest_cache", ".venv", "node_modules", ".ruff_cache"}
SKIP_FILES = ("*.pyc", "*.pyo", ".DS_Store")


def _dockerignore(context: Path) -> list[str]:
    f = context / ".dockerignore"
    if not f.is_file():
        return []
    return [ln.strip().rstrip("/") for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith(("#", "!"))]


def code_files(context: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Files that make up the training code, sorted, relative to `context`."""
    excluded = {p.resolve() for p in exclude}
    ignore = _dockerignore(context)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(context):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if n not in SKIP_DIRS and (d / n).resolve() not in excluded
                             and not any(fnmatch.fnmatch(str((d / n).relative_to(context)), pat) for pat in ignore))
        for name in sorted(filenames):
            full = d / name
            rel = full.relative_to(context)
            if any(fnmatch.fnmatch(name, pat) for pat in SKIP_FILES) or full.resolve() in excluded:
                continue
            if any(fnmatch.fnmatch(str(rel), pat) for pat in ignore):
                continue
            files.append(rel)
    return sorted(files)


def code_digest(s: TrainSettings, extra_exclude: Iterable[Path] = ()) -> str:
    """Digest of the training code: context files (path + content), Dockerfile, base image, build args."""
    exclude = [s.lock, s.record_path, s.root / s.models_dest, *extra_exclude]
    h = hashlib.sha256()
    for rel in code_files(s.context, exclude):
        h.update(f"{rel.as_posix()}\0{hash_file(s.context / rel)}\n".encode())
    h.update(b"dockerfile\0" + hash_file(s.dockerfile).encode())
    h.update(json.dumps({"base": s.base, "build_args": s.build_args}, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()


def params_digest(s: TrainSettings) -> str | None:
    return "sha256:" + hash_file(s.params) if s.params else None


def run_key(code: str, data: dict[str, str], params: str | None, command: str, outputs: Iterable[str]) -> str:
    """The run-cache key (hex): equal keys mean the same code, data, parameters and command."""
    blob = json.dumps({"code": code, "data": dict(sorted(data.items())), "params": params, "command": command,
                       "outputs": sorted(outputs)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
