"""Progress for long work: one line per step in logs (Jenkins has no TTY), a live bar on a terminal."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def is_tty(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("JENKINS_URL")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


class Progress:
    """Counts units of work toward a total.

    `step(msg)` always prints a line in non-TTY mode (the log is the only progress a Jenkins user sees);
    on a terminal it redraws a single bar line instead, and the step messages are kept short.
    """

    def __init__(self, total: float, label: str, *, unit: str = "", stream: TextIO | None = None):
        self.total = max(total, 0)
        self.done = 0.0
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = is_tty(self.stream)
        self.started = time.monotonic()
        self._last_draw = 0.0

    def advance(self, amount: float = 1, message: str | None = None) -> None:
        self.done += amount
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw > 0.1 or self.done >= self.total:
                self._draw()
                self._last_draw = now
        elif message:
            self.stream.write(f"[{self.label}] {message}\n")
            self.stream.flush()

    def log(self, message: str) -> None:
        """A line that should appear in both modes (e.g. a warning)."""
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"[{self.label}] {message}\n")
        self.stream.flush()
        if self.tty:
            self._draw()

    def _draw(self) -> None:
        width = 30
        frac = (self.done / self.total) if self.total else 1.0
        filled = int(width * min(frac, 1.0))
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\r\033[K[{self.label}] [{bar}] {frac * 100:5.1f}% {elapsed:6.1f}s")
        self.stream.flush()

    def close(self, summary: str | None = None) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        if summary:
            self.stream.write(f"[{self.label}] {summary}\n")
        self.stream.flush()
