"""The promotion gate: only an image whose digest has a PASS accuracy record is rolled out.

Evidence, in order: this build's records (`<out>/accuracy/*/accuracy.json`), then the history store
(`mlci.report.history.find_pass_for_image`, imported lazily so deploy works before/without the report concern).
A record counts only when its verdict is PASS, its image digest equals the digest being deployed, it is for
this service, and -- for this build's records -- it belongs to this build's run (`build.json` `run.id`): a record
another build left in the output directory is not this build's evidence. A FAIL record for the same digest in this build blocks the deploy even if another suite
passed: the image did not clear every gate it was tested against. `--force --reason` overrides, and the
override (with the verdict it overrode) is recorded.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.loader import Config

ACCURACY_GLOB = "accuracy/*/accuracy.json"


@dataclass
class GateResult:
    passed: bool
    source: str  # build | history | forced | none
    message: str
    record: dict[str, Any] | None = None  # summary of the PASS record relied on
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "source": self.source, "message": self.message, "record": self.record,
                "notes": self.notes}


def _summary(record: dict[str, Any], where: str) -> dict[str, Any]:
    return {
        "where": where,
        "suite": record.get("suite"),
        "verdict": record.get("verdict"),
        "digest": (record.get("image") or {}).get("digest"),
        "commit": (record.get("git") or {}).get("commit"),
        "started": record.get("started"),
    }


def local_records(out: Path, digest: str, service: str) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """This build's accuracy records for `digest` and `service`; unreadable files and records of other runs
    become notes, not crashes."""
    found: list[tuple[Path, dict[str, Any]]] = []
    notes: list[str] = []
    run = _build_run(out)
    for path in sorted(out.glob(ACCURACY_GLOB)):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            notes.append(f"ignored unreadable record {path}: {exc}")
            continue
        if not isinstance(record, dict) or not str(record.get("schema", "")).startswith("mlci.accuracy/"):
            notes.append(f"ignored {path}: not an mlci.accuracy record")
            continue
        if record.get("service") not in (None, service):
            continue
        if (record.get("image") or {}).get("digest") != digest:
            continue
        if run is not None and (record.get("run") or {}).get("id") != run:
            notes.append(f"ignored {path}: a record of run {(record.get('run') or {}).get('id') or 'unknown'}, "
                         f"not of this build's run {run}")
            continue
        found.append((path, record))
    return found, notes


def _build_run(out: Path) -> str | None:
    """The run of the build record in `out`, or None (no build record: records are not filtered by run)."""
    try:
        build = json.loads((out / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (build.get("run") or {}).get("id") if isinstance(build, dict) else None


HistoryLookup = Callable[[Config, str], "dict[str, Any] | None"]


def history_lookup() -> HistoryLookup | None:
    """`find_pass_for_image` from the report concern, or None while that module does not exist."""
    try:
        module = importlib.import_module("mlci.report.history")
    except ModuleNotFoundError as exc:
        if exc.name in ("mlci.report", "mlci.report.history"):
            return None
        raise
    return getattr(module, "find_pass_for_image", None)


def evaluate(cfg: Config, out: Path, digest: str, *, lookup: HistoryLookup | None = None,
             use_history: bool = True) -> GateResult:
    """Decide from the evidence; no side effects beyond reading records."""
    service = cfg["service"]
    records, notes = local_records(out, digest, service)
    fails = [(p, r) for p, r in records if r.get("verdict") == "FAIL"]
    passes = [(p, r) for p, r in records if r.get("verdict") == "PASS"]
    for p, r in records:
        if r.get("verdict") not in ("PASS", "FAIL"):
            notes.append(f"{p}: verdict {r.get('verdict')} is not evidence either way")
    short = digest[:19]
    if fails:
        suites = ", ".join(str(r.get("suite")) for _, r in fails)
        return GateResult(False, "build", f"image {short}... FAILED accuracy suite(s) {suites} in this build",
                          _summary(fails[0][1], str(fails[0][0])), notes)
    if passes:
        path, record = passes[0]
        suites = ", ".join(str(r.get("suite")) for _, r in passes)
        return GateResult(True, "build", f"image {short}... PASSED accuracy suite(s) {suites} in this build",
                          _summary(record, str(path)), notes)
    if use_history:
        lookup = lookup or history_lookup()
        if lookup is None:
            notes.append("history store not consulted: mlci.report.history is not available")
        else:
            record = lookup(cfg, digest)
            if record and record.get("verdict") == "PASS" and (record.get("image") or {}).get("digest") == digest:
                return GateResult(True, "history", f"image {short}... has a PASS record in the history store "
                                  f"(suite {record.get('suite')})", _summary(record, "history"), notes)
            notes.append("no PASS record for this digest in the history store")
    return GateResult(False, "none", f"image {short}... has no PASS accuracy record "
                      f"(looked in {out / ACCURACY_GLOB}" + (" and the history store)" if use_history else ")"),
                      None, notes)


def forced(result: GateResult, reason: str) -> GateResult:
    """The override: passes, but keeps what the gate would have said."""
    return GateResult(True, "forced", f"FORCED past the promotion gate ({result.message}); reason: {reason}",
                      result.record, result.notes)
