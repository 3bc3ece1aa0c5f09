"""Unit and acceptance test counts from the JUnit XML files the test stages write (`<out>/junit/*.xml`).

Counts come from the `testsuite` attributes (what pytest and every JUnit writer fill in); failing test names and
the first line of their message are kept for the report, which escapes them like any other data.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

MAX_FAILURES = 20


@dataclass
class JUnitSummary:
    name: str  # the stage: file stem (unit, acceptance, ...)
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    time_s: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (test id, first line of message)
    problem: str | None = None  # the file could not be read

    @property
    def passed(self) -> int:
        return max(self.tests - self.failures - self.errors - self.skipped, 0)

    @property
    def ok(self) -> bool:
        return self.problem is None and self.failures == 0 and self.errors == 0


def _int(value: str | None) -> int:
    try:
        return int(float(value or 0))
    except ValueError:
        return 0


def _float(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def parse_junit(path: Path) -> JUnitSummary:
    """Counts of one JUnit file; an unreadable file gives a summary with `problem` set, not an exception."""
    summary = JUnitSummary(name=path.stem)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        summary.problem = f"cannot read {path.name}: {exc}"
        return summary
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    if not suites and root.tag == "testsuites":
        suites = [root]
    for s in suites:
        summary.tests += _int(s.get("tests"))
        summary.failures += _int(s.get("failures"))
        summary.errors += _int(s.get("errors"))
        summary.skipped += _int(s.get("skipped"))
        summary.time_s += _float(s.get("time"))
        for case in s.iter("testcase"):
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            if bad is None or len(summary.failed) >= MAX_FAILURES:
                continue
            test_id = ".".join(p for p in (case.get("classname"), case.get("name")) if p)
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            summary.failed.append((test_id, message[0][:300] if message else ""))
    return summary


def load_junit_dir(directory: Path) -> list[JUnitSummary]:
    """unit first, then acceptance, then anything else, by name."""
    if not directory.is_dir():
        return []
    order = {"unit": 0, "acceptance": 1}
    files = sorted(directory.glob("*.xml"), key=lambda p: (order.get(p.stem, 2), p.stem))
    return [parse_junit(p) for p in files]
