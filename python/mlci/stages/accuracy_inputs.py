"""What the accuracy stage looks up before it runs: a reusable PASS record, and the change gates' baseline.

Both lookups go through the report package's history store (and Jenkins, for baselines), so Jenkins'
`mlci test accuracy` and a laptop's `mlci pipeline run` decide the same way. Neither lookup is a gate: a missing
or broken history store means "run the suite" / "no baseline", never a crash.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from .. import gitinfo
from ..artifacts.hashing import hash_file
from ..config.loader import Config
from ..errors import UserError
from ..fsutil import read_json, write_json_atomic
from ..paths import BUILD_RECORD


def _dataset_sha256(cfg: Config, suite: str) -> str | None:
    """The dataset digest known without downloading it: the configured sha256, or a local file's (folder's) digest."""
    name = cfg["accuracy"]["suites"][suite]["dataset"]
    entry = cfg["artifacts"]["data"].get(name)
    if entry and entry["sha256"]:
        return str(entry["sha256"])
    uri = entry["uri"] if entry else name
    if uri.startswith("s3://"):
        return None
    path = cfg.resolve(uri)
    if path.is_dir():
        from ..accuracy.engine import local_digest

        return local_digest(cfg, path)
    return hash_file(path) if path.is_file() else None


def reusable_record(cfg: Config, out: Path, suite: str) -> dict[str, Any] | None:
    """A stored PASS of `suite` on the same model files, dataset and inference code (the result cache)."""
    if not cfg["report"]["history"] or not cfg["report"]["reuse"]:
        return None
    build_path = out / BUILD_RECORD
    if not build_path.is_file():
        return None  # no build record: we cannot know which model files the image holds
    from ..accuracy.engine import code_digest
    from ..report.history import find_reusable

    model_files = (read_json(build_path).get("models") or {}).get("files") or {}
    dataset = _dataset_sha256(cfg, suite)
    code = code_digest(cfg)
    if not (model_files and dataset and code):
        return None
    return find_reusable(cfg, suite=suite, model_files=model_files, dataset_sha256=dataset, code_digest=code)


def reused_copy(record: dict[str, Any], cfg: Config, out: Path) -> dict[str, Any]:
    """The stored record re-issued for this build: this build's git and image (so the deploy gate finds it),
    the original run's numbers, and where they came from."""
    build = read_json(out / BUILD_RECORD) if (out / BUILD_RECORD).is_file() else {}
    image = build.get("image") or {}
    origin = record.get("history") or {}
    copy = {k: v for k, v in record.items() if k != "history"}
    copy["git"] = {"commit": gitinfo.commit(cfg.root), "branch": gitinfo.branch(cfg.root)}
    copy["image"] = {"name": image.get("name"), "digest": image.get("digest")} if image.get("digest") else None
    copy["reused_from"] = {"record": origin.get("id"), "git": record.get("git"), "image": record.get("image"),
                           "reused_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return copy


def baseline_file(cfg: Config, out: Path, suite: str) -> Path | None:
    """For a suite with a change gate: a baseline accuracy.json naming the baseline branch's current model, written
    under <out>/baselines/; None when the suite has no change gate.

    Only the record's model files matter (the engine fetches them by digest and predicts on this run's sample), so
    the latest PASS of this suite is preferred and any other suite's PASS on the baseline branch will do: a new
    change-gated suite must not need a PASS of itself before it can ever pass. No baseline at all is an input
    error: the change gate cannot be judged, and silently skipping it would pass an unchecked model."""
    suites = cfg["accuracy"]["suites"]
    if not any(g["kind"] == "change" for g in suites[suite]["gates"]):
        return None
    from ..report.baseline import find_baseline

    commit = gitinfo.commit(cfg.root)
    sources = []
    for name in [suite, *sorted(n for n in suites if n != suite)]:
        found = find_baseline(cfg, suite=name, exclude_commit=commit)
        if found.record is not None and (found.record.get("model") or {}).get("files"):
            path = out / "baselines" / f"{suite}.json"
            write_json_atomic(path, found.record)
            print(f"[accuracy {suite}] baseline model: suite {name}'s record from {found.source}", flush=True)
            return path
        sources.append(found.source)
    raise UserError(f"suite '{suite}' has a change gate but there is no baseline model: {sources[0]}",
                    where=f"accuracy.suites.{suite}.gates",
                    hint="record a PASS on the baseline branch first (report.history, or a Jenkins build), e.g. "
                         "of an every-build suite with absolute gates")
