"""Grouped samples: whole-group sampling and the cluster bootstrap bound, against independent implementations
(statsmodels' cluster-robust standard error, a hand-written cluster bootstrap) and by simulation: with correlated
outcomes inside groups, the per-sample exact binomial test passes a model at the threshold far more often than
alpha; the cluster bound does not."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.stats import beta as beta_dist
from scipy.stats import binomtest, norm

from mlci.accuracy.sampling import group_order, stratified_order_codes
from mlci.accuracy.stats.cluster import by_group, cluster_bound, design_effect


def clustered_outcomes(rng: np.random.Generator, groups: int, size: int, p: float, icc: float) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """0/1 outcomes of `groups` groups of `size`: each group's accuracy ~ Beta with mean p and intra-class
    correlation icc (the beta-binomial model: a = p (1 - icc) / icc, b = (1 - p)(1 - icc) / icc)."""
    a, b = p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc
    group_p = beta_dist.rvs(a, b, size=groups, random_state=rng)
    y = (rng.random((groups, size)) < group_p[:, None]).astype(float).reshape(-1)
    return y, np.repeat(np.arange(groups), size)


def test_by_group_totals_in_first_seen_order() -> None:
    c = by_group(np.array([1, 0, 1, 1, 0]), np.array(["b", "a", "b", "c", "a"]))
    assert c.totals.tolist() == [2, 0, 1] and c.sizes.tolist() == [2, 2, 1] and c.estimate == pytest.approx(0.6)


def test_bound_agrees_with_statsmodels_cluster_robust_normal_bound() -> None:
    rng = np.random.default_rng(7)
    y, g = clustered_outcomes(rng, groups=400, size=8, p=0.9, icc=0.2)
    est, lower, k = cluster_bound(y, g, alpha=0.05, seed=1)
    fit = sm.OLS(y, np.ones((len(y), 1))).fit(cov_type="cluster", cov_kwds={"groups": g})
    sm_lower = float(fit.params[0] - norm.ppf(0.95) * fit.bse[0])
    assert k == 400 and est == pytest.approx(fit.params[0])
    assert lower == pytest.approx(sm_lower, abs=0.004)  # bootstrap vs sandwich SE: both ~1.645 cluster SEs below
    # the per-sample bound is far tighter (it ignores the correlation): the cluster one is wider by ~sqrt(deff)
    naive_se = np.sqrt(est * (1 - est) / len(y))
    deff = design_effect(y, g)
    assert (est - lower) / (norm.ppf(0.95) * naive_se) == pytest.approx(np.sqrt(deff), rel=0.15)
    assert deff == pytest.approx(1 + 7 * 0.2, rel=0.3)


def test_bound_agrees_with_a_hand_written_cluster_bootstrap() -> None:
    rng = np.random.default_rng(11)
    y, g = clustered_outcomes(rng, groups=150, size=5, p=0.8, icc=0.3)
    c = by_group(y, g)
    boot = np.random.default_rng(3)
    picks = boot.integers(0, c.groups, size=(20000, c.groups))  # resample whole groups
    ratios = c.totals[picks].sum(axis=1) / c.sizes[picks].sum(axis=1)
    percentile_lower = float(np.quantile(ratios, 0.05))
    _, lower, _ = cluster_bound(y, g, alpha=0.05, seed=5, n_resamples=9999)
    assert lower == pytest.approx(percentile_lower, abs=0.006)  # BCa vs percentile: close on a near-symmetric ratio


def test_independent_samples_have_no_design_effect_and_few_groups_know_nothing() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(4000) < 0.9).astype(float)
    assert design_effect(y, np.arange(4000)) == pytest.approx(1.0, abs=0.01)
    assert cluster_bound(y[:10], np.array([0] * 5 + [1] * 5), alpha=0.05, seed=0)[1] == float("-inf")
    assert cluster_bound(np.ones(30), np.repeat(np.arange(10), 3), alpha=0.05, seed=0)[1] == 1.0
    assert cluster_bound(np.zeros(30), np.repeat(np.arange(10), 3), alpha=0.05, seed=0, side="upper")[1] == 0.0


def test_false_pass_rate_at_the_threshold_naive_is_inflated_cluster_is_not() -> None:
    """A model exactly at min (accuracy 0.85), groups of 20 with ICC 0.3 (deff ~6.7), 120 groups: how often does
    each test declare accuracy >= 0.85 at alpha 0.05?"""
    rng = np.random.default_rng(2024)
    p0, alpha, reps = 0.85, 0.05, 300
    naive = cluster = 0
    for r in range(reps):
        y, g = clustered_outcomes(rng, groups=120, size=20, p=p0, icc=0.3)
        naive += binomtest(int(y.sum()), len(y), p0, alternative="greater").pvalue <= alpha
        cluster += cluster_bound(y, g, alpha=alpha, seed=r, n_resamples=999)[1] > p0
    # binomial SE of a rate near 0.05 over 300 runs: 0.0126; 0.09 is ~3 SE above alpha
    assert cluster / reps <= 0.09, cluster / reps
    assert naive / reps >= 0.2, naive / reps  # theory: P(Z > 1.645 / sqrt(6.7)) ~ 0.26


def test_group_order_draws_whole_groups_stratified_by_their_class() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, size=3000)
    group_class = rng.integers(0, 3, size=300)
    codes = group_class[groups]  # every group's rows share its class
    order, starts = group_order(codes, groups, seed=42)
    assert sorted(order.tolist()) == list(range(3000))
    drawn = groups[order]
    # contiguous: each group appears as one run
    runs = drawn[np.r_[True, drawn[1:] != drawn[:-1]]]
    assert len(runs) == len(set(runs.tolist())) == len(np.unique(groups))
    assert np.array_equal(drawn[starts], runs)
    # inside a group, dataset order
    for gid in runs[:20].tolist():
        rows = order[drawn == gid]
        assert np.all(np.diff(rows) > 0)
    # the group sequence is the stratified order of the groups' classes: every prefix within 2 of its share
    present = np.unique(groups)
    seq = np.searchsorted(present, runs)
    assert np.array_equal(seq, stratified_order_codes(group_class[present], 42))
    share = np.bincount(group_class[present], minlength=3) / len(present)
    for m in (10, 50, 100, 200):
        got = np.bincount(group_class[runs[:m]], minlength=3)
        assert np.all(np.abs(got - share * m) <= 2)
    # the same seed, the same order; another seed, another
    assert np.array_equal(group_order(codes, groups, seed=42)[0], order)
    assert not np.array_equal(group_order(codes, groups, seed=43)[0], order)
