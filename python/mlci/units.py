"""Human-written quantities from config and flags (`7d`, `36h`, `50G`), parsed in one place so every command
accepts the same spellings and rejects the rest with the same kind of message."""

from __future__ import annotations

import datetime as dt
import re

from .errors import UserError

_DURATION = re.compile(r"([1-9][0-9]*)([hd])")
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str, what: str) -> dt.timedelta:
    """Whole hours or days: `36h`, `7d` (the granularity retention and log windows are thought about in)."""
    m = _DURATION.fullmatch(str(text).strip())
    if not m:
        raise UserError(f"{what} '{text}' is not valid", hint="write a number and h or d, e.g. 7d or 36h")
    n = int(m.group(1))
    return dt.timedelta(days=n) if m.group(2) == "d" else dt.timedelta(hours=n)


def parse_size(text: str, what: str) -> int:
    """Bytes from `50G`, `500MB`, `1.5TiB` or a plain number; K/M/G/T are powers of 1024, as `human_bytes`
    prints them, so a size copied from mlci's own output means what it says."""
    m = _SIZE.fullmatch(str(text).strip())
    if not m:
        raise UserError(f"{what} '{text}' is not valid", hint="write a number with an optional K, M, G or T, e.g. 50G")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
