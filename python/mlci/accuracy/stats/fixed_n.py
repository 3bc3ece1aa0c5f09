"""The exact fixed-n one-sided binomial test and the smallest n that meets alpha and beta.

Exact power is a sawtooth in n (the critical count jumps by one at a time), so the n needed is found by
scanning every n, not by inverting a normal approximation; the approximation only bounds the scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm


@dataclass(frozen=True)
class FixedPlan:
    n: int  # samples (trials) needed
    critical: int  # PASS when successes >= critical
    size: float  # exact P(PASS | p0)
    power: float  # exact P(PASS | p1)


def critical_count(n: int | np.ndarray, p0: float, alpha: float) -> int | np.ndarray:
    """Smallest c with P(X >= c | n, p0) <= alpha (scipy's isf gives the smallest k with sf(k) <= alpha)."""
    return binom.isf(alpha, n, p0).astype(int) + 1 if isinstance(n, np.ndarray) else int(binom.isf(alpha, n, p0)) + 1


def normal_n(p0: float, p1: float, alpha: float, beta: float) -> int:
    """The textbook normal-approximation n, used only to bound the exact search."""
    za, zb = norm.isf(alpha), norm.isf(beta)
    return math.ceil(((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))) / (p1 - p0)) ** 2)


def exact_n(p0: float, p1: float, alpha: float, beta: float, limit: int = 10_000_000) -> FixedPlan:
    """Smallest n for which the exact level-alpha test has power >= 1 - beta at p1."""
    hi = max(50, 3 * normal_n(p0, p1, alpha, beta) + 50)
    lo = 1
    while lo <= limit:
        ns = np.arange(lo, min(hi, limit) + 1)
        crit = critical_count(ns, p0, alpha)
        power = binom.sf(crit - 1, ns, p1)
        ok = np.flatnonzero((power >= 1 - beta) & (crit <= ns))
        if ok.size:
            i = ok[0]
            n, c = int(ns[i]), int(crit[i])
            return FixedPlan(n=n, critical=c, size=float(binom.sf(c - 1, n, p0)), power=float(power[i]))
        lo, hi = hi + 1, hi * 2
    raise ValueError(f"no n <= {limit} reaches power {1 - beta} for p0={p0}, p1={p1}")


def decide(k: int, n: int, p0: float, alpha: float) -> str:
    """PASS when the exact level-alpha test rejects H0: p <= p0, else FAIL."""
    if n <= 0:
        return "FAIL"
    return "PASS" if k >= critical_count(n, p0, alpha) else "FAIL"


def power_at(n: int, p0: float, p1: float, alpha: float) -> float:
    """Exact P(PASS | p1) of the level-alpha test with n trials (0 when no count can reject at that n)."""
    if n <= 0:
        return 0.0
    c = critical_count(n, p0, alpha)
    return float(binom.sf(c - 1, n, p1)) if c <= n else 0.0
