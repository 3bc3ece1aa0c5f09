"""Headless Chromium (Debian's package) for checking that report.html renders: DOM, console errors, screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0"]
# Chromium logs page console messages as `[pid:tid:time:INFO:CONSOLE:1] "message", source: URL (line)`.
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught ")


@dataclass
class Page:
    dom: str
    console: list[str]  # console / JS error lines from Chromium's log


def binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: run tests/infra/up"
    return found


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="mlci-report-chromium-") as profile:
        return subprocess.run([binary(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def load(html: Path, png: Path | None = None, width: int = 1200, height: int = 2400) -> Page:
    """The DOM after parsing and layout, every console message the page produced, and optionally a screenshot
    (one browser start for all three: starting Chromium is the slow part)."""
    shot: list[str] = []
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        png.unlink(missing_ok=True)
        shot = [f"--screenshot={png}", f"--window-size={width},{height}"]
    proc = _run([*shot, "--dump-dom", html.resolve().as_uri()])
    assert proc.returncode == 0, proc.stderr[-2000:]
    if png is not None:
        assert png.is_file() and png.stat().st_size > 10_000, proc.stderr[-2000:]
    return Page(proc.stdout, console_lines(proc.stderr))
