"""Gates on grouped samples: the cluster bootstrap (scipy.stats.bootstrap over whole groups).

Augmented copies of one image, several pages of one document, several rows of one patient are not independent:
their outcomes are correlated, so a test that counts every row as an independent Bernoulli trial overstates the
evidence by the design effect 1 + (m - 1) * ICC and passes a model at the threshold far more often than alpha
(tests/python/accuracy/test_cluster.py simulates it). The unit of evidence is the group: the statistic of a
per-sample score (accuracy's 0/1 correctness, a per-sample error) is the ratio estimator
sum over groups of the score totals / sum of the group sizes, and its one-sided bound comes from a BCa bootstrap
that resamples whole groups (paired: each group's total and size stay together), i.e. the cluster bootstrap of
Davison & Hinkley (1997, sec. 3.8) and Field & Welsh (2007).

Not wired into the gate evaluator yet (no `dataset.group` key): the building block for grouped gates, with
`sampling.group_order` drawing whole groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap


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
