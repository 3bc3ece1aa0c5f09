"""The statistics against an independent implementation (statsmodels), published values, and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import binom_test as sm_binom_test
from statsmodels.stats.proportion import binom_test_reject_interval, proportion_confint

from mlci.accuracy.stats import fixed_n, mcnemar, proportion
from mlci.accuracy.stats.sprt import Sprt, run_on_prefix


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (7, 20), (81, 263), (950, 1000), (1000, 1000)])
@pytest.mark.parametrize("method,sm_method", [("exact", "beta"), ("wilson", "wilson")])
def test_intervals_match_statsmodels(k, n, method, sm_method):
    lo, hi = proportion.interval(k, n, 0.95, method)
    slo, shi = proportion_confint(k, n, alpha=0.05, method=sm_method)
    assert lo == pytest.approx(slo, abs=1e-7) and hi == pytest.approx(shi, abs=1e-7)


def test_intervals_match_published_values():
    # Newcombe (1998), Stat Med 17:857, example 81/263: Wilson 0.2553-0.3662, Clopper-Pearson 0.2527-0.3676.
    assert proportion.interval(81, 263, 0.95, "wilson") == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert proportion.interval(81, 263, 0.95, "exact") == pytest.approx((0.2527, 0.3676), abs=5e-5)
    # 0 of 10: the exact upper bound is 1 - 0.025^(1/10) = 0.3085 (the "rule of three" regime).
    assert proportion.interval(0, 10, 0.95, "exact")[1] == pytest.approx(1 - 0.025 ** 0.1, abs=1e-9)


@pytest.mark.parametrize("k,n,p0", [(90, 100, 0.85), (1605, 1760, 0.9), (5, 10, 0.3), (0, 5, 0.2)])
def test_binomial_pvalue_matches_statsmodels(k, n, p0):
    assert proportion.pvalue_greater(k, n, p0) == pytest.approx(sm_binom_test(k, n, p0, alternative="larger"), rel=1e-9)


@pytest.mark.parametrize("p0,p1,alpha,beta", [(0.9, 0.92, 0.05, 0.1), (0.8, 0.85, 0.05, 0.2), (0.5, 0.7, 0.05, 0.1),
                                               (0.95, 0.97, 0.01, 0.05)])
def test_exact_n_is_the_smallest_n_meeting_alpha_and_beta(p0, p1, alpha, beta):
    plan = fixed_n.exact_n(p0, p1, alpha, beta)
    assert plan.size <= alpha and plan.power >= 1 - beta

    def works(n: int) -> bool:
        # statsmodels' rejection region for the one-sided exact test, then its power at p1
        _, upp = binom_test_reject_interval(p0, n, alpha=alpha, alternative="larger")
        c = int(math.floor(upp)) + 1 if upp != math.floor(upp) else int(upp)
        c = max(c, int(binom.isf(alpha, n, p0)) + 1)  # guard statsmodels' float edge
        return binom.sf(c - 1, n, p1) >= 1 - beta and binom.sf(c - 1, n, p0) <= alpha

    assert works(plan.n)
    assert not any(works(n) for n in range(max(1, plan.n - 400), plan.n))
    # the critical count agrees with statsmodels' exact rejection region
    _, upp = binom_test_reject_interval(p0, plan.n, alpha=alpha, alternative="larger")
    assert plan.critical == pytest.approx(upp, abs=1)


def test_exact_binomial_closed_form_values_and_sawtooth():
    # 10 fair coin flips: P(X >= 9) = 11/1024, P(X >= 8) = 56/1024, so the level-0.011 test rejects at >= 9.
    assert proportion.pvalue_greater(9, 10, 0.5) == pytest.approx(11 / 1024, rel=1e-12)
    assert fixed_n.critical_count(10, 0.5, 0.011) == 9
    assert fixed_n.decide(9, 10, 0.5, 0.011) == "PASS" and fixed_n.decide(8, 10, 0.5, 0.011) == "FAIL"
    plan = fixed_n.exact_n(0.5, 0.7, 0.05, 0.10)
    assert plan.n < fixed_n.normal_n(0.5, 0.7, 0.05, 0.10) + 10
    # sawtooth: some n larger than the minimum does NOT reach the power, so the search must scan every n
    ns = np.arange(plan.n, plan.n + 30)
    crit = fixed_n.critical_count(ns, 0.5, 0.05)
    assert (binom.sf(crit - 1, ns, 0.7) < 0.9).any()


def test_sprt_error_rates_by_simulation():
    """Ville-exact thresholds: false PASS <= alpha at p = min, false FAIL <= beta at min + margin (800 runs each)."""
    rng = np.random.default_rng(1)
    test = Sprt(0.9, 0.92, 0.05, 0.10)
    looks = np.arange(50, 20001, 50)
    for p, bad, bound in ((0.90, "PASS", 0.05), (0.92, "FAIL", 0.10)):
        verdicts = [run_on_prefix(test, rng.random(20000) < p, looks)[0] for _ in range(800)]
        rate = verdicts.count(bad) / len(verdicts)
        se = math.sqrt(bound * (1 - bound) / len(verdicts))
        assert rate <= bound + 2 * se, (p, rate)
    # far from the thresholds it stops much earlier than the fixed n
    used = [run_on_prefix(test, rng.random(20000) < 0.94, looks)[1] for _ in range(200)]
    assert np.mean(used) < 0.6 * fixed_n.exact_n(0.9, 0.92, 0.05, 0.10).n


def test_confidence_sequence_is_anytime_valid_and_contains_the_mle():
    rng = np.random.default_rng(2)
    p, alpha, misses = 0.8, 0.1, 0
    for _ in range(150):
        x = np.cumsum(rng.random(2000) < p)
        if any(not (lo <= p <= hi) for n in (20, 100, 500, 2000)
               for lo, hi in [proportion.confidence_sequence(int(x[n - 1]), n, alpha)]):
            misses += 1
    assert misses / 150 <= alpha
    lo, hi = proportion.confidence_sequence(30, 100, 0.05)
    assert lo < 0.3 < hi
    # wider than the fixed-n interval (the price of peeking)
    clo, chi = proportion.interval(30, 100, 0.95)
    assert lo < clo and hi > chi


def test_mcnemar_matches_statsmodels_exact_at_zero_margin():
    # table: rows candidate right/wrong, cols baseline right/wrong; wins = [0][1], losses = [1][0]
    for wins, losses in ((10, 3), (4, 9), (25, 25), (0, 7)):
        table = [[50, wins], [losses, 30]]
        two_sided = sm_mcnemar(table, exact=True).pvalue
        m = wins + losses
        one_sided = proportion.pvalue_greater(wins, m, 0.5)
        other = proportion.pvalue_greater(losses, m, 0.5)
        assert min(1.0, 2 * min(one_sided, other)) == pytest.approx(two_sided, rel=1e-9)


def test_mcnemar_noninferiority_error_rates_by_simulation():
    rng = np.random.default_rng(3)
    n, margin, alpha = 1500, 0.02, 0.05
    # H0 boundary: candidate 2 points worse (discordance 10%: 4% wins, 6% losses) -> PASS rate <= alpha
    passes = 0
    for _ in range(300):
        u = rng.random(n)
        wins, losses = int(np.sum(u < 0.04)), int(np.sum((u >= 0.04) & (u < 0.10)))
        passes += mcnemar.fixed_test(n, wins, losses, margin, alpha).verdict == "PASS"
    assert passes / 300 <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / 300)
    # sequential version: equal models (5% / 5% discordance each way) pass, and rarely fail (<= beta)
    verdicts = [_seq_mcnemar(rng, 0.05, 0.05, margin, alpha) for _ in range(30)]
    assert verdicts.count("FAIL") / 30 <= 0.1 + 2 * math.sqrt(0.09 / 30)
    assert verdicts.count("PASS") >= 24
    # ... and a candidate at the margin (4% wins, 6% losses) rarely passes (<= alpha)
    verdicts = [_seq_mcnemar(rng, 0.04, 0.06, margin, alpha) for _ in range(30)]
    assert verdicts.count("PASS") / 30 <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / 30)


def _seq_mcnemar(rng: np.random.Generator, win: float, loss: float, margin: float, alpha: float, n: int = 8000) -> str:
    u = rng.random(n)
    cand, base = np.ones(n, bool), np.ones(n, bool)
    base[u < win] = False
    cand[(u >= win) & (u < win + loss)] = False
    test = mcnemar.SequentialMcNemar(margin, alpha, 0.1)
    for lo in range(0, n, 50):
        verdict = test.update(cand[lo:lo + 50], base[lo:lo + 50])
        if verdict:
            return verdict
    return "INCONCLUSIVE"


def test_identical_predictions_pass_the_change_gate():
    assert mcnemar.fixed_test(3000, 0, 0, 0.02, 0.05).verdict == "PASS"
