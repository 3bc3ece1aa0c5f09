"""Wald's sequential probability ratio test for a Bernoulli proportion, with Ville-exact thresholds.

H0: p <= p0 (= min) against H1: p >= p1 (= min + margin). After each batch the log likelihood ratio
of the successes so far is compared with log(1/alpha) (PASS) and log(beta) (FAIL); see the package
docstring for why these thresholds and not Wald's approximations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sprt:
    p0: float
    p1: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        if not 0 < self.p0 < self.p1 < 1:
            raise ValueError(f"need 0 < p0 < p1 < 1, got p0={self.p0}, p1={self.p1}")

    @property
    def upper(self) -> float:
        return math.log(1.0 / self.alpha)

    @property
    def lower(self) -> float:
        return math.log(self.beta)

    @property
    def step_success(self) -> float:
        return math.log(self.p1 / self.p0)

    @property
    def step_failure(self) -> float:
        return math.log((1 - self.p1) / (1 - self.p0))

    def llr(self, k: int | np.ndarray, n: int | np.ndarray) -> float | np.ndarray:
        """Log likelihood ratio of H1 vs H0 after k successes in n trials."""
        return k * self.step_success + (n - k) * self.step_failure

    def decide(self, k: int, n: int) -> str | None:
        """'PASS', 'FAIL' or None (continue) for the counts at one look."""
        value = self.llr(k, n)
        if value >= self.upper:
            return "PASS"
        if value <= self.lower:
            return "FAIL"
        return None


def run_on_prefix(test: Sprt, outcomes: np.ndarray, looks: np.ndarray) -> tuple[str, int]:
    """Apply the test at each look (cumulative sample counts) over a 0/1 outcome sequence.

    Returns (verdict, samples used); INCONCLUSIVE when no look decides. Vectorised for simulations.
    """
    cum = np.concatenate([[0], np.cumsum(outcomes)])
    looks = looks[looks <= len(outcomes)]
    k = cum[looks]
    llr = test.llr(k, looks)
    hit = np.flatnonzero((llr >= test.upper) | (llr <= test.lower))
    if hit.size == 0:
        return "INCONCLUSIVE", int(looks[-1]) if looks.size else 0
    i = hit[0]
    return ("PASS" if llr[i] >= test.upper else "FAIL"), int(looks[i])
