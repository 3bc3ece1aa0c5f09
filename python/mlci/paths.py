"""Where every output goes: one directory (default .mlci/ in the service repo, or $MLCI_OUT / --out).

Jenkins archives and publishes from this directory, and `mlci pipeline run` prints it at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

BUILD_RECORD = "build.json"
DEPLOY_RECORD = "deploy.json"


def out_dir(value: str | os.PathLike[str] | None = None, root: Path | None = None) -> Path:
    """--out wins, then $MLCI_OUT, then <root>/.mlci."""
    chosen = value or os.environ.get("MLCI_OUT")
    if chosen:
        return Path(chosen).expanduser().resolve()
    return ((root or Path.cwd()) / ".mlci").resolve()


def junit_path(out: Path, stage: str) -> Path:
    return out / "junit" / f"{stage}.xml"


def accuracy_dir(out: Path, suite: str) -> Path:
    return out / "accuracy" / suite


def cache_dir(configured: str | None = None) -> Path:
    """The content-addressed artifact cache: $MLCI_CACHE, else artifacts.cache, else ~/.cache/mlci."""
    return Path(os.environ.get("MLCI_CACHE") or configured or "~/.cache/mlci").expanduser()
