"""The betting gate for bounded scores against the paper authors' implementation (confseq), exact
likelihood-ratio identities, and simulated error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from mlci.accuracy.stats import betting
from mlci.accuracy.stats.betting import BettingGate


@pytest.fixture(scope="module")
def confseq():
    """confseq 0.0.11 (Howard, Waudby-Smith, Ramdas), built by tests/infra/up; it still spells numpy's float64
    `np.float_` (removed in numpy 2), so the alias is restored for its import."""
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    from confseq import betting as cs_betting
    from confseq import betting_strategies

    return cs_betting, betting_strategies


def _scores(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.beta(8, 2, n // 2), (rng.random(n - n // 2) < 0.85).astype(float)])


def test_bets_and_capital_match_confseq(confseq):
    cs_betting, strategies = confseq
    x = _scores(1, 600)
    for alpha in (0.05, 0.1):
        assert betting.prpl_bets(x, alpha) == pytest.approx(strategies.lambda_predmix_eb(x, alpha=alpha), rel=1e-12)
    for m in (0.6, 0.8, 0.9):
        for name, ours, fn in (
            ("prpl", betting.prpl_bets(x, 0.05), lambda y, _m: strategies.lambda_predmix_eb(y, alpha=0.05)),
            ("design", betting.design_bets(x, 0.02), lambda y, _m: betting.design_bets(y, 0.02)),
        ):
            ref_plus = cs_betting.betting_mart(x, m, alpha=0.05, lambdas_fn_positive=fn, theta=1, trunc_scale=0.5)
            ref_minus = cs_betting.betting_mart(x, m, alpha=0.05, lambdas_fn_negative=fn, theta=0, trunc_scale=0.5)
            assert np.exp(betting.log_capital(x, m, ours, +1)) == pytest.approx(ref_plus, rel=1e-10), (name, m)
            assert np.exp(betting.log_capital(x, m, ours, -1)) == pytest.approx(ref_minus, rel=1e-10), (name, m)


def test_hedged_confidence_sequence_matches_confseq(confseq):
    cs_betting, _ = confseq
    x = _scores(2, 500)
    breaks = 2000
    for running in (False, True):
        lo, hi = cs_betting.hedged_cs(x, alpha=0.05, breaks=breaks, running_intersection=running)
        for t in (30, 120, 500):
            ours = betting.hedged_cs(x[:t], 0.05, running=running)
            # confseq reads the bounds off a grid of step 1/breaks and widens each by one step
            assert lo[t - 1] <= ours[0] <= lo[t - 1] + 2 / breaks
            assert hi[t - 1] - 2 / breaks <= ours[1] <= hi[t - 1]


def test_constant_bet_on_zero_one_scores_is_the_likelihood_ratio():
    """For 0/1 scores the bet (p1 - p0) / (p0 (1 - p0)) turns the capital into Binom(k; n, p1) / Binom(k; n, p0)."""
    p0, p1 = 0.9, 0.92
    x = (np.random.default_rng(3).random(400) < 0.91).astype(float)
    lam = np.full(x.size, (p1 - p0) / (p0 * (1 - p0)))
    logk = betting.log_capital(x, p0, lam, +1, truncation=1.0)
    k, n = np.cumsum(x), np.arange(1, x.size + 1)
    assert logk == pytest.approx(binom.logpmf(k, n, p1) - binom.logpmf(k, n, p0), rel=1e-9, abs=1e-9)


def test_verdicts_bounds_and_pvalues_agree():
    gate = BettingGate(0.80, 0.05, 0.05, 0.10)
    rng = np.random.default_rng(4)
    good = np.clip(rng.beta(9, 1, 3000), 0, 1)  # mean 0.9
    bad = np.clip(rng.beta(7, 3, 3000), 0, 1)  # mean 0.7
    v = gate.evaluate(good)
    assert v.verdict == "PASS" and v.at < 400
    lo, hi = gate.interval(good[:v.at])
    assert lo >= 0.80 and hi > lo
    assert gate.interval(good[:v.at - 1])[0] < 0.80  # the bound clears the threshold exactly when PASS is reached
    assert gate.interval(good[:v.at + 200])[0] >= 0.80  # and stays clear (running intersection)
    assert gate.pvalues(good[:v.at])[0] <= 0.05
    w = gate.evaluate(bad)
    assert w.verdict == "FAIL" and gate.interval(bad[:w.at])[1] <= 0.85
    assert gate.decide(good[:20]) is None  # too early for either test
    # lower is better: an error rate <= 0.2 with margin 0.05 is the same gate on 1 - x
    mirror = BettingGate(0.20, 0.05, 0.05, 0.10, direction="<=")
    assert mirror.evaluate(1 - good) == gate.evaluate(good)
    lo_m, hi_m = mirror.interval(1 - good[:v.at])
    assert (lo_m, hi_m) == pytest.approx((1 - gate.interval(good[:v.at])[1], 1 - lo))
    with pytest.raises(ValueError, match="within"):
        gate.decide([0.5, 1.2])


def test_simulated_error_rates_hold_at_any_stopping_time():
    """false PASS <= alpha at mean = threshold, false FAIL <= beta/2 at threshold + margin, on 0/1 and on
    continuous scores (1,000 runs each: a quick check; tests/benchmarks/bench_gates.py runs 2,000+)."""
    rng = np.random.default_rng(5)
    gate = BettingGate(0.90, 0.02, 0.05, 0.10)
    runs, n = 1000, 3000
    se = lambda b: 2 * math.sqrt(b * (1 - b) / runs)  # noqa: E731
    for law in ("bernoulli", "beta"):
        for mean, bad, bound in ((0.90, 1, 0.05), (0.92, -1, 0.05)):
            if law == "bernoulli":
                x = (rng.random((runs, n)) < mean).astype(float)
            else:
                x = rng.beta(mean * 20, (1 - mean) * 20, (runs, n))
            codes, used = gate.simulate(x, 50)
            assert np.mean(codes == bad) <= bound + se(bound), (law, mean)
    # continuous scores with less variance decide sooner than 0/1 scores with the same mean
    xb = (rng.random((300, n)) < 0.94).astype(float)
    xc = rng.beta(0.94 * 20, 0.06 * 20, (300, n))
    assert gate.simulate(xc, 50)[1].mean() < gate.simulate(xb, 50)[1].mean()


def test_plan_gives_the_samples_for_beta():
    p = betting.plan(0.80, 0.05, 0.05, 0.10, batch=50, cap=3000, runs=1000)
    assert p.needed is not None and p.needed % 50 == 0 and p.power_at_cap >= 0.9
    # an independent simulation (another seed) at the planned n: P(PASS) >= 1 - beta within Monte-Carlo error
    gate = BettingGate(0.80, 0.05, 0.05, 0.10)
    rng = np.random.default_rng(99)
    codes, _ = gate.simulate((rng.random((1500, p.needed)) < 0.85).astype(float), 50)
    assert np.mean(codes == 1) >= 0.9 - 2 * math.sqrt(0.09 / 1500)
    # ... and one batch earlier it falls short (needed is the smallest such look, up to Monte-Carlo error)
    codes, _ = gate.simulate((rng.random((1500, p.needed - 150)) < 0.85).astype(float), 50)
    assert np.mean(codes == 1) < 0.9 + 2 * math.sqrt(0.09 / 1500)
    assert betting.plan(0.80, 0.05, 0.05, 0.10, batch=50, cap=200, runs=500).needed is None
