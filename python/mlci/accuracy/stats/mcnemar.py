"""Change gates: paired non-inferiority of a candidate against a baseline on the same samples.

Per sample the pair (candidate right?, baseline right?) is concordant or discordant. Let psi be the
discordance rate and theta = P(candidate right | discordant). The accuracy difference is
d = psi * (2 theta - 1). Non-inferiority: H0: d <= -margin against H1: d >= 0.

McNemar's exact test conditions on the m discordant pairs: K (candidate wins) ~ Binomial(m, theta). The
margin lives on the d scale, so it is moved to the theta scale with an *upper* confidence bound psi_U on
the discordance rate: if psi <= psi_U and d <= -margin then theta <= theta0 = (1 - margin / psi_U) / 2.
Spending alpha/2 on psi_U and alpha/2 on the conditional binomial test keeps the false-PASS rate <= alpha
exactly (union bound; conditional on m the binomial law does not depend on psi). When psi_U <= margin
even a candidate that loses every discordant pair is non-inferior: PASS.

Sequential version: Wald's SPRT on the discordant pairs (theta0 against theta1 = 1/2, thresholds
log(2/alpha) and log(beta)), with theta0 refreshed once per batch from an anytime-valid bound on psi
computed from the *previous* batches only (so it is predictable and the likelihood-ratio product stays a
supermartingale under H0 while the bound holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import fixed_n, proportion


def discordant_counts(cand: np.ndarray, base: np.ndarray) -> tuple[int, int, int]:
    """(n, wins, losses): wins = candidate right & baseline wrong, losses the reverse."""
    cand = np.asarray(cand, dtype=bool)
    base = np.asarray(base, dtype=bool)
    return int(cand.size), int(np.sum(cand & ~base)), int(np.sum(~cand & base))


def theta0_for(psi_upper: float, margin: float) -> float:
    """Null value of theta implied by the margin when the discordance rate is at most psi_upper."""
    if psi_upper <= margin:
        return 0.0
    return 0.5 * (1.0 - margin / psi_upper)


def difference_interval(n: int, wins: int, losses: int, alpha: float, anytime: bool) -> tuple[float, float]:
    """Interval for d combining intervals for psi and theta (alpha/2 each)."""
    m = wins + losses
    if n == 0:
        return (-1.0, 1.0)
    ci = (lambda k, t: proportion.confidence_sequence(k, t, alpha / 2)) if anytime else (
        lambda k, t: proportion.interval(k, t, 1 - alpha / 2))
    psi_lo, psi_hi = ci(m, n)
    th_lo, th_hi = ci(wins, m) if m else (0.0, 1.0)
    lo = (2 * th_lo - 1) * (psi_hi if th_lo < 0.5 else psi_lo)
    hi = (2 * th_hi - 1) * (psi_lo if th_hi < 0.5 else psi_hi)
    return (float(lo), float(hi))


@dataclass(frozen=True)
class FixedResult:
    verdict: str
    pvalue: float
    theta0: float
    psi_upper: float


def fixed_test(n: int, wins: int, losses: int, margin: float, alpha: float) -> FixedResult:
    """Exact conditional McNemar non-inferiority test at the final look."""
    m = wins + losses
    if n == 0:
        return FixedResult("FAIL", 1.0, 0.5, 1.0)
    psi_u = proportion.interval(m, n, 1 - alpha)[1]  # one-sided alpha/2 upper bound
    th0 = theta0_for(psi_u, margin)
    if th0 <= 0:
        return FixedResult("PASS", 0.0, th0, psi_u)
    p = proportion.pvalue_greater(wins, m, th0) if m else 1.0
    return FixedResult("PASS" if p <= alpha / 2 else "FAIL", p, th0, psi_u)


def planned_n(psi: float, margin: float, alpha: float, beta: float) -> int | None:
    """Samples a fixed-n test needs at discordance psi (pairs needed / psi), for reporting."""
    if psi <= 0:
        return None
    th0 = theta0_for(psi, margin)
    if th0 <= 0:
        return 1
    return math.ceil(fixed_n.exact_n(th0, 0.5, alpha / 2, beta).n / psi)


@dataclass
class SequentialMcNemar:
    margin: float
    alpha: float
    beta: float
    n: int = 0
    wins: int = 0
    losses: int = 0
    llr: float = 0.0
    theta0: float = field(default=float("nan"))
    psi_upper: float = 1.0

    def update(self, cand: np.ndarray, base: np.ndarray) -> str | None:
        """Add one batch (in pre-drawn order); return 'PASS', 'FAIL' or None."""
        th0 = theta0_for(self.psi_upper, self.margin)  # from previous batches only
        self.theta0 = th0
        n, w, lo = discordant_counts(cand, base)
        self.n += n
        self.wins += w
        self.losses += lo
        if th0 <= 0:
            return "PASS"
        self.llr += w * math.log(0.5 / th0) + lo * math.log(0.5 / (1 - th0))
        self.psi_upper = proportion.confidence_sequence(self.wins + self.losses, self.n, self.alpha / 2)[1]
        if self.llr >= math.log(2 / self.alpha):
            return "PASS"
        if self.llr <= math.log(self.beta):
            return "FAIL"
        return None
