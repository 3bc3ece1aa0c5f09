"""Change gates for any metric: the paired bootstrap against independent implementations (scikit-learn's
AUC, scipy's paired t interval), margins, the plan, and quick simulated error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ttest_rel
from sklearn.metrics import roc_auc_score

from mlci.accuracy import metrics
from mlci.accuracy.stats.paired import (
    ChangeMargin,
    auc,
    betting_change_gate,
    contrasts,
    paired_change_test,
    paired_scores,
    planned_n,
)


def test_vectorised_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.normal(size=300) + y, 1)  # rounding makes ties
    assert float(auc(y, s)) == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert float(auc(y, s)) == pytest.approx(metrics.auc(y, s), rel=1e-12)
    idx = rng.integers(0, 300, (5, 300))
    batch = auc(y[idx], s[idx], axis=-1)
    assert batch == pytest.approx([roc_auc_score(y[i], s[i]) for i in idx], rel=1e-12)
    assert math.isnan(float(auc(np.zeros(5, bool), np.arange(5.0))))


def test_contrasts_follow_the_margin_conventions():
    m = ChangeMargin(absolute=0.02, relative=0.05)
    # higher is better: cand 0.79 vs base 0.80 is within 0.02 and within 5% (0.04)
    assert contrasts(np.float64(0.79), np.float64(0.80), m, True) == pytest.approx([0.01, 0.03, -0.01])
    # lower is better (MAE): cand 1.05 vs base 1.0 is 0.05 worse: outside 0.02, inside 5%
    assert contrasts(np.float64(1.05), np.float64(1.0), m, False) == pytest.approx([-0.03, 0.0, -0.05])
    # a negative margin asks for an improvement, as MLflow's min_absolute_change does
    assert contrasts(np.float64(0.81), np.float64(0.80), ChangeMargin(absolute=-0.02), True)[0] == pytest.approx(-0.01)
    with pytest.raises(ValueError):
        ChangeMargin()


def test_bootstrap_bounds_agree_with_the_paired_t_interval_on_a_mean():
    """For a mean (MAE) the paired BCa bound and the t-based bound of ttest_rel estimate the same quantity."""
    rng = np.random.default_rng(1)
    n = 800
    y = rng.normal(size=n)
    base = y + rng.normal(scale=0.5, size=n)
    cand = y + rng.normal(scale=0.48, size=n)
    res = paired_change_test((y, cand), (y, base), metrics.mae, higher_better=False, margin=ChangeMargin(absolute=0.03),
                             alpha=0.05, beta=0.10, seed=3)
    ae_c, ae_b = np.abs(y - cand), np.abs(y - base)
    t_low = ttest_rel(ae_b + 0.03, ae_c, alternative="greater").confidence_interval(0.95).low
    assert res.lower[0] == pytest.approx(t_low, abs=0.15 * res.diff_se * 1.645 + 1e-4)
    t_up = ttest_rel(ae_b, ae_c, alternative="less").confidence_interval(0.90).high
    assert res.diff_upper == pytest.approx(t_up, abs=0.15 * res.diff_se * 1.282 + 1e-4)
    assert res.diff_se == pytest.approx(np.std(ae_b - ae_c, ddof=1) / math.sqrt(n), rel=0.1)


def test_verdicts_for_auc_f1_rmse_and_latency():
    rng = np.random.default_rng(2)
    n = 1500
    y = rng.random(n) < 0.4
    base = rng.normal(size=n) + 1.2 * y
    same = base + rng.normal(scale=0.05, size=n)
    worse = base + rng.normal(scale=1.5, size=n)
    kw = dict(higher_better=True, alpha=0.05, beta=0.10, n_resamples=1000)
    assert paired_change_test((y, same), (y, base), auc, margin=ChangeMargin(absolute=0.02), **kw).verdict == "PASS"
    assert paired_change_test((y, worse), (y, base), auc, margin=ChangeMargin(absolute=0.02), **kw).verdict == "FAIL"
    labels = rng.integers(0, 3, n)
    pred_b = np.where(rng.random(n) < 0.8, labels, rng.integers(0, 3, n))
    pred_c = np.where(rng.random(n) < 0.6, labels, rng.integers(0, 3, n))
    f1 = lambda a, b, axis=-1: metrics.macro_f1(a, b, axis, classes=[0, 1, 2])  # noqa: E731
    r = paired_change_test((labels, pred_c), (labels, pred_b), f1, margin=ChangeMargin(relative=0.05), **kw)
    assert r.verdict == "FAIL" and r.difference < -0.1
    yt = rng.normal(size=n)
    p_b = yt + rng.normal(scale=0.5, size=n)
    r = paired_change_test((yt, p_b + rng.normal(scale=0.01, size=n)), (yt, p_b), metrics.rmse, higher_better=False,
                           margin=ChangeMargin(relative=0.02), alpha=0.05, beta=0.10)
    assert r.verdict == "PASS" and r.planned_n is not None and r.planned_n < n
    lat_b = rng.lognormal(3, 0.3, n)
    p95 = lambda x, axis=-1: np.percentile(x, 95, axis=axis)  # noqa: E731
    r = paired_change_test((lat_b * 1.5,), (lat_b,), p95, higher_better=False, margin=ChangeMargin(relative=0.10),
                           alpha=0.05, beta=0.10)
    assert r.verdict == "FAIL" and r.candidate > r.baseline
    tiny = paired_change_test((y[:2], same[:2]), (y[:2], base[:2]), auc, margin=ChangeMargin(absolute=0.02), **kw)
    assert tiny.verdict == "INCONCLUSIVE"


def test_planned_n_scales_with_the_standard_error():
    assert planned_n(0.01, 1000, 0.02, 0.05, 0.10) == math.ceil(1000 * ((1.6448536 + 1.2815516) * 0.5) ** 2)
    assert planned_n(0.01, 1000, 0.0, 0.05, 0.10) is None


def test_mae_change_gate_error_rates_by_simulation():
    """False PASS at the margin <= alpha, false FAIL at no change <= beta (150 runs each, 3 standard errors:
    a quick check that catches a wrong side or level; the bootstrap's levels are asymptotic, and
    tests/benchmarks/bench_gates.py measures them with 2,000 runs per point)."""
    rng = np.random.default_rng(4)
    runs, n, margin = 150, 250, 0.05
    outcomes = {"margin": [], "equal": []}
    for case, shift in (("margin", margin), ("equal", 0.0)):
        for _ in range(runs):
            y = rng.normal(size=n)
            ae_b = np.abs(rng.normal(scale=0.8, size=n))
            ae_c = np.abs(rng.normal(scale=0.8, size=n)) + shift  # per-sample errors: MAE of the candidate + shift
            r = paired_change_test((ae_c, 0 * y), (ae_b, 0 * y), metrics.mae, higher_better=False,
                                   margin=ChangeMargin(absolute=margin), alpha=0.05, beta=0.10, n_resamples=400,
                                   seed=int(rng.integers(1 << 30)))
            outcomes[case].append(r.verdict)
    se = lambda b: 3 * math.sqrt(b * (1 - b) / runs)  # noqa: E731
    assert outcomes["margin"].count("PASS") / runs <= 0.05 + se(0.05)
    assert outcomes["equal"].count("FAIL") / runs <= 0.10 + se(0.10)


def test_betting_change_gate_on_paired_correctness():
    rng = np.random.default_rng(5)
    n = 6000
    base = (rng.random(n) < 0.9).astype(float)
    redraw = (rng.random(n) < 0.9).astype(float)
    equal = np.where(rng.random(n) < 0.3, redraw, base)  # ~5% discordant pairs, no change on average
    gate = betting_change_gate(0.03, 0.05, 0.10)
    assert gate.decide(paired_scores(equal, base)) == "PASS"
    worse = np.where(rng.random(n) < 0.08, 0.0, base)  # 7 points worse
    assert gate.decide(paired_scores(worse, base)) == "FAIL"
    with pytest.raises(ValueError):
        betting_change_gate(0.0, 0.05, 0.10)
