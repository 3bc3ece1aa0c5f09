"""A truncated SPRT for a Bernoulli proportion whose boundaries meet at a maximum sample size.

Wald's open SPRT (sprt.py) is fast far from the hypotheses but, between p0 (= min) and p1 (= min + margin),
it wanders: its expected sample size there exceeds the exact fixed-n test's n, and a cap turns the wandering
into INCONCLUSIVE verdicts. This design keeps the SPRT's statistic -- the log likelihood ratio
Z(k, n) = k log(p1/p0) + (n - k) log((1 - p1)/(1 - p0)) -- but closes the continuation region:

    PASS when Z >= u(n) = U - (U - c) x**g,   FAIL when Z <= l(n) = -L + (L + c) x**g,   x = n / N,

so the two boundaries start as SPRT thresholds (U, -L) and bend to meet at Z = c when n reaches the
maximum N; at N every outcome is decided (PASS iff Z >= c), so there is no INCONCLUSIVE. Looks happen
every `batch` trials (the engine's batches), and the design is computed for exactly that schedule:

* the operating characteristic -- P(PASS), P(FAIL) and the expected sample size at any true p -- is computed
  exactly by dynamic programming over the binomial paths from look to look (scipy.stats.binom for the
  increments), not by Wald's approximations;
* U and L are then the smallest thresholds whose exact size P(PASS | p0) <= alpha and exact
  P(FAIL | p1) <= beta (bisection on the exact OC), so alpha and beta hold exactly at this schedule;
* the shape g and the maximum N = 1.5 x the exact fixed n are fixed rules (chosen by exact OC over
  the examples' gates: with them the expected sample size stays well under the fixed n at every p, and
  the SPRT's savings at min - margin and min + 2 margin are kept); the meeting value c is chosen by a
  coarse scan and a golden-section search minimising the mean expected sample size over p0 - margin, p0,
  the midpoint, p1 and p1 + margin.

P(PASS | p) increases with p (couple the paths through one uniform per trial: a path drawn at a higher p
lies above, cannot reach the FAIL cut before the lower path passes, and passes no later), so the size at p0
bounds the false-PASS rate for every p <= p0, and P(FAIL | p1) bounds the false FAILs for every p >= p1.

The exactness is for looks every `batch` trials; at a look with another trial count (a class-conditional
precision or recall gate, or excluded prediction errors) the same boundaries are read at that count,
which keeps the test well defined but makes alpha and beta approximate there (tests/benchmarks/
bench_gates.py, F: with the design made for the expected trials per look, e.g. 15 for a class with a 30%
share of batches of 50, the simulated rates stay at the nominal ones within Monte-Carlo error).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from . import fixed_n

SHAPE = 3.0  # g: boundaries stay close to the SPRT's early and converge late
MAX_FACTOR = 1.5  # N = MAX_FACTOR x exact fixed n (rounded up to whole batches) unless a cap is lower


@dataclass(frozen=True)
class Design:
    """A closed design: boundaries on the log likelihood ratio plus its exact operating characteristic."""

    p0: float
    p1: float
    alpha: float
    beta: float
    batch: int
    max_n: int  # N: every path is decided at this many trials
    upper: float  # U
    lower: float  # L (the FAIL boundary starts at -L)
    meet: float  # c
    shape: float  # g
    size: float  # exact P(PASS | p0) at this look schedule
    false_fail: float  # exact P(FAIL | p1)
    fixed_n: int  # the exact fixed-n test's n at the same alpha / beta

    @property
    def looks(self) -> np.ndarray:
        return look_schedule(self.batch, self.max_n)


def look_schedule(batch: int, max_n: int) -> np.ndarray:
    looks = np.arange(batch, max_n + 1, batch)
    return looks if looks.size and looks[-1] == max_n else np.append(looks, max_n)


def _steps(p0: float, p1: float) -> tuple[float, float]:
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def _cuts(n: np.ndarray, p0: float, p1: float, max_n: int, upper: float, lower: float, meet: float,
          shape: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer cuts at trial counts n: PASS when k >= r, FAIL when k <= a (a = r - 1 from N on)."""
    s, f = _steps(p0, p1)
    d = s - f
    n = np.asarray(n, dtype=float)
    x = np.minimum(n / max_n, 1.0) ** shape
    u = upper - (upper - meet) * x
    lo = -lower + (lower + meet) * x
    # Z(k, n) = k d + n f; the 1e-9 keeps a boundary landing exactly on an integer on the decided side
    r = np.ceil((u - n * f) / d - 1e-9).astype(np.int64)
    a = np.floor((lo - n * f) / d + 1e-9).astype(np.int64)
    a = np.where(n >= max_n, r - 1, np.minimum(a, r - 1))
    return r, a


