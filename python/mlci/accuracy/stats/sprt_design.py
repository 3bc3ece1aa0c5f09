"""What a truncated SPRT can deliver, computed exactly before anything runs; the bounds its verdict rests on.

`operating_curve` is the exact probability that the SPRT of stats/sprt.py has PASSed (or FAILed) by each look,
for a true proportion p, when looks fall at given trial counts (the engine looks after every batch) and the test
stops at the last look (the cap): a dynamic program over the successes of the paths still running, stepped
from look to look with scipy's binomial pmf. The continuation region at any trial count is a short band of
success counts, so the state stays small. The plan uses it at p = min + margin: when the cap arrives before
P(PASS) reaches 1 - beta, undecided paths end INCONCLUSIVE and the gate's stated beta is not delivered.

`pass_bound` and `fail_bound` invert the same test family. Indexing the SPRT by its null p0 (alternative
p0 + margin), its log likelihood ratio k log((p0+m)/p0) + (n-k) log((1-p0-m)/(1-p0)) strictly decreases in p0, so
  * L = the p0 where it equals log(1/alpha) is an anytime-valid (1 - alpha) lower confidence bound (Ville's
    inequality for each p0), and the SPRT at min PASSes exactly when L >= min;
  * U = r + margin, with r the p0 where it equals log(beta), is an anytime-valid (1 - beta) upper bound, and the
    SPRT FAILs exactly when U <= min + margin (a FAIL says the proportion is below min + margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom

from .sprt import Sprt


@dataclass(frozen=True)
class Curve:
    looks: np.ndarray  # trial counts at the looks
    passed: np.ndarray  # P(PASS by look i)
    failed: np.ndarray  # P(FAIL by look i)


def operating_curve(test: Sprt, looks: np.ndarray, p: float) -> Curve:
    """Exact cumulative P(PASS) and P(FAIL) by each look for true proportion p."""
    looks = np.asarray(looks, dtype=np.int64)
    dist = np.array([1.0])  # P(k successes and still running), k = offset .. offset + len - 1
    offset, trials = 0, 0
    passed = np.zeros(len(looks))
    failed = np.zeros(len(looks))
    acc_pass = acc_fail = 0.0
    for i, t in enumerate(looks):
        step = int(t) - trials
        if step > 0:
            dist = np.convolve(dist, binom.pmf(np.arange(step + 1), step, p))
            trials = int(t)
        k = offset + np.arange(len(dist))
        llr = test.llr(k, trials)
        up, down = llr >= test.upper, llr <= test.lower
        acc_pass += float(dist[up].sum())
        acc_fail += float(dist[down].sum())
        dist = np.where(up | down, 0.0, dist)
        live = np.flatnonzero(dist > 1e-300)
        if live.size == 0:
            dist, passed[i:], failed[i:] = np.array([0.0]), acc_pass, acc_fail
            break
        dist = dist[live[0]:live[-1] + 1]
        offset += int(live[0])
        passed[i], failed[i] = acc_pass, acc_fail
    return Curve(looks, passed, failed)


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
