"""What the open SPRT can deliver under a cap, computed exactly before anything runs; the bounds its verdict rests on.

`oc_at_cap` is the exact probability that the SPRT of stats/sprt.py has PASSed (or FAILed) by the last look, for
a true proportion p, when looks fall at given trial counts (the engine looks after every batch) and the test
stops at the last look (the cap): the SPRT's thresholds become integer cuts on the successes at each look and
truncated.operating_characteristic carries the binomial paths from look to look (dynamic programming). The
plan uses it at p = min + margin: when the cap arrives before P(PASS) reaches 1 - beta, undecided paths end
INCONCLUSIVE and the gate's stated beta is not delivered. `needed_cap` finds the first look that delivers it.

`pass_bound` and `fail_bound` invert the same test family. Indexing the SPRT by its null p0 (alternative
p0 + margin), its log likelihood ratio k log((p0+m)/p0) + (n-k) log((1-p0-m)/(1-p0)) strictly decreases in p0, so
  * L = the p0 where it equals log(1/alpha) is an anytime-valid (1 - alpha) lower confidence bound (Ville's
    inequality for each p0), and the SPRT at min PASSes exactly when L >= min;
  * U = r + margin, with r the p0 where it equals log(beta), is an anytime-valid (1 - beta) upper bound, and the
    SPRT FAILs exactly when U <= min + margin (a FAIL says the proportion is below min + margin).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from .sprt import Sprt
from .truncated import operating_characteristic


def cuts(test: Sprt, looks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per look n: the fewest successes that PASS (llr >= upper) and the most that FAIL (llr <= lower), exactly
    as Sprt.decide rules at the borders."""
    n = np.asarray(looks, dtype=np.int64)
    d = test.step_success - test.step_failure
    r = np.ceil((test.upper - n * test.step_failure) / d).astype(np.int64)
    a = np.floor((test.lower - n * test.step_failure) / d).astype(np.int64)
    r = np.where(test.llr(r - 1, n) >= test.upper, r - 1, r)
    r = np.where(test.llr(r, n) < test.upper, r + 1, r)
    a = np.where(test.llr(a + 1, n) <= test.lower, a + 1, a)
    a = np.where(test.llr(a, n) > test.lower, a - 1, a)
    return r, a


def oc_at_cap(test: Sprt, looks: np.ndarray, p: float) -> tuple[float, float]:
    """Exact (P(PASS), P(FAIL)) by the last look for true proportion p; the rest is INCONCLUSIVE at the cap."""
    looks = np.asarray(looks, dtype=np.int64)
    if looks.size == 0:
        return 0.0, 0.0
    r, a = cuts(test, looks)
    p_pass, p_fail, _ = operating_characteristic(looks, r, a, [p])
    return float(p_pass[0]), float(p_fail[0])


def needed_cap(test: Sprt, looks: np.ndarray, p: float, target: float) -> int | None:
    """The first look (trial count) by which P(PASS | p) reaches `target`, or None within these looks
    (P(PASS by a look) only grows with the look: bisection)."""
    looks = np.asarray(looks, dtype=np.int64)
    if looks.size == 0 or oc_at_cap(test, looks, p)[0] < target:
        return None
    lo, hi = 0, looks.size - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if oc_at_cap(test, looks[:mid + 1], p)[0] >= target:
            hi = mid
        else:
            lo = mid + 1
    return int(looks[lo])


def looks_for(drawn: int, batch_size: int, share: float = 1.0) -> np.ndarray:
    """Trial counts at the engine's looks (after every batch of the pre-drawn order, the last one partial); a
    per-class gate sees about `share` of the samples (the stratified order keeps every prefix at the class's
    share of the test set)."""
    ends = np.unique(np.append(np.arange(batch_size, drawn + 1, batch_size), drawn))
    return np.unique(np.floor(ends * share + 1e-9).astype(np.int64))


def _root(f, lo: float, hi: float) -> float:
    return float(brentq(f, lo, hi, xtol=1e-10))


def pass_bound(k: int, n: int, margin: float, alpha: float) -> float:
    """Anytime-valid (1 - alpha) lower bound: the SPRT with null min PASSes exactly when this is >= min."""
    if n <= 0:
        return 0.0
    target = math.log(1 / alpha)
    return _bound(k, n, margin, target)


def fail_bound(k: int, n: int, margin: float, beta: float) -> float:
    """Anytime-valid (1 - beta) upper bound: the SPRT FAILs exactly when this is <= min + margin."""
    if n <= 0:
        return 1.0
    return min(1.0, _bound(k, n, margin, math.log(beta)) + margin)


def _bound(k: int, n: int, margin: float, target: float) -> float:
    """The p0 in (0, 1 - margin) where the SPRT's log LR (p0 + margin vs p0) equals target (clamped)."""
    eps = 1e-12

    def f(p0: float) -> float:
        return Sprt(p0, p0 + margin, 0.5, 0.5).llr(k, n) - target

    lo, hi = eps, 1 - margin - eps
    if f(lo) <= 0:  # even p0 -> 0 is not rejected
        return 0.0
    if f(hi) >= 0:  # every p0 is rejected
        return 1 - margin
    return _root(f, lo, hi)
