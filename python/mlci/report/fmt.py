"""Number formatting shared by the HTML and Markdown reports, so both say exactly the same thing."""

from __future__ import annotations

import math
from typing import Any

PROPORTIONS = {"accuracy", "precision", "recall", "f1", "macro_f1", "auc"}
LOWER_BETTER = {"mae", "rmse", "latency_p50", "latency_p95"}
LATENCY = {"latency_p50", "latency_p95"}
SAME = 5e-4  # deltas smaller than this (0.05 pp) read as "no change"


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def value(metric: str, v: Any) -> str:
    if not is_number(v):
        return "–"
    if metric in PROPORTIONS:
        return f"{v * 100:.1f}%"
    if metric in LATENCY:
        return f"{v:.2f} ms"
    return f"{v:.4g}"


def interval(metric: str, iv: Any) -> str:
    if not isinstance(iv, (list, tuple)) or len(iv) != 2 or not all(is_number(x) for x in iv):
        return "–"
    return f"[{value(metric, iv[0])}, {value(metric, iv[1])}]"


def delta(metric: str, d: Any) -> str:
    if not is_number(d):
        return "–"
    if abs(d) < (0.005 if metric in LATENCY else SAME):
        return "±0"
    if metric in PROPORTIONS:
        return f"{d * 100:+.2f} pp"
    if metric in LATENCY:
        return f"{d:+.2f} ms"
    return f"{d:+.4g}"


def direction(metric: str, d: Any) -> str:
    """better / worse / same, for colouring a delta."""
    if not is_number(d) or abs(d) < (0.005 if metric in LATENCY else SAME):
        return "same"
    better = d < 0 if metric in LOWER_BETTER else d > 0
    return "better" if better else "worse"


def risk(x: Any) -> str:
    """alpha and beta as people write them (0.05, 0.1, 0.0333): three significant digits, never 0.0333333."""
    return f"{x:.3g}" if is_number(x) else "–"


def count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else "–"


def duration(seconds: Any) -> str:
    if not is_number(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec:02d} s"


def short_digest(d: Any, n: int = 12) -> str:
    if not isinstance(d, str) or not d:
        return "–"
    algo, _, hexpart = d.partition(":")
    return f"{algo}:{hexpart[:n]}" if hexpart else d[:n]
