"""Anytime-valid gates for the mean of per-sample scores in [0, 1] by betting (Waudby-Smith & Ramdas 2024).

Waudby-Smith, I. and Ramdas, A. (2024), "Estimating means of bounded random variables by betting", JRSS B
86(1):1-27. For a candidate mean m the capital processes

    K+_t(m) = prod_{i<=t} (1 + l+_i (x_i - m)),      K-_t(m) = prod_{i<=t} (1 - l-_i (x_i - m)),

with predictable bets l_i >= 0 (functions of x_1..x_{i-1} only), are non-negative supermartingales when the
mean is <= m (K+) or >= m (K-). Ville's inequality then bounds P(sup_t K >= 1/a) <= a: a level-a test
valid at every stopping time, however the looks fall, and {m : K+_t(m) < 1/a} is a lower confidence
sequence.

The gate is a pair of one-sided betting tests on the scores, checked after every batch:

    PASS when K+(threshold) >= 1/alpha              (H0: mean <= threshold rejected; false PASS <= alpha)
    FAIL when K-(threshold + margin) >= 1/beta_F    (H0: mean >= threshold + margin rejected; false FAIL <= beta_F)

whichever crosses first (in sample order) decides; INCONCLUSIVE when neither has crossed at the cap. The
same capital processes give the interval shown with the verdict: the lower bound L_t = inf{m: K+_t(m) <
1/alpha} and the upper U_t = sup{m: K-_t(m) < 1/beta_F}; with bets that do not depend on m (only the
truncation does) K+ is non-increasing and K- non-decreasing in m, so PASS <=> L_t >= threshold and FAIL <=>
U_t <= threshold + margin, and [L_t, U_t] covers the mean at every t with probability >= 1 - alpha - beta_F.

beta is split: beta_F = beta / 2 for false FAILs, the other half for a good model still INCONCLUSIVE at the
planned sample size (spending all of beta on the FAIL test leaves almost nothing for running out of samples:
on 0/1 scores at min 0.90 / margin 0.02 the n needed for beta = 0.10 is then ~4,600 instead of ~3,150).

Bets:
* "design" (default): l = margin / (s2 + margin**2), the growth-optimal constant bet against the planned
  alternative (a mean `margin` away from the null) at the plug-in variance s2 -- for 0/1 scores this is
  close to the SPRT's likelihood-ratio bet; lower-variance scores get larger bets and stop sooner.
* "prpl": the paper's predictable plug-in, l_t = sqrt(2 log(1/a) / (s2_{t-1} t log(1 + t))) (eq. 26),
  tuned for a tight confidence sequence rather than for one alternative.
Both use the paper's regularised predictable estimates mu_t = (1/2 + sum x) / (t + 1) and s2_t = (1/4 +
sum (x_i - mu_i)**2) / (t + 1), and truncate the bet at c/m for K+ and c/(1 - m) for K- (c = 1/2, the
paper's default), so no factor falls below 1 - c.

The paper's hedged capital confidence sequence (Theorem 3, max(theta K+, (1 - theta) K-) < 1/alpha with
predictable plug-in bets) is `hedged_cs`; tests compare it and the capital processes with the authors'
`confseq` package on identical data.

Planning beta: the FAIL test bounds false FAILs at threshold + margin by beta_F, but a good model can also run
out of samples (INCONCLUSIVE). `plan` finds, by simulation of the maximum-variance law for that mean
(Bernoulli(threshold + margin): larger variance only slows the bets), the smallest look at which
P(PASS) >= 1 - beta (by two Monte-Carlo standard errors) -- the samples the gate needs for its beta.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

TRUNCATION = 0.5
PRIOR_MEAN, PRIOR_VAR = 0.5, 0.25


def _as_scores(x: np.ndarray | list[float]) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1):
        raise ValueError("scores must be finite and within [0, 1]")
    return x


def predictable_variance(x: np.ndarray) -> np.ndarray:
    """s2_{t-1} for t = 1..n along the last axis (the paper's regularised estimate; s2_0 = 1/4)."""
    t = np.arange(1, x.shape[-1] + 1)
    mu = (PRIOR_MEAN + np.cumsum(x, axis=-1)) / (t + 1)
    s2 = (PRIOR_VAR + np.cumsum((x - mu) ** 2, axis=-1)) / (t + 1)
    return np.concatenate([np.full(x.shape[:-1] + (1,), PRIOR_VAR), s2[..., :-1]], axis=-1)


def prpl_bets(x: np.ndarray, alpha: float) -> np.ndarray:
    """The paper's predictable plug-in bets (eq. 26), before truncation."""
    t = np.arange(1, x.shape[-1] + 1)
    return np.sqrt(2 * math.log(1 / alpha) / (predictable_variance(x) * t * np.log1p(t)))


def design_bets(x: np.ndarray, margin: float) -> np.ndarray:
    """Growth-optimal bets against a mean `margin` away from the null, at the plug-in variance."""
    return margin / (predictable_variance(x) + margin ** 2)


def log_capital(x: np.ndarray, m: float, bets: np.ndarray, side: int, truncation: float = TRUNCATION) -> np.ndarray:
    """log K_t(m) for t = 1..n along the last axis; side +1 tests mean <= m, side -1 tests mean >= m."""
    cap = truncation / m if side > 0 else truncation / (1 - m)
    lam = np.minimum(bets, cap) if cap > 0 else np.zeros_like(bets)
    return np.cumsum(np.log1p(side * lam * (x - m)), axis=-1)


def _monotone_root(fn, lo: float, hi: float, increasing: bool, steps: int = 50) -> float:
    """The crossing of a monotone boolean fn on [lo, hi]: last True (increasing=False) / first True."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        if fn(mid) != increasing:
            lo = mid
        else:
            hi = mid
    return hi if increasing else lo


def lower_bound(x: np.ndarray, bets: np.ndarray, level: float, truncation: float = TRUNCATION,
                running: bool = True) -> float:
    """inf{m : K+_t(m) < 1/level} at the last sample t (0 when nothing is excluded). running: the running
    intersection over all t <= n (inf{m : max_t K+_t(m) < 1/level}), which is also a valid confidence
    sequence and agrees with a verdict taken at the first crossing."""
    return _bound(x, bets, level, truncation, running, +1)


def upper_bound(x: np.ndarray, bets: np.ndarray, level: float, truncation: float = TRUNCATION,
                running: bool = True) -> float:
    """sup{m : K-_t(m) < 1/level} at the last sample (1 when nothing is excluded); running as for lower_bound."""
    return _bound(x, bets, level, truncation, running, -1)


def _bound(x: np.ndarray, bets: np.ndarray, level: float, truncation: float, running: bool, side: int) -> float:
    if x.size == 0:
        return 0.0 if side > 0 else 1.0
    limit = math.log(1 / level)

    def excluded(m: float) -> bool:
        logk = log_capital(x, m, bets, side, truncation)
        return bool((logk.max() if running else logk[-1]) >= limit)

    edge = 1e-12 if side > 0 else 1 - 1e-12
    if not excluded(edge):
        return 0.0 if side > 0 else 1.0
    if side > 0:  # K+ is non-increasing in m: excluded on (0, L], kept above
        return _monotone_root(excluded, edge, 1.0, increasing=False)
    return _monotone_root(excluded, 0.0, edge, increasing=True)


def hedged_cs(x: np.ndarray | list[float], alpha: float, theta: float = 0.5, truncation: float = TRUNCATION,
              running: bool = True) -> tuple[float, float]:
    """The paper's hedged-capital confidence interval at the last sample (Theorem 3, predictable plug-in bets
    at alpha*theta for K+ and alpha*(1-theta) for K-): {m : max(theta K+, (1-theta) K-) < 1/alpha}, by
    default intersected over all earlier samples (as confseq's hedged_cs does)."""
    x = _as_scores(x)
    lo = lower_bound(x, prpl_bets(x, alpha * theta), alpha * theta, truncation, running)
    hi = upper_bound(x, prpl_bets(x, alpha * (1 - theta)), alpha * (1 - theta), truncation, running)
    return lo, hi


@dataclass(frozen=True)
class Verdict:
    verdict: str | None  # PASS, FAIL or None (no test has crossed yet)
    at: int | None  # sample index (1-based) at which the deciding test first crossed
    log_pass: float  # max over t of log K+(threshold): the PASS test's evidence so far
    log_fail: float  # max over t of log K-(threshold + margin)


@dataclass(frozen=True)
class BettingGate:
    """Anytime-valid gate on the mean of per-sample scores in [0, 1].

    threshold / margin / direction as for a proportion gate: ">=" (higher is better) tests
    mean >= threshold with the alternative threshold + margin; "<=" (lower is better, e.g. an error scaled to
    [0, 1]) tests mean <= threshold with the alternative threshold - margin (scores are mapped to 1 - x).
    """

    threshold: float
    margin: float
    alpha: float
    beta: float
    direction: str = ">="
    bets: str = "design"
    truncation: float = TRUNCATION
    fail_share: float = 0.5  # the FAIL test runs at beta * fail_share

    def __post_init__(self) -> None:
        if self.direction not in (">=", "<="):
            raise ValueError(f"direction must be '>=' or '<=', got {self.direction!r}")
        if self.bets not in ("design", "prpl"):
            raise ValueError(f"bets must be 'design' or 'prpl', got {self.bets!r}")
        m0, m1 = self._nulls
        if not 0 < m0 < m1 < 1:
            raise ValueError(f"need 0 < threshold and the alternative inside (0, 1): got threshold {self.threshold}, "
                             f"margin {self.margin}")
        if not (0 < self.alpha < 1 and 0 < self.beta < 1 and 0 < self.fail_share <= 1):
            raise ValueError("alpha, beta must be in (0, 1) and fail_share in (0, 1]")

    @property
    def fail_level(self) -> float:
        """The FAIL test's level: the false-FAIL rate at threshold + margin, at any stopping time."""
        return self.beta * self.fail_share

    @property
    def _nulls(self) -> tuple[float, float]:
        """(m0, m1) on the higher-is-better scale: PASS rejects mean <= m0, FAIL rejects mean >= m1."""
        if self.direction == ">=":
            return self.threshold, self.threshold + self.margin
        return 1 - self.threshold, 1 - self.threshold + self.margin

    def _oriented(self, scores: np.ndarray) -> np.ndarray:
        return scores if self.direction == ">=" else 1 - scores

    def _bets(self, x: np.ndarray, level: float) -> np.ndarray:
        return design_bets(x, self.margin) if self.bets == "design" else prpl_bets(x, level)

    def paths(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log K+(m0), log K-(m1)) along the last axis; works on a (runs, n) matrix for simulations."""
        x = self._oriented(np.asarray(scores, dtype=float))
        m0, m1 = self._nulls
        return (log_capital(x, m0, self._bets(x, self.alpha), +1, self.truncation),
                log_capital(x, m1, self._bets(x, self.fail_level), -1, self.truncation))

    def evaluate(self, scores: np.ndarray | list[float]) -> Verdict:
        """The verdict on the prefix seen so far (call after each batch with all scores in sample order)."""
        x = _as_scores(scores)
        if x.size == 0:
            return Verdict(None, None, 0.0, 0.0)
        lp, lf = self.paths(x)
        verdict, at = crossing(lp, lf, self.alpha, self.fail_level)
        return Verdict(verdict, at, float(max(lp.max(), 0.0)), float(max(lf.max(), 0.0)))

    def decide(self, scores: np.ndarray | list[float]) -> str | None:
        """'PASS', 'FAIL' or None (continue) for the scores seen so far."""
        return self.evaluate(scores).verdict

    def interval(self, scores: np.ndarray | list[float]) -> tuple[float, float]:
        """Anytime-valid bounds on the mean from the gate's own tests: (1 - alpha) lower and (1 - fail_level)
        upper for ">=" (for "<=": (1 - fail_level) lower, (1 - alpha) upper bound of the raw scores' mean)."""
        x = self._oriented(_as_scores(scores))
        lo = lower_bound(x, self._bets(x, self.alpha), self.alpha, self.truncation)
        hi = upper_bound(x, self._bets(x, self.fail_level), self.fail_level, self.truncation)
        return (lo, hi) if self.direction == ">=" else (1 - hi, 1 - lo)

    def pvalues(self, scores: np.ndarray | list[float]) -> tuple[float, float]:
        """Anytime-valid p-values (1 / running max capital) of the PASS and the FAIL test, for family-wise
        combination across slices."""
        v = self.evaluate(scores)
        return min(1.0, math.exp(-v.log_pass)), min(1.0, math.exp(-v.log_fail))

    def simulate(self, scores: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Verdict codes (1 PASS, -1 FAIL, 0 INCONCLUSIVE) and samples used for each row of a (runs, n) score
        matrix, looking every `batch` samples and stopping at n (vectorised, for benchmarks and planning)."""
        lp, lf = self.paths(scores)
        n = lp.shape[-1]
        cp = _first_rows(lp >= math.log(1 / self.alpha), n)
        cf = _first_rows(lf >= math.log(1 / self.fail_level), n)
        fail = (cf < n) & (cf <= cp)
        passed = (cp < n) & ~fail
        codes = np.where(passed, 1, np.where(fail, -1, 0))
        first = np.minimum(cp, cf)
        used = np.where(codes != 0, np.minimum(((first // batch) + 1) * batch, n), n)
        return codes, used


def _first(hit: np.ndarray) -> int | None:
    idx = np.flatnonzero(hit)
    return int(idx[0]) if idx.size else None


def crossing(log_pass: np.ndarray, log_fail: np.ndarray, alpha: float, fail_level: float
             ) -> tuple[str | None, int | None]:
    """(verdict, terms seen) of two log-capital paths: whichever test first reaches its Ville threshold
    (log 1/alpha, log 1/fail_level) decides, FAIL on a tie; (None, None) while neither has."""
    first_pass = _first(log_pass >= math.log(1 / alpha))
    first_fail = _first(log_fail >= math.log(1 / fail_level))
    if first_fail is not None and (first_pass is None or first_fail <= first_pass):
        return "FAIL", first_fail + 1
    if first_pass is not None:
        return "PASS", first_pass + 1
    return None, None


def _first_rows(hit: np.ndarray, n: int) -> np.ndarray:
    """Index of the first True per row, n where none."""
    return np.where(hit.any(axis=-1), hit.argmax(axis=-1), n)


@dataclass(frozen=True)
class Plan:
    needed: int | None  # smallest look with P(PASS | alternative) >= 1 - beta, None if not within the cap
    power_at_cap: float  # P(PASS by the cap | alternative)
    mean_used: float  # mean samples used at the alternative (stopping at the cap)
    runs: int
    law: str  # the simulated law


@functools.lru_cache(maxsize=64)
def plan(threshold: float, margin: float, alpha: float, beta: float, *, batch: int, cap: int,
         direction: str = ">=", bets: str = "design", runs: int = 2000, seed: int = 0) -> Plan:
    """Samples the gate needs so that a score law with mean threshold +- margin PASSes with probability
    >= 1 - beta (Monte-Carlo on the maximum-variance, Bernoulli, law; fixed seed, so the plan is reproducible;
    the simulated power must clear 1 - beta by two standard errors, so Monte-Carlo error does not eat beta).
    """
    gate = BettingGate(threshold, margin, alpha, beta, direction, bets)
    m1 = gate._nulls[1]
    p_good = m1 if direction == ">=" else 1 - m1
    rng = np.random.default_rng(seed)
    looks = np.arange(batch, cap + batch, batch)
    looks[-1] = min(looks[-1], cap)
    passed_by = np.zeros(looks.size)
    used_sum = 0.0
    chunk = max(1, min(runs, 2_000_000 // max(cap, 1)))
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        x = (rng.random((r, cap)) < p_good).astype(float)
        codes, used = gate.simulate(x, batch)
        passed_by += ((codes == 1)[:, None] & (used[:, None] <= looks[None, :])).sum(axis=0)
        used_sum += float(used.sum())
    power = passed_by / runs
    # the first look whose simulated power clears 1 - beta by two Monte-Carlo standard errors
    ok = np.flatnonzero(power >= 1 - beta + 2 * math.sqrt(beta * (1 - beta) / runs))
    return Plan(needed=int(looks[ok[0]]) if ok.size else None, power_at_cap=float(power[-1]),
                mean_used=used_sum / runs, runs=runs, law=f"Bernoulli({p_good:g})")
