"""Intervals for a single proportion (scipy's binomtest: exact Clopper-Pearson, Wilson) and the
anytime-valid beta-binomial mixture confidence sequence used with sequential verdicts."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import betabinom, binom, binomtest


def interval(k: int, n: int, confidence: float = 0.95, method: str = "exact") -> tuple[float, float]:
    """Two-sided interval for k successes in n trials: method 'exact' (Clopper-Pearson) or 'wilson'."""
    if n <= 0:
        return (0.0, 1.0)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method=method)
    return (float(ci.low), float(ci.high))


def pvalue_greater(k: int, n: int, p0: float) -> float:
    """Exact one-sided binomial p-value for H0: p <= p0 against p > p0."""
    if n <= 0:
        return 1.0
    return float(binomtest(int(k), int(n), p0, alternative="greater").pvalue)


def _root(f, lo: float, hi: float, increasing: bool, rounds: int = 3, points: int = 160) -> float:
    """Crossing of a monotone vectorised f on [lo, hi] by repeated grid refinement (few scipy calls)."""
    for _ in range(rounds):
        grid = np.linspace(lo, hi, points)
        inside = f(grid) < 0  # inside the confidence set
        idx = np.flatnonzero(inside)
        if idx.size == 0:
            return hi if not increasing else lo
        if increasing:  # inside on the left, outside on the right: find the last inside point
            j = idx[-1]
            lo, hi = grid[j], grid[min(j + 1, points - 1)]
        else:  # outside on the left, inside on the right
            j = idx[0]
            lo, hi = grid[max(j - 1, 0)], grid[j]
    return float((lo + hi) / 2)


def confidence_sequence(k: int, n: int, alpha: float, a: float = 1.0, b: float = 1.0) -> tuple[float, float]:
    """Anytime-valid (1 - alpha) interval: all p whose mixture martingale stays below 1/alpha.

    The martingale is BetaBinom(k; n, a, b) / Binom(k; n, p) (binomial coefficients cancel). It is at most 1
    at p = k/n (a mixture of likelihood ratios never exceeds the maximum likelihood ratio) and grows
    without bound toward 0 and 1, so the set is an interval; its ends are found on refined grids.
    """
    if n <= 0:
        return (0.0, 1.0)
    log_mix = float(betabinom.logpmf(k, n, a, b))
    threshold = math.log(1.0 / alpha)
    phat = k / n

    def f(p: np.ndarray) -> np.ndarray:
        return log_mix - binom.logpmf(k, n, p) - threshold

    eps = 1e-12
    lo = 0.0 if k == 0 else _root(f, eps, phat, increasing=False)
    hi = 1.0 if k == n else _root(f, phat, 1 - eps, increasing=True)
    return (float(lo), float(hi))
