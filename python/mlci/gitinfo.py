"""Git facts for provenance and seeds. Jenkins' env vars win (its checkout is often a detached HEAD)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _git(args: list[str], cwd: Path | str | None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def commit(cwd: Path | str | None = None) -> str | None:
    return os.environ.get("GIT_COMMIT") or _git(["rev-parse", "HEAD"], cwd)


def branch(cwd: Path | str | None = None) -> str | None:
    """Branch being built: CHANGE_TARGET-free BRANCH_NAME in multibranch Jenkins, else git's current branch."""
    name = os.environ.get("BRANCH_NAME") or os.environ.get("GIT_BRANCH") or _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if name and name.startswith("origin/"):
        name = name[len("origin/"):]
    return None if name == "HEAD" else name


def is_dirty(cwd: Path | str | None = None) -> bool:
    return bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd))
