"""Reading a results directory (the `--out` of a pipeline run): accuracy records, build.json, JUnit files.

This is the I/O edge of the report: everything after it works on plain data.
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


def load_results(directory: str | Path) -> Results:
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"results directory {d} does not exist",
                        hint="pass the --out directory of the pipeline run (default .mlci)")
    paths = record_files(d)
    if not paths:
        raise UserError(f"no accuracy.json under {d}",
                        hint="run `mlci accuracy run --suite NAME` first, or pass the directory holding accuracy/<suite>/")
    res = Results(d, [read_record(p) for p in paths], paths)
    build_path = d / BUILD_RECORD
    if build_path.is_file():
        try:
            build = json.loads(build_path.read_text(encoding="utf-8"))
            res.build = build if isinstance(build, dict) else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warn(f"{build_path} is unreadable ({exc}); provenance from the accuracy records only")
    res.junit = [j for j in load_junit_dir(d / "junit") if not j.name.startswith("junit-accuracy")]
    return res