@functools.lru_cache(maxsize=256)
def _increment(m: int, p: float) -> np.ndarray:
    """The Binomial(m, p) law of one batch's successes."""
    return binom.pmf(np.arange(m + 1), m, p)


def operating_characteristic(looks: np.ndarray, r: np.ndarray, a: np.ndarray,
                             ps: np.ndarray | list[float] | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact (P(PASS), P(FAIL), E[trials]) at each true p for cuts r / a at the given looks.

    Dynamic programming over the binomial paths: the sub-probability of each success count among paths
    still running is carried from look to look, convolved with the Binomial(increment, p) law of the next
    batch; mass at or beyond a cut is booked as PASS / FAIL and removed. Paths alive after the last look
    count as undecided (none, when the last cuts meet).
    """
    ps = np.atleast_1d(np.asarray(ps, dtype=float))
    rows = [np.ones(1) for _ in ps]
    offset, prev = 0, 0
    p_pass, p_fail, expected = np.zeros(ps.size), np.zeros(ps.size), np.zeros(ps.size)
    for n, rj, aj in zip(looks.tolist(), r.tolist(), a.tolist(), strict=True):
        m = n - prev
        g = np.stack([np.convolve(row, _increment(m, p)) for row, p in zip(rows, ps.tolist(), strict=True)])
        # success counts offset .. offset + width - 1 carried; cuts as indices into this window
        hi = min(max(rj - offset, 0), g.shape[1])  # first index at or above the PASS cut
        lo = min(max(aj - offset + 1, 0), hi)  # first index above the FAIL cut
        pu, pd = g[:, hi:].sum(axis=1), g[:, :lo].sum(axis=1)
        p_pass += pu
        p_fail += pd
        expected += (pu + pd) * n
        prev = n
        rows, offset = list(g[:, lo:hi]), offset + lo
        if hi <= lo:
            break
    expected += np.array([row.sum() for row in rows]) * prev
    return p_pass, p_fail, expected


def _oc(p0: float, p1: float, batch: int, max_n: int, upper: float, lower: float, meet: float, shape: float,
        ps: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    looks = look_schedule(batch, max_n)
    r, a = _cuts(looks, p0, p1, max_n, upper, lower, meet, shape)
    return operating_characteristic(looks, r, a, ps)


_LIMIT = 25.0  # thresholds beyond this stop nothing early: the final look alone would have to hold the error


def _smallest(fn, target: float, start: float, width: float = 1.0, steps: int = 12) -> float | None:
    """Smallest threshold t (to width / 2**steps) with fn(t) <= target, fn non-increasing in t; bracket from
    start. None when even t = _LIMIT does not reach the target (the final look alone exceeds it)."""
    lo, hi = max(start - width, 0.0), start + width
    while fn(hi) > target:
        if hi >= _LIMIT:
            return None
        lo, hi = hi, min(hi + 2 * width, _LIMIT)
    while lo > 0 and fn(lo) <= target:
        lo, hi = max(lo - 2 * width, 0.0), lo
    for _ in range(steps):
        mid = (lo + hi) / 2
        if fn(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def _calibrate(p0: float, p1: float, alpha: float, beta: float, batch: int, max_n: int, meet: float,
               shape: float) -> tuple[float, float, float, float] | None:
    """U and L whose exact errors are <= alpha / beta (alternating bisections): (U, L, size, false FAIL), or
    None when no thresholds reach both (the meeting value puts too much error at the final look)."""
    upper: float | None = math.log(1 / alpha)
    lower: float | None = math.log(1 / beta)
    for _ in range(2):
        upper = _smallest(lambda t, lo=lower: _oc(p0, p1, batch, max_n, t, lo, meet, shape, [p0])[0][0], alpha, upper)
        if upper is None:
            return None
        lower = _smallest(lambda t, up=upper: _oc(p0, p1, batch, max_n, up, t, meet, shape, [p1])[1][0], beta, lower)
        if lower is None:
            return None
    for _ in range(200):  # the last L step can move the size a little: nudge until both hold
        pp, pf, _ = _oc(p0, p1, batch, max_n, upper, lower, meet, shape, [p0, p1])
        if pp[0] <= alpha and pf[1] <= beta:
            return upper, lower, float(pp[0]), float(pf[1])
        upper += 2e-3 if pp[0] > alpha else 0.0
        lower += 2e-3 if pf[1] > beta else 0.0
    return None


@functools.lru_cache(maxsize=64)
def design(p0: float, p1: float, alpha: float, beta: float, batch: int = 50, max_n: int | None = None) -> Design:
    """The closed design for H0: p <= p0 vs H1: p >= p1 with looks every `batch` trials.

    `max_n` caps N (e.g. the suite's max_samples or the dataset size); it must be at least the exact
    fixed n, since no sequential design with the same exact alpha and beta can stop everywhere sooner, and in
    practice ~1.1 x the fixed n (examples' gate: N = 1,800 has no design, 1,900 has). Raises ValueError when no
    design exists under the cap: the caller then runs the exact fixed-n test (fixed_n.py) instead.
    """
    if not 0 < p0 < p1 < 1:
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    fx = fixed_n.exact_n(p0, p1, alpha, beta).n
    n_max = math.ceil(MAX_FACTOR * fx / batch) * batch
    if max_n is not None:
        if max_n < fx:
            raise ValueError(f"max_n {max_n} is below the exact fixed n {fx}")
        n_max = min(n_max, max(max_n // batch * batch, fx))
    margin = p1 - p0
    grid = [max(p0 - margin, p0 / 2), p0, (p0 + p1) / 2, p1, min(p1 + margin, (1 + p1) / 2)]

    def cost(meet: float) -> tuple[float, tuple[float, float, float, float] | None]:
        cal = _calibrate(p0, p1, alpha, beta, batch, n_max, meet, SHAPE)
        if cal is None:
            return math.inf, None
        asn = _oc(p0, p1, batch, n_max, cal[0], cal[1], meet, SHAPE, grid)[2]
        return float(asn.mean()), cal

    # the meeting value: a coarse scan (some values leave too much error at the final look: infinite cost),
    # then a golden-section search between the best point's neighbours
    span = max(1.0, 2 * abs(math.log(beta / alpha)))
    grid_c = np.linspace(-span, span, 7)
    costs = [cost(float(c)) for c in grid_c]
    best = int(np.argmin([c[0] for c in costs]))
    lo, hi = float(grid_c[max(best - 1, 0)]), float(grid_c[min(best + 1, grid_c.size - 1)])
    inv = (math.sqrt(5) - 1) / 2
    x1, x2 = hi - inv * (hi - lo), lo + inv * (hi - lo)
    c1, c2 = cost(x1), cost(x2)
    for _ in range(6):
        if c1[0] <= c2[0]:
            hi, x2, c2 = x2, x1, c1
            x1 = hi - inv * (hi - lo)
            c1 = cost(x1)
        else:
            lo, x1, c1 = x1, x2, c2
            x2 = lo + inv * (hi - lo)
            c2 = cost(x2)
    meet, (_, cal) = min(((x1, c1), (x2, c2), (float(grid_c[best]), costs[best])), key=lambda t: t[1][0])
    if cal is None:
        raise ValueError(f"no closed design with max_n {n_max} holds alpha {alpha} and beta {beta} (fixed n {fx}): "
                         "allow more samples or use the fixed-n test")
    upper, lower, size, ff = cal
    return Design(p0=p0, p1=p1, alpha=alpha, beta=beta, batch=batch, max_n=n_max, upper=upper, lower=lower,
                  meet=meet, shape=SHAPE, size=size, false_fail=ff, fixed_n=fx)


@dataclass(frozen=True)
class TruncatedSprt:
    """Drop-in for Sprt(p0, p1, alpha, beta).decide(k, n) with a closed continuation region.

    `batch` is the look spacing the design is exact for; `max_n` optionally caps the maximum N.
    """

    p0: float
    p1: float
    alpha: float
    beta: float
    batch: int = 50
    max_n: int | None = None

    @property
    def design(self) -> Design:
        return design(self.p0, self.p1, self.alpha, self.beta, self.batch, self.max_n)

    def llr(self, k: int | np.ndarray, n: int | np.ndarray) -> float | np.ndarray:
        """Log likelihood ratio of p1 vs p0 after k successes in n trials (the SPRT's statistic)."""
        s, f = _steps(self.p0, self.p1)
        return k * s + (n - k) * f

    def boundaries(self, n: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(FAIL cut a, PASS cut r) on the success count at n trials: FAIL when k <= a, PASS when k >= r."""
        d = self.design
        r, a = _cuts(np.asarray(n), d.p0, d.p1, d.max_n, d.upper, d.lower, d.meet, d.shape)
        return a, r

    def llr_bounds(self, n: int) -> tuple[float, float]:
        """The boundaries on the log likelihood ratio at n trials: (FAIL at or below, PASS at or above)."""
        d = self.design
        x = min(n / d.max_n, 1.0) ** d.shape
        return -d.lower + (d.lower + d.meet) * x, d.upper - (d.upper - d.meet) * x

    def decide(self, k: int, n: int) -> str | None:
        """'PASS', 'FAIL' or None (continue) for the counts at one look; always decided from n >= max_n on."""
        if n <= 0:
            return None
        a, r = self.boundaries(n)
        if k >= int(r):
            return "PASS"
        if k <= int(a):
            return "FAIL"
        return None

    def operating_characteristic(self, ps: np.ndarray | list[float] | float
                                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact (P(PASS), P(FAIL), expected trials) at true values `ps` for looks every `batch` trials."""
        d = self.design
        return _oc(d.p0, d.p1, d.batch, d.max_n, d.upper, d.lower, d.meet, d.shape, list(np.atleast_1d(ps)))


def stagewise_bounds(test: TruncatedSprt, k: int, n: int, lower_level: float, upper_level: float
                     ) -> tuple[float, float]:
    """Confidence bounds for p after the design stopped (or was read) at n trials with k successes, exact at the
    design's looks, by the stage-wise ordering of the outcomes (Armitage 1958; Tsiatis, Rosner & Mehta 1984):
    earlier PASSes rank highest, then later looks, then earlier FAILs lowest. With
    G(p, k) = P_p(PASS at a look before n) + P_p(still running at n with >= k successes),
    the lower bound solves G(L, k) = 1 - lower_level and the upper bound 1 - G(U, k + 1) = 1 - upper_level.
    At the design's own levels they agree with its verdict: a PASS has L >= p0 (G(p0, k) <= P_p0(PASS) <= alpha)
    and a FAIL has U <= p1."""
    if n <= 0:
        return 0.0, 1.0
    d = test.design
    looks = d.looks[d.looks < n]
    looks = np.append(looks, n).astype(np.int64)
    r, a = _cuts(looks, d.p0, d.p1, d.max_n, d.upper, d.lower, d.meet, d.shape)

    def g(p: float, count: int) -> float:
        rr, aa = r.copy(), a.copy()
        rr[-1], aa[-1] = count, min(int(a[-1]), count - 1)
        return float(operating_characteristic(looks, rr, aa, [p])[0][0])

    def solve(fn, target: float) -> float:
        """The p in (0, 1) where the increasing fn(p) crosses target (clamped to the ends)."""
        lo, hi = 1e-9, 1 - 1e-9
        if fn(lo) >= target:
            return 0.0
        if fn(hi) <= target:
            return 1.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if fn(mid) < target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = solve(lambda p: g(p, k), 1 - lower_level)
    upper = solve(lambda p: g(p, k + 1), upper_level)
    return lower, upper
