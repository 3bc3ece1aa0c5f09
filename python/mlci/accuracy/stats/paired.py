"""Change gates for any metric: non-inferiority of a candidate against a baseline on the same samples.

Margins, on the metric's own scale, like MLflow's thresholds (with the opposite sign: a positive margin
allows the candidate to be that much worse, a negative one requires that much improvement, as MLflow's
min_absolute_change / min_relative_change do):

* absolute delta: non-inferior when  cand >= base - delta   (higher is better)  /  cand <= base + delta;
* relative r:     non-inferior when  cand >= (1 - r) base                       /  cand <= (1 + r) base.

Each is a linear contrast T of the two metric values that is > 0 exactly when the candidate is
non-inferior (T = cand - base + delta, cand - (1 - r) base, and mirrored for lower-is-better). With both
margins the candidate must clear both (an intersection-union test: each at alpha keeps the false-PASS rate
<= alpha).

Verdicts, at one (final) look, from a paired BCa bootstrap (scipy.stats.bootstrap, paired=True: every
resample draws the same samples for candidate and baseline, which keeps their correlation):

    PASS          every contrast's one-sided (1 - alpha) lower bound is > 0   (false PASS <= alpha at the margin)
    FAIL          else, when the one-sided (1 - beta) upper bound of the difference cand - base (sign-adjusted)
                  is < 0: the candidate is worse than the baseline (false FAIL <= beta when they are equal)
    INCONCLUSIVE  otherwise: too few samples to tell.

The bootstrap's levels are asymptotic: at a few hundred samples its one-sided bounds are slightly too narrow.
tests/benchmarks/bench_gates.py (D) measures them, 2,000 runs of 300 samples per point (alpha 0.05 / beta
0.10): false PASS / false FAIL = AUC 0.057 / 0.112, macro-F1 0.051 / 0.106, MAE 0.044 / 0.113, RMSE
0.045 / 0.098, latency p95 0.069 / 0.130 -- the 95th percentile, set by ~15 tail samples at n = 300, is the
worst; at n = 1,000 (1,000 runs) p95 gives 0.061 / 0.096: gate tail quantiles on large samples.

Plan: at no change the bootstrap standard error of the difference se_d shrinks like 1/sqrt(n), so the n at
which PASS has probability 1 - beta is n_used * ((z_{1-alpha} + z_{1-beta}) se_d / delta)**2 (delta: the
smallest margin on the difference scale; for a relative margin r * |base|). It is reported with every result
(from the data at hand); a pilot or the baseline's previous run gives it before a run.

For metrics that are means of bounded per-sample scores (accuracy, a clipped error scaled by a declared
bound, a custom score) `betting_change_gate` gives the anytime-valid sequential version: the per-sample
differences d = cand - base lie in [-1, 1], so y = (1 + d) / 2 lies in [0, 1] and the betting gate tests
mean(y) >= (1 - delta) / 2 against the alternative 1 / 2 (no change).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap, norm, rankdata

from .betting import BettingGate


@dataclass(frozen=True)
class ChangeMargin:
    """Allowed worsening of the candidate: absolute (metric units) and/or relative (fraction of baseline)."""

    absolute: float | None = None
    relative: float | None = None

    def __post_init__(self) -> None:
        if self.absolute is None and self.relative is None:
            raise ValueError("a change margin needs an absolute and/or a relative tolerance")
        if self.relative is not None and not -1 < self.relative < 1:
            raise ValueError(f"relative margin must be in (-1, 1), got {self.relative}")


def contrasts(cand: np.ndarray, base: np.ndarray, margin: ChangeMargin, higher_better: bool) -> np.ndarray:
    """Stacked contrasts, each > 0 when the candidate is non-inferior, then the plain (signed) difference."""
    sign = 1.0 if higher_better else -1.0
    out = []
    if margin.absolute is not None:
        out.append(sign * (cand - base) + margin.absolute)
    if margin.relative is not None:
        out.append(sign * (cand - base) + margin.relative * np.abs(base))
    out.append(sign * (cand - base))
    return np.stack(out)


@dataclass(frozen=True)
class ChangeResult:
    verdict: str
    candidate: float
    baseline: float
    difference: float  # cand - base (raw)
    lower: list[float]  # one-sided (1 - alpha) lower bound per contrast (absolute, relative as configured)
    diff_upper: float  # one-sided (1 - beta) upper bound of the sign-adjusted difference
    diff_se: float  # bootstrap standard error of the difference
    planned_n: int | None  # n giving power 1 - beta at no change (from diff_se), None if not estimable
    n: int
    method: str = "paired BCa bootstrap (fixed look)"


def _bounds(res_ci: object) -> tuple[np.ndarray, np.ndarray]:
    ci = res_ci.confidence_interval  # type: ignore[attr-defined]
    return np.atleast_1d(np.asarray(ci.low, dtype=float)), np.atleast_1d(np.asarray(ci.high, dtype=float))


def paired_change_test(candidate: tuple[np.ndarray, ...], baseline: tuple[np.ndarray, ...],
                       metric: Callable[..., np.ndarray | float], *, higher_better: bool, margin: ChangeMargin,
                       alpha: float, beta: float, seed: int = 0, n_resamples: int = 2000,
                       vectorized: bool = True, batch: int | None = None) -> ChangeResult:
    """Non-inferiority of metric(*candidate) against metric(*baseline) on the same samples.

    `candidate` and `baseline` are per-sample column tuples (e.g. (labels, cand_scores) and (labels,
    base_scores)); all columns are resampled together. `metric(*cols, axis=-1)` when vectorized, else
    `metric(*cols)`.
    """
    k = len(candidate)
    cols = tuple(np.asarray(c) for c in candidate) + tuple(np.asarray(b) for b in baseline)
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError("candidate and baseline columns must have one entry per sample")

    def value(*c: np.ndarray, axis: int = -1) -> np.ndarray:
        if vectorized:
            return np.asarray(metric(*c, axis=axis), dtype=float)
        return np.asarray(metric(*c), dtype=float)

    def stat(*c: np.ndarray, axis: int = -1) -> np.ndarray:
        return contrasts(value(*c[:k], axis=axis), value(*c[k:], axis=axis), margin, higher_better)

    cand_v, base_v = float(value(*cols[:k])), float(value(*cols[k:]))
    m = (margin.absolute is not None) + (margin.relative is not None)
    if n < 3:
        return ChangeResult("INCONCLUSIVE", cand_v, base_v, cand_v - base_v, [-math.inf] * m, math.inf, math.nan,
                            None, n)
    rng = np.random.default_rng(seed)
    res = bootstrap(cols, stat, paired=True, vectorized=vectorized, n_resamples=n_resamples, batch=batch,
                    confidence_level=1 - 2 * alpha, method="BCa", random_state=rng)
    low, _ = _bounds(res)
    res_b = bootstrap(cols, stat, paired=True, vectorized=vectorized, n_resamples=0, bootstrap_result=res,
                      confidence_level=1 - 2 * beta, method="BCa", random_state=rng)
    _, high = _bounds(res_b)
    dist = np.asarray(res.bootstrap_distribution)
    point = stat(*cols)
    low = np.where(np.isnan(low), point, low)  # degenerate resamples (a constant statistic): the value itself
    high = np.where(np.isnan(high), point, high)
    se = float(np.std(dist[-1], ddof=1))
    lower, diff_up = [float(v) for v in low[:-1]], float(high[-1])
    if all(v > 0 for v in lower):
        verdict = "PASS"
    elif diff_up < 0:
        verdict = "FAIL"
    else:
        verdict = "INCONCLUSIVE"
    tolerance = min(t for t in (margin.absolute, None if margin.relative is None else margin.relative * abs(base_v))
                    if t is not None)
    return ChangeResult(verdict, cand_v, base_v, cand_v - base_v, lower, diff_up, se,
                        planned_n(se, n, tolerance, alpha, beta), n)


def planned_n(se: float, n: int, tolerance: float, alpha: float, beta: float) -> int | None:
    """Samples at which PASS has probability 1 - beta when candidate and baseline are equal (normal scaling
    of the observed standard error se at n samples); None when the tolerance does not allow a PASS."""
    if tolerance <= 0 or not math.isfinite(se) or n <= 0:
        return None
    if se == 0:
        return n
    return math.ceil(n * ((norm.isf(alpha) + norm.isf(beta)) * se / tolerance) ** 2)


def auc(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """ROC AUC by ranks (Mann-Whitney, ties half), vectorised along `axis` for the bootstrap."""
    labels = np.asarray(labels).astype(bool)
    ranks = rankdata(scores, axis=axis)
    n1 = labels.sum(axis=axis)
    n0 = labels.shape[axis] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.sum(np.where(labels, ranks, 0.0), axis=axis) - n1 * (n1 + 1) / 2
        return np.where((n1 > 0) & (n0 > 0), u / (n1 * n0), np.nan)


def betting_change_gate(margin: float, alpha: float, beta: float, **kwargs: object) -> BettingGate:
    """Anytime-valid paired non-inferiority for the mean of bounded per-sample scores (absolute margin).

    Feed it `paired_scores(cand, base)`; PASS rejects mean(cand - base) <= -margin, FAIL rejects
    mean(cand - base) >= 0 (the alternative: no change).
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin must be in (0, 1) on the score scale, got {margin}")
    return BettingGate((1 - margin) / 2, margin / 2, alpha, beta, **kwargs)  # type: ignore[arg-type]


def paired_scores(cand: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(1 + cand - base) / 2 in [0, 1] for per-sample scores in [0, 1]."""
    cand, base = np.asarray(cand, dtype=float), np.asarray(base, dtype=float)
    return (1 + cand - base) / 2
