"""Gates on grouped samples: the cluster bootstrap (scipy.stats.bootstrap over whole groups).

Augmented copies of one image, several pages of one document, several rows of one patient are not independent:
their outcomes are correlated, so a test that counts every row as an independent Bernoulli trial overstates the
evidence by the design effect 1 + (m - 1) * ICC and passes a model at the threshold far more often than alpha
(tests/python/accuracy/test_cluster.py simulates it). The unit of evidence is the group: the statistic of a
per-sample score (accuracy's 0/1 correctness, a per-sample error) is the ratio estimator
sum over groups of the score totals / sum of the group sizes, and its one-sided bound comes from a BCa bootstrap
that resamples whole groups (paired: each group's total and size stay together), i.e. the cluster bootstrap of
Davison & Hinkley (1997, sec. 3.8) and Field & Welsh (2007).

Two gates on grouped samples (wired by accuracy/grouping.py, `dataset.group`, with `sampling.group_order`
drawing whole groups):

* `ClusterBettingGate`: an anytime-valid betting test (Waudby-Smith & Ramdas 2024, as stats/betting.py) on
  group terms. For a group j with score total T_j and size m_j (both over the samples that count) and M the
  largest group of the dataset, Y_j(m) = (T_j - m * m_j) / M + m lies in [0, 1], and
  E[Y_j(m)] <= m exactly when the ratio E[T] / E[size] (the per-sample metric of the population of groups)
  is <= m. Groups are independent draws, so the betting capital on Y_j(threshold) is a non-negative
  supermartingale under "metric <= threshold", and Ville's inequality bounds a false PASS by alpha at every
  stopping time (looks at group boundaries). The FAIL test is the mirror one at threshold + margin. Nothing
  assumes the within-group correlation: a group counts as one observation however alike its members are. The
  price: a group's weight is its size over the largest group's, so very unequal group sizes lose power.
* `cluster_interval`: the BCa bootstrap over whole groups of any statistic of the rows (F1, AUC, latency
  percentiles, regression errors, paired differences), at one fixed look; approximate at small group counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

from .betting import TRUNCATION, _monotone_root, crossing, design_bets


@dataclass(frozen=True)
class Clustered:
    """Per-group totals of a per-sample score, in first-seen group order."""

    totals: np.ndarray  # sum of the score over each group's samples
    sizes: np.ndarray  # samples per group

    @property
    def groups(self) -> int:
        return len(self.sizes)

    @property
    def estimate(self) -> float:
        return float(self.totals.sum() / self.sizes.sum()) if self.sizes.sum() else float("nan")


def by_group(scores: np.ndarray, groups: np.ndarray) -> Clustered:
    """Group totals and sizes of per-sample `scores` (groups: any hashable labels, one per sample)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    _, first, inverse = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")  # first-seen order: the sample order decides, not the label sort
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[inverse]
    return Clustered(np.bincount(codes, weights=scores, minlength=len(order)),
                     np.bincount(codes, minlength=len(order)).astype(np.float64))


