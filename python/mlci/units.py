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


# A Kubernetes quantity, never negative: 100m, 0.5, 2, 128Mi, 1G, 1e3 (the schema checks this spelling).
QUANTITY = r"(\d+(?:\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?"
_QUANTITY_SUFFIX = {"": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
                    "E": 1e18, **{p + "i": float(1 << (10 * (i + 1))) for i, p in enumerate("KMGTPE")}}


def parse_quantity(value: object, what: str) -> float:
    """The number a Kubernetes quantity stands for (`100m` -> 0.1, `128Mi` -> 134217728.0)."""
    m = re.fullmatch(QUANTITY, str(value).strip())
    if not m:
        raise UserError(f"{what} {value!r} is not a quantity", hint="e.g. 100m, 2, 128Mi or 1G")
    suffix = m.group(2) or ""
    if suffix[:1] in ("e", "E") and suffix not in _QUANTITY_SUFFIX:
        return float(m.group(1) + suffix)
    return float(m.group(1)) * _QUANTITY_SUFFIX[suffix]
