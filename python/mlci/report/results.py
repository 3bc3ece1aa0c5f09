"""Reading a results directory (the `--out` of a pipeline run): accuracy records, build.json, JUnit files.

This is the I/O edge of the report: everything after it works on plain data. Only this run's records count: a
results directory outlives builds (`.mlci/` on a laptop, a reused Jenkins workspace), so a record left by another
build must never appear in this build's report, be recorded again, or let the promotion gate pass. The run is the
build record's (`build.json`: `run.id` and the image digest); without a build record, the newest record's run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..paths import BUILD_RECORD
from .history import RECORD_SCHEMA, warn
from .junit import JUnitSummary, load_junit_dir


@dataclass
class Results:
    directory: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    record_paths: list[Path] = field(default_factory=list)
    build: dict[str, Any] | None = None
    junit: list[JUnitSummary] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # why each record of another run was left out


def record_files(directory: Path) -> list[Path]:
    """accuracy.json files: the output layout (`accuracy/<suite>/accuracy.json`), a suite dir, or the dir itself."""
    found: list[Path] = []
    for pattern in ("accuracy.json", "accuracy/*/accuracy.json", "*/accuracy.json"):
        for p in sorted(directory.glob(pattern)):
            if p.is_file() and p.resolve() not in {f.resolve() for f in found}:
                found.append(p)
    return found


def read_record(path: Path) -> dict[str, Any]:
    """One accuracy.json, checked against the contract; a broken file is the user's to fix (UserError)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})",
                        hint="re-run `mlci accuracy run`; the file may have been cut off") from None
    if not isinstance(data, dict) or data.get("schema") != RECORD_SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path} is not an accuracy record (schema {schema!r}, expected {RECORD_SCHEMA!r})",
                        hint="pass the output directory of `mlci accuracy run` / `mlci pipeline run`")
    for key in ("suite", "verdict"):
        if not isinstance(data.get(key), str):
            raise UserError(f"{path} has no '{key}'", hint="re-run `mlci accuracy run`")
    return data


def record_run(record: dict[str, Any]) -> str | None:
    return (record.get("run") or {}).get("id")


def select_this_run(found: list[tuple[Path, dict[str, Any]]], build: dict[str, Any] | None
                    ) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """(this run's records, one line per record left out): the build record's run and image, else the run of the
    newest record (by `started`)."""
    if build is not None:
        run = (build.get("run") or {}).get("id")
        digest = (build.get("image") or {}).get("digest")
        where = "this build (build.json)"
    else:
        newest = max(found, key=lambda pr: str(pr[1].get("started") or ""), default=None)
        run = record_run(newest[1]) if newest else None
        digest = None
        where = "the newest record"
    keep, stale = [], []
    for path, rec in found:
        rec_digest = (rec.get("image") or {}).get("digest")
        if run is not None and record_run(rec) != run:
            stale.append(f"{path}: run {record_run(rec) or 'unknown'} is not {where}'s run {run}")
        elif digest is not None and rec_digest != digest:
            stale.append(f"{path}: image {str(rec_digest)[:19]} is not {where}'s image {digest[:19]}")
        else:
            keep.append((path, rec))
    return keep, stale


def load_results(directory: str | Path, *, this_run: bool = True) -> Results:
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"results directory {d} does not exist",
                        hint="pass the --out directory of the pipeline run (default .mlci)")
    paths = record_files(d)
    if not paths:
        raise UserError(f"no accuracy.json under {d}",
                        hint="run `mlci accuracy run --suite NAME` first, or pass the directory holding accuracy/<suite>/")
    build = None
    build_path = d / BUILD_RECORD
    if build_path.is_file():
        try:
            loaded = json.loads(build_path.read_text(encoding="utf-8"))
            build = loaded if isinstance(loaded, dict) else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warn(f"{build_path} is unreadable ({exc}); provenance from the accuracy records only")
    found = [(p, read_record(p)) for p in paths]
    keep, stale = select_this_run(found, build) if this_run else (found, [])
    for line in stale:
        warn(f"left out a record of another run: {line}")
    if not keep:
        raise UserError(f"no accuracy record of this run under {d}: {len(stale)} record(s) of other runs left out",
                        hint="run the accuracy stage for this build; records of earlier builds are not its evidence")
    res = Results(d, [r for _, r in keep], [p for p, _ in keep], build, stale=stale)
    res.junit = [j for j in load_junit_dir(d / "junit") if not j.name.startswith("junit-accuracy")]
    return res