def _ratio(totals: np.ndarray, sizes: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(totals, axis=axis) / np.sum(sizes, axis=axis)


def cluster_bound(scores: np.ndarray, groups: np.ndarray, *, alpha: float, seed: int, side: str = "lower",
                  n_resamples: int = 2000) -> tuple[float, float, int]:
    """(estimate, one-sided (1 - alpha) bound, number of groups) of the mean score, resampling whole groups.

    `side="lower"` bounds a higher-is-better score from below (accuracy >= min PASSes when the bound clears min),
    `"upper"` a lower-is-better one from above. Fewer than 3 groups give an infinite bound (nothing is known)."""
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', not {side!r}")
    c = by_group(scores, groups)
    if c.groups < 3:
        return c.estimate, float("-inf") if side == "lower" else float("inf"), c.groups
    means = c.totals / c.sizes
    if np.all(means == means[0]):  # every group has the same mean score: every resample is that value
        return c.estimate, c.estimate, c.groups
    res = bootstrap((c.totals, c.sizes), _ratio, paired=True, vectorized=True, n_resamples=n_resamples,
                    confidence_level=1 - alpha, alternative="greater" if side == "lower" else "less", method="BCa",
                    random_state=np.random.default_rng(seed))
    bound = float(res.confidence_interval.low if side == "lower" else res.confidence_interval.high)
    if np.isnan(bound):  # degenerate resamples (scipy cannot compute BCa's acceleration)
        bound = c.estimate
    return c.estimate, bound, c.groups


def design_effect(scores: np.ndarray, groups: np.ndarray) -> float:
    """Variance of the cluster ratio estimator over the variance it would have with independent samples
    (linearised: Kish's deff, estimated from the group residual totals); 1 for independent samples, about
    1 + (m - 1) * ICC for groups of m. Shown next to the group count: the factor the evidence shrinks by."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = by_group(scores, groups)
    n, k = c.sizes.sum(), c.groups
    if k < 2 or n < 2:
        return float("nan")
    mean = c.estimate
    resid = c.totals - mean * c.sizes
    var_cluster = k / (k - 1) * np.sum(resid ** 2) / n ** 2
    var_srs = np.var(scores, ddof=1) / n
    return float(var_cluster / var_srs) if var_srs > 0 else float("nan")


@dataclass(frozen=True)
class ClusterVerdict:
    verdict: str | None  # PASS, FAIL or None (no test has crossed yet)
    at: int | None  # group (1-based) at which the deciding test first crossed
    log_pass: float  # max over the groups of log K+(threshold)
    log_fail: float  # max over the groups of log K-(threshold + margin)


@dataclass(frozen=True)
class ClusterBettingGate:
    """Anytime-valid gate on a per-sample metric (a ratio of group totals to group sizes) judged on groups.

    `threshold`/`margin` on the higher-is-better scale (a lower-is-better score is passed as 1 - score per
    sample, and its threshold as 1 - threshold); `max_size` the dataset's largest group (fixed before the
    run, so the terms are predictable), `mean_size` its mean group size (only the bets' design: the
    alternative's group term is margin * mean_size / max_size above the null)."""

    threshold: float
    margin: float
    alpha: float
    beta: float
    max_size: float
    mean_size: float
    fail_share: float = 0.5  # the FAIL test runs at beta * fail_share (as stats/betting.py)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < self.threshold + self.margin < 1:
            raise ValueError(f"need 0 < threshold < threshold + margin < 1, got {self.threshold}, {self.margin}")
        if not (0 < self.alpha < 1 and 0 < self.beta < 1) or self.max_size < 1 or self.mean_size <= 0:
            raise ValueError("alpha, beta in (0, 1), max_size >= 1 and mean_size > 0 are needed")

    @property
    def fail_level(self) -> float:
        return self.beta * self.fail_share

    @property
    def _design_margin(self) -> float:
        return self.margin * min(1.0, self.mean_size / self.max_size)

    def _terms(self, totals: np.ndarray, sizes: np.ndarray, m: float) -> np.ndarray:
        return (np.asarray(totals, dtype=float) - m * np.asarray(sizes, dtype=float)) / self.max_size

    def _bets(self, totals: np.ndarray, sizes: np.ndarray, m: float, side: int) -> np.ndarray:
        """Predictable bets at the null m (the design bet on the plug-in variance of the earlier groups' terms),
        truncated so no factor at m falls below 1 - TRUNCATION; the same bets serve every other m (interval)."""
        y = self._terms(totals, sizes, m) + m
        cap = TRUNCATION / m if side > 0 else TRUNCATION / (1 - m)
        return np.minimum(design_bets(y, self._design_margin), cap)

    def log_pass(self, totals: np.ndarray, sizes: np.ndarray, m: float | None = None) -> np.ndarray:
        """log K+_j(m) over the groups (along the last axis: a (runs, groups) matrix simulates many runs):
        evidence that the metric is above m (default the threshold)."""
        lam = self._bets(totals, sizes, self.threshold, +1)
        u = self._terms(totals, sizes, self.threshold if m is None else m)
        return np.cumsum(np.log(np.maximum(1 + lam * u, 1e-300)), axis=-1)

    def log_fail(self, totals: np.ndarray, sizes: np.ndarray, m: float | None = None) -> np.ndarray:
        """log K-_j(m): evidence that the metric is below m (default threshold + margin)."""
        m1 = self.threshold + self.margin
        lam = self._bets(totals, sizes, m1, -1)
        u = self._terms(totals, sizes, m1 if m is None else m)
        return np.cumsum(np.log(np.maximum(1 - lam * u, 1e-300)), axis=-1)

    def evaluate(self, pass_view: Clustered, fail_view: Clustered) -> ClusterVerdict:
        """The verdict on the groups seen so far (the PASS test on one view of errored samples, FAIL on the
        other); whichever test crosses first, in group order, decides."""
        if pass_view.groups == 0:
            return ClusterVerdict(None, None, 0.0, 0.0)
        lp = self.log_pass(pass_view.totals, pass_view.sizes)
        lf = self.log_fail(fail_view.totals, fail_view.sizes)
        verdict, at = crossing(lp, lf, self.alpha, self.fail_level)
        return ClusterVerdict(verdict, at, float(max(lp.max(), 0.0)), float(max(lf.max(), 0.0)))

    def interval(self, pass_view: Clustered, fail_view: Clustered) -> tuple[float, float]:
        """(lower (1 - alpha), upper (1 - fail_level)) bounds: the nulls the two tests reject (running max over
        the groups), by bisection; the capital at a fixed bet is monotone in m."""
        if pass_view.groups == 0:
            return 0.0, 1.0
        lp_lim, lf_lim = math.log(1 / self.alpha), math.log(1 / self.fail_level)

        def below(m: float) -> bool:
            return bool(self.log_pass(pass_view.totals, pass_view.sizes, m).max() >= lp_lim)

        def above(m: float) -> bool:
            return bool(self.log_fail(fail_view.totals, fail_view.sizes, m).max() >= lf_lim)

        lo = _monotone_root(below, 1e-12, 1.0, increasing=False) if below(1e-12) else 0.0
        hi = _monotone_root(above, 0.0, 1 - 1e-12, increasing=True) if above(1 - 1e-12) else 1.0
        return lo, hi

    def pvalues(self, pass_view: Clustered, fail_view: Clustered) -> tuple[float, float]:
        v = self.evaluate(pass_view, fail_view)
        return min(1.0, math.exp(-v.log_pass)), min(1.0, math.exp(-v.log_fail))


def cluster_interval(stat: Callable[[np.ndarray], float], group_rows: list[np.ndarray], *, alpha: float, seed: int,
                     n_resamples: int = 1000) -> tuple[float, float, float]:
    """(estimate, lower, upper) of `stat(rows)` with a BCa bootstrap that resamples whole groups (each end a
    one-sided 1 - alpha bound). `group_rows[j]`: the row indices of group j. Fewer than 3 groups: (-inf, inf)."""
    rows_all = np.concatenate(group_rows) if group_rows else np.zeros(0, dtype=np.int64)
    est = float(stat(rows_all)) if rows_all.size else float("nan")
    k = len(group_rows)
    if k < 3:
        return est, float("-inf"), float("inf")

    def fn(g: np.ndarray) -> float:
        return float(stat(np.concatenate([group_rows[int(j)] for j in g])))

    res = bootstrap((np.arange(k),), fn, vectorized=False, n_resamples=n_resamples, confidence_level=1 - 2 * alpha,
                    method="BCa", random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # degenerate resamples: the percentile interval
        dist = res.bootstrap_distribution
        lo, hi = (float(np.nanquantile(dist, alpha)), float(np.nanquantile(dist, 1 - alpha))) if np.isfinite(
            dist).any() else (est, est)
    return est, lo, hi
