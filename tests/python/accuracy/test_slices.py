"""Slices: Holm against statsmodels, family verdicts, minimum samples, allocation and stratified order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from mlci.accuracy.stats.betting import BettingGate
from mlci.accuracy.stats.slices import (
    allocate,
    bonferroni,
    family_verdicts,
    holm,
    slice_levels,
    stratified_order,
)


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(0)
    for _ in range(20):  # statsmodels' multipletests takes ~50 ms a call here
        k = int(rng.integers(1, 12))
        p = np.where(rng.random(k) < 0.5, rng.random(k) * 0.02, rng.random(k))
        for level in (0.05, 0.10):
            assert holm(p, level).tolist() == multipletests(p, level, method="holm")[0].tolist()
            assert holm(p, level, np.full(k, 3.0)).tolist() == holm(p, level).tolist()  # equal weights: plain Holm
            assert bonferroni(p, level).tolist() == multipletests(p, level, method="bonferroni")[0].tolist()


def test_weighted_holm_spends_the_level_as_the_user_says():
    # Holm (1979), weighted: step 1 rejects p_i/w_i smallest if p_i <= w_i * level / sum(w)
    p, w = np.array([0.03, 0.04]), np.array([0.8, 0.2])
    assert holm(p, 0.05, w).tolist() == [True, True]  # 0.03 <= 0.04, then 0.04 <= 0.05
    assert holm(p, 0.05).tolist() == [False, False]  # unweighted: 0.03 > 0.025
    assert bonferroni(p, 0.05, w).tolist() == [True, False]  # no step-down: 0.04 > 0.01
    assert slice_levels(0.05, 2, w) == pytest.approx([0.04, 0.01])
    with pytest.raises(ValueError):
        holm(p, 0.05, [1.0, 0.0])


def test_family_verdicts_minimum_samples_and_sides():
    v = family_verdicts([0.001, 0.9, 0.02, 0.001], [0.9, 0.001, 0.5, 0.9], [500, 500, 500, 20], alpha=0.05, beta=0.10,
                        min_samples=100)
    assert v == ["PASS", "FAIL", "PASS", None]  # the small slice takes no part
    final = family_verdicts([0.001, 0.9, 0.04, 0.001], [0.9, 0.001, 0.5, 0.9], [500, 500, 500, 20], alpha=0.05,
                            beta=0.10, min_samples=100, final=True)
    assert final == ["PASS", "FAIL", "INCONCLUSIVE", "INCONCLUSIVE"]  # 0.04 > 0.05/2 after the first step
    with pytest.raises(ValueError):
        family_verdicts([0.1], [0.1, 0.2], [1], alpha=0.05, beta=0.1)


def test_slice_family_error_rates_by_simulation():
    """Five slices at the threshold: P(any false PASS claim) <= alpha; five at threshold + margin: P(any false
    FAIL) <= beta (betting gates' anytime p-values, Holm at each look; 400 runs: a quick check)."""
    rng = np.random.default_rng(1)
    gate = BettingGate(0.80, 0.05, 0.05, 0.10, fail_share=1.0)
    runs, k, n, batch = 400, 5, 1500, 100
    for mean, bad, bound in ((0.80, "PASS", 0.05), (0.85, "FAIL", 0.10)):
        hits = 0
        x = (rng.random((runs, k, n)) < mean).astype(float)
        lp, lf = gate.paths(x)
        run_max_p = np.maximum.accumulate(lp, axis=-1)
        run_max_f = np.maximum.accumulate(lf, axis=-1)
        for r in range(runs):
            for look in range(batch, n + 1, batch):
                pp = np.minimum(1, np.exp(-run_max_p[r, :, look - 1]))
                pf = np.minimum(1, np.exp(-run_max_f[r, :, look - 1]))
                if bad in family_verdicts(pp, pf, [look] * k, alpha=0.05, beta=0.10):
                    hits += 1
                    break
        assert hits / runs <= bound + 2 * math.sqrt(bound * (1 - bound) / runs), (mean, hits)


def test_allocate_equal_proportional_and_water_filling():
    assert allocate([1000, 1000, 1000], 900).tolist() == [300, 300, 300]
    assert allocate([100, 1000, 1000], 900).tolist() == [100, 400, 400]  # the small slice's share moves on
    assert allocate([100, 300, 600], 500, policy="proportional").tolist() == [50, 150, 300]
    assert allocate([50, 5000], 1000, min_per_slice=200, policy="proportional").tolist() == [50, 950]
    a = allocate([7, 7, 7], 10)
    assert a.sum() == 10 and a.max() - a.min() <= 1
    assert allocate([10, 20], 1000).tolist() == [10, 20]  # never more than a slice has
    with pytest.raises(ValueError):
        allocate([10], 5, policy="neyman")


def test_stratified_order_interleaves_by_quota():
    rng = np.random.default_rng(2)
    slices = rng.choice(["de", "fr", "it"], size=3000, p=[0.7, 0.2, 0.1])
    quotas = {"de": 300, "fr": 300, "it": 300}
    order = stratified_order(slices, quotas, seed=5)
    assert len(order) == 900 and len(set(order.tolist())) == 900
    for prefix in (10, 57, 300, 899):
        counts = {s: int(np.sum(slices[order[:prefix]] == s)) for s in quotas}
        assert all(abs(c - prefix / 3) <= 1 for c in counts.values()), (prefix, counts)
    assert stratified_order(slices, quotas, seed=5).tolist() == order.tolist()  # reproducible
    assert stratified_order(slices, quotas, seed=6).tolist() != order.tolist()
    # a quota above a slice's size is cut to the size, and the others keep their share of the prefix
    small = stratified_order(slices, {"de": 100, "it": 10_000}, seed=1)
    assert int(np.sum(slices[small] == "it")) == int(np.sum(slices == "it")) and int(np.sum(slices[small] == "de")) == 100
    full = stratified_order(slices)
    assert sorted(full.tolist()) == list(range(3000))
