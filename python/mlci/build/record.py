"""Pure pieces of a build: tags, provenance labels, the build record (build.json) and version compatibility.

Data in, data out, no Docker: the orchestration in `image.py` does the I/O.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

SCHEMA = "mlci.build/1"

LABEL_VERSION = "org.mlci.version"
LABEL_SERVICE = "org.mlci.service"
LABEL_COMMIT = "org.opencontainers.image.revision"
LABEL_BRANCH = "org.mlci.git.branch"
LABEL_DIRTY = "org.mlci.git.dirty"
LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_LOCK = "org.mlci.models.lock"
LABEL_LOCK_SHA = "org.mlci.models.lock_sha256"
LABEL_MODELS = "org.mlci.models.files"

_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize_tag(value: str) -> str:
    """A docker tag: [A-Za-z0-9_.-], not starting with '.' or '-', at most 128 characters ('feature/x' -> 'feature-x')."""
    tag = _TAG_BAD.sub("-", value).lstrip(".-")[:128]
    return tag or "unknown"


def image_tags(name: str, commit: str | None, branch: str | None, dirty: bool) -> list[str]:
    """name:<short commit> and name:<branch>; name:latest when git says nothing.

    An uncommitted tree gives only name:<short commit>-dirty: the branch tag names what the branch holds, and
    a dirty image is not that."""
    tags = []
    if commit:
        tags.append(f"{name}:{commit[:12]}{'-dirty' if dirty else ''}")
    if branch and not dirty:
        tags.append(f"{name}:{sanitize_tag(branch)}")
    if not tags:
        tags.append(f"{name}:latest")
    return list(dict.fromkeys(tags))


def labels(*, service: str, version: str, commit: str | None, branch: str | None, lock: str | None,
           lock_sha256: str | None, model_files: dict[str, str], source: str | None = None,
           dirty: bool = False) -> dict[str, str]:
    """Provenance: where the image came from (commit, branch, repository URL, whether the tree had uncommitted
    changes), which models it holds, which mlci built it."""
    out = {LABEL_SERVICE: service, LABEL_VERSION: version, LABEL_MODELS: json.dumps(model_files, sort_keys=True),
           LABEL_DIRTY: "true" if dirty else "false"}
    for key, value in ((LABEL_COMMIT, commit), (LABEL_BRANCH, branch), (LABEL_SOURCE, source), (LABEL_LOCK, lock),
                       (LABEL_LOCK_SHA, lock_sha256)):
        if value:
            out[key] = value
    return out


def label_args(values: dict[str, str]) -> list[str]:
    args: list[str] = []
    for key in sorted(values):
        args += ["--label", f"{key}={values[key]}"]
    return args


def build_record(*, service: str, name: str, tags: list[str], image_id: str, repo_digest: str | None,
                 commit: str | None, branch: str | None, lock: str | None, lock_sha256: str | None,
                 model_files: dict[str, str], version: str, started: datetime, duration_s: float,
                 run_id: str, dirty: bool = False) -> dict[str, Any]:
    """build.json (schema mlci.build/1, docs/ARCHITECTURE.md). `run.id` names the run: every record the stages
    write against this image carries it, and reports, `--record` and the promotion gate take only its records."""
    return {
        "schema": SCHEMA,
        "service": service,
        "run": {"id": run_id},
        "image": {"name": name, "tags": tags, "id": image_id, "digest": repo_digest or image_id},
        "git": {"commit": commit, "branch": branch, "dirty": dirty},
        "models": {"lock": lock, "lock_sha256": lock_sha256, "files": model_files},
        "mlci_version": version,
        "created": started.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(duration_s, 3),
    }


def new_run_id(env: Mapping[str, str] | None = None, now: datetime | None = None) -> str:
    """$MLCI_RUN_ID when the caller names the run, else Jenkins' BUILD_TAG (one per build), else a fresh id."""
    env = os.environ if env is None else env
    given = env.get("MLCI_RUN_ID") or env.get("BUILD_TAG")
    if given:
        return given
    return f"{(now or utcnow()).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def _major_minor(version: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def compatible(outer: str, inner: str) -> bool:
    """Same major.minor: the CLI contract (commands, flags, record schemas) only changes with the minor."""
    a, b = _major_minor(outer), _major_minor(inner)
    return a is not None and a == b


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
