"""Git facts for provenance and seeds: the commit, branch and URL of the SERVICE being built.

Sources, first wins:
- MLCI_GIT_COMMIT / MLCI_GIT_BRANCH / MLCI_GIT_URL: set by the Jenkins library from the map `checkout scm`
  returned (the service's checkout, whatever else the build checked out);
- for the branch, BRANCH_NAME (a multibranch job's branch: its checkout is a detached HEAD);
- git in the working copy;
- GIT_COMMIT / GIT_BRANCH / GIT_URL, last: other CI systems set them, but in Jenkins they may describe a shared
  library's checkout instead of the service's (jenkinsci/workflow-job-plugin#788), which is why the Jenkins
  runner never passes them to mlci.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path


def _git(args: list[str], cwd: Path | str | None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _env(name: str) -> str | None:
    return (os.environ.get(name) or "").strip() or None


def commit(cwd: Path | str | None = None) -> str | None:
    return _env("MLCI_GIT_COMMIT") or _git(["rev-parse", "HEAD"], cwd) or _env("GIT_COMMIT")


def commit_from_environment() -> bool:
    """True when the commit was handed in (Jenkins, a CI system) rather than read from the working copy, whose
    dirty state then says nothing about what was built."""
    return bool(_env("MLCI_GIT_COMMIT") or _env("GIT_COMMIT"))


def branch(cwd: Path | str | None = None) -> str | None:
    """Branch being built: the checkout's (MLCI_GIT_BRANCH), a multibranch job's BRANCH_NAME, git's current
    branch, else GIT_BRANCH; a remote-tracking name such as origin/main is reported as main."""
    name = (_env("MLCI_GIT_BRANCH") or _env("BRANCH_NAME") or _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
            or _env("GIT_BRANCH"))
    if name and name.startswith("origin/"):
        name = name[len("origin/"):]
    return None if name == "HEAD" else name


def url(cwd: Path | str | None = None) -> str | None:
    """Where the service's repository lives, without any user name or token an https URL may carry."""
    raw = _env("MLCI_GIT_URL") or _git(["remote", "get-url", "origin"], cwd) or _env("GIT_URL")
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", raw) if raw else None


def is_dirty(cwd: Path | str | None = None) -> bool:
    return bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd))


def tree_dirty(cwd: Path | str | None = None) -> bool:
    """Whether what gets built differs from the commit it is labelled with: uncommitted changes to tracked files
    in the working copy. False when the commit was handed in (the checkout is CI's, not a developer's tree) or
    when git knows no commit."""
    return bool(commit(cwd)) and not commit_from_environment() and is_dirty(cwd)
