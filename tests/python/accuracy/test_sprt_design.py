"""The exact truncated operating characteristic and the SPRT's own bounds, against simulation (an independent
implementation: stats/sprt.run_on_prefix on simulated outcomes) and against the test's decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from mlci.accuracy import metrics
from mlci.accuracy.stats.sprt import Sprt, run_on_prefix
from mlci.accuracy.stats.sprt_design import cuts, fail_bound, looks_for, needed_cap, oc_at_cap, pass_bound


@pytest.mark.parametrize("p0,margin,cap,batch,p", [
    (0.90, 0.02, 3000, 50, 0.92),   # digits' smoke before: P(PASS) 0.895 < 0.9 at the 3000 cap
    (0.90, 0.02, 3000, 50, 0.90),   # at the threshold: false PASS <= alpha
    (0.80, 0.05, 500, 20, 0.83),    # in between
    (0.95, 0.02, 2000, 64, 0.97),
])
def test_oc_at_the_cap_matches_simulation(p0, margin, cap, batch, p):
    test = Sprt(p0, p0 + margin, 0.05, 0.1)
    looks = looks_for(cap, batch)
    exact_pass, exact_fail = oc_at_cap(test, looks, p)
    rng = np.random.default_rng(7)
    runs = 6000
    verdicts = [run_on_prefix(test, (rng.random(cap) < p).astype(np.int8), looks)[0] for _ in range(runs)]
    for verdict, exact in (("PASS", exact_pass), ("FAIL", exact_fail)):
        seen = verdicts.count(verdict)
        lo, hi = binom.ppf([0.0005, 0.9995], runs, exact)  # 99.9% band of the simulated count around the exact value
        assert lo <= seen <= hi, (verdict, seen / runs, exact)


def test_oc_at_one_look_is_the_binomial_tail_and_cuts_match_the_sprt():
    """One look at n: PASS exactly when k reaches the smallest k with LLR >= log(1/alpha)."""
    test = Sprt(0.9, 0.92, 0.05, 0.1)
    n = 1000
    k = np.arange(n + 1)
    k_pass = int(k[test.llr(k, n) >= test.upper][0])
    k_fail = int(k[test.llr(k, n) <= test.lower][-1])
    assert [c.tolist() for c in cuts(test, np.array([n]))] == [[k_pass], [k_fail]]
    p_pass, p_fail = oc_at_cap(test, np.array([n]), 0.92)
    assert p_pass == pytest.approx(binom.sf(k_pass - 1, n, 0.92), rel=1e-9)
    assert p_fail == pytest.approx(binom.cdf(k_fail, n, 0.92), rel=1e-9)
    for m in range(1, 400):  # the cuts are Sprt.decide's borders at every trial count
        r, a = (int(c[0]) for c in cuts(test, np.array([m])))
        assert test.decide(r, m) == "PASS" and (r == 0 or test.decide(r - 1, m) != "PASS")
        assert a < 0 or (test.decide(a, m) == "FAIL" and test.decide(a + 1, m) != "FAIL")


def test_needed_cap_is_the_first_look_that_delivers_beta():
    test = Sprt(0.9, 0.92, 0.05, 0.1)
    looks = looks_for(6471, 50)
    need = needed_cap(test, looks, 0.92, 0.9)
    assert need == 3150  # digits' smoke: the 3000 cap delivered 0.895
    assert oc_at_cap(test, looks_for(need, 50), 0.92)[0] >= 0.9 > oc_at_cap(test, looks_for(need - 50, 50), 0.92)[0]
    assert needed_cap(Sprt(0.9, 0.903, 0.05, 0.1), looks, 0.903, 0.9) is None  # no cap within the dataset


def test_per_class_looks_scale_with_the_share():
    assert looks_for(250, 100).tolist() == [100, 200, 250]
    assert looks_for(250, 100, share=0.1).tolist() == [10, 20, 25]


@pytest.mark.parametrize("p0,margin,alpha,beta", [(0.9, 0.02, 0.05, 0.1), (0.8, 0.05, 0.01, 0.2), (0.5, 0.1, 0.05, 0.05)])
def test_bounds_agree_with_the_sprt_verdict_exactly(p0, margin, alpha, beta):
    """PASS iff the lower bound clears min; FAIL iff the upper bound is at most min + margin; for every (k, n)."""
    test = Sprt(p0, p0 + margin, alpha, beta)
    for n in (50, 200, 1000, 3000):
        for k in range(0, n + 1, max(1, n // 400)):
            verdict = test.decide(k, n)
            lo, hi = pass_bound(k, n, margin, alpha), fail_bound(k, n, margin, beta)
            assert (verdict == "PASS") == (lo >= p0 - 1e-9), (k, n, lo)
            assert (verdict == "FAIL") == (hi <= p0 + margin + 1e-9), (k, n, hi)


def test_bounds_cover_at_their_levels_at_the_stopping_time():
    """Simulated at the true p, for SPRTs indexed by another min: the (1 - alpha) lower bound and the (1 - beta)
    upper bound read at the data-dependent stop miss p no more often than alpha and beta."""
    rng = np.random.default_rng(3)
    margin, alpha, beta, p = 0.03, 0.05, 0.1, 0.9
    test = Sprt(0.88, 0.91, alpha, beta)
    looks = looks_for(4000, 50)
    miss_lo = miss_hi = 0
    runs = 3000
    for _ in range(runs):
        outcomes = (rng.random(4000) < p).astype(np.int8)
        _, used = run_on_prefix(test, outcomes, looks)
        k = int(outcomes[:used].sum())
        miss_lo += pass_bound(k, used, margin, alpha) > p
        miss_hi += fail_bound(k, used, margin, beta) < p
    assert miss_lo / runs <= alpha and miss_hi / runs <= beta, (miss_lo / runs, miss_hi / runs)


def test_auc_matches_scikit_learn_binary_multiclass_and_vectorised():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=400) + y, 1)  # ties
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s))
    idx = rng.integers(0, 400, (5, 400))
    assert np.allclose(metrics.auc(y[idx], s[idx]), [roc_auc_score(y[i], s[i]) for i in idx])
    yk = rng.integers(0, 4, 600)
    p = rng.dirichlet(np.ones(4), 600)
    p[np.arange(600), yk] += 0.4
    p /= p.sum(axis=1, keepdims=True)
    assert metrics.auc_ovr(yk, p, [0, 1, 2, 3]) == pytest.approx(roc_auc_score(yk, p, multi_class="ovr"))
    # a sample counted wrong ranks last for its class: +-inf scores are ranks like any other
    s2 = s.copy()
    s2[np.flatnonzero(y == 1)[0]] = -math.inf
    s3 = s.copy()
    s3[np.flatnonzero(y == 1)[0]] = s.min() - 1
    assert metrics.auc(y, s2) == pytest.approx(roc_auc_score(y, s3))
