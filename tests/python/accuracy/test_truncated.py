"""The truncated SPRT: its exact operating characteristic against brute force and an independent recursion,
Wald's published approximations, and the design's promises on the examples' gate."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mlci.accuracy.stats import fixed_n
from mlci.accuracy.stats.sprt import Sprt
from mlci.accuracy.stats.truncated import TruncatedSprt, look_schedule, operating_characteristic

GATE = (0.90, 0.92, 0.05, 0.10)  # examples/digits smoke: min 0.90, margin 0.02, alpha 0.05, beta 0.10


def _brute_force(looks: np.ndarray, r: np.ndarray, a: np.ndarray, p: float) -> tuple[float, float, float]:
    """Every 0/1 path of length N, weighted by its probability: independent of the DP."""
    n_max = int(looks[-1])
    pp = pf = en = 0.0
    for path in itertools.product((0, 1), repeat=n_max):
        cum = np.cumsum(path)
        w = p ** cum[-1] * (1 - p) ** (n_max - cum[-1])
        for n, rj, aj in zip(looks, r, a, strict=True):
            k = cum[n - 1]
            if k >= rj:
                pp += w
                en += w * n
                break
            if k <= aj:
                pf += w
                en += w * n
                break
        else:
            en += w * n_max
    return pp, pf, en


def _per_trial(looks: np.ndarray, r: np.ndarray, a: np.ndarray, p: float) -> tuple[float, float, float]:
    """A second exact method: a Markov chain stepped one Bernoulli trial at a time."""
    n_max = int(looks[-1])
    f = np.zeros(n_max + 1)
    f[0] = 1.0
    cut = dict(zip(looks.tolist(), zip(r.tolist(), a.tolist(), strict=True), strict=True))
    pp = pf = en = 0.0
    for n in range(1, n_max + 1):
        f[1:] = f[1:] * (1 - p) + f[:-1] * p
        f[0] *= 1 - p
        if n in cut:
            rj, aj = cut[n]
            k = np.arange(n_max + 1)
            up, down = f[k >= rj].sum(), f[k <= aj].sum()
            pp, pf, en = pp + up, pf + down, en + (up + down) * n
            f[(k >= rj) | (k <= aj)] = 0.0
    return pp, pf, en + f.sum() * n_max


def test_dynamic_programming_matches_brute_force_and_a_per_trial_chain():
    looks = np.array([3, 6, 9, 12])
    r, a = np.array([3, 5, 7, 8]), np.array([-1, 1, 4, 7])
    for p in (0.3, 0.6, 0.85):
        dp = operating_characteristic(looks, r, a, [p])
        exact = _brute_force(looks, r, a, p)
        assert [float(x[0]) for x in dp] == pytest.approx(exact, rel=1e-10)
        assert sum(exact[:2]) == pytest.approx(1.0)  # the last cuts meet: every path is decided
    # a larger, realistic schedule against the per-trial chain (irregular last batch included)
    t = TruncatedSprt(*GATE)
    looks = np.append(np.arange(50, 1000, 50), 1013)
    a, r = t.boundaries(looks)
    a[-1] = r[-1] - 1
    for p in (0.89, 0.91, 0.93):
        dp = operating_characteristic(looks, r, a, [p])
        assert [float(x[0]) for x in dp] == pytest.approx(_per_trial(looks, r, a, p), rel=1e-9)


def test_a_single_look_is_the_exact_binomial_test():
    plan = fixed_n.exact_n(*GATE)
    pp, pf, en = operating_characteristic(np.array([plan.n]), np.array([plan.critical]), np.array([plan.critical - 1]),
                                          [0.90, 0.92])
    assert pp == pytest.approx([plan.size, plan.power], rel=1e-10)
    assert pp + pf == pytest.approx([1.0, 1.0]) and en == pytest.approx([plan.n, plan.n])


def test_open_sprt_against_walds_published_approximations():
    """Wald (1947): with thresholds log((1-beta)/alpha), log(beta/(1-alpha)) the errors satisfy
    alpha' <= alpha / (1 - beta), beta' <= beta / (1 - alpha), and the ASN at p0 is approximately
    ((1 - alpha) log B + alpha log A) / E_p0[z] (exact ASN is larger by the overshoot)."""
    p0, p1, alpha, beta = 0.5, 0.7, 0.05, 0.10
    big_a, big_b = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    s, f = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    looks = np.arange(1, 2001)
    r = np.ceil((big_a - looks * f) / (s - f)).astype(int)
    a = np.floor((big_b - looks * f) / (s - f)).astype(int)
    pp, pf, en = operating_characteristic(looks, r, a, [p0, p1])
    assert pp[0] <= alpha / (1 - beta) and pf[1] <= beta / (1 - alpha)
    assert pp.sum() + pf.sum() == pytest.approx(2.0, abs=1e-9)  # the open SPRT ends with probability one
    wald_asn0 = ((1 - alpha) * big_b + alpha * big_a) / (p0 * s + (1 - p0) * f)
    wald_asn1 = ((1 - beta) * big_a + beta * big_b) / (p1 * s + (1 - p1) * f)
    assert wald_asn0 <= en[0] <= 1.25 * wald_asn0
    assert wald_asn1 <= en[1] <= 1.25 * wald_asn1


def test_the_design_holds_alpha_beta_exactly_and_its_promises_on_the_examples_gate():
    t = TruncatedSprt(*GATE)
    d = t.design
    fx = fixed_n.exact_n(*GATE).n
    assert d.fixed_n == fx == 1760 and d.max_n == 2650 and d.max_n % 50 == 0
    pp, pf, _ = t.operating_characteristic([0.90, 0.92])
    assert pp[0] <= 0.05 and pf[1] <= 0.10
    assert pp[0] > 0.049 and pf[1] > 0.099  # not conservative: the thresholds are calibrated exactly
    grid = np.linspace(0.85, 0.97, 61)
    pp, pf, en = t.operating_characteristic(grid)
    assert np.allclose(pp + pf, 1.0)  # closed: no INCONCLUSIVE at any p
    assert en.max() <= fx  # expected samples below the exact fixed n at every true value
    assert np.all(np.diff(pp) >= -1e-12)  # P(PASS) rises with p: alpha / beta bound the whole null / alternative
    _, _, ext = t.operating_characteristic([0.88, 0.94])
    assert np.all(ext <= 0.30 * fx)  # >= 70% savings at min - margin and min + 2 margin
    # the old open SPRT's worst case is above the fixed n (the complaint), this one is far below
    assert en.max() < 0.8 * fx


def test_decide_is_the_design_and_simulation_agrees_with_the_exact_oc():
    t = TruncatedSprt(*GATE)
    looks = t.design.looks
    a, r = t.boundaries(looks)
    assert t.decide(int(r[0]), int(looks[0])) == "PASS" and t.decide(int(a[-1]), int(looks[-1])) == "FAIL"
    assert t.decide(int(r[3]) - 1, int(looks[3])) is None and t.decide(0, 0) is None
    # past the maximum every count is decided
    assert all(t.decide(k, t.design.max_n + 10) in ("PASS", "FAIL") for k in range(2400, 2660))
    rng = np.random.default_rng(7)
    runs, p = 3000, 0.91
    k = np.cumsum(rng.random((runs, looks[-1])) < p, axis=1)[:, looks - 1]
    up, down = k >= r, k <= a
    first = np.argmax(up | down, axis=1)
    passed = up[np.arange(runs), first]
    exact = float(t.operating_characteristic([p])[0][0])
    assert abs(passed.mean() - exact) <= 3 * math.sqrt(exact * (1 - exact) / runs)
    # and decide() reproduces the vectorised rule on a few paths
    for row in range(20):
        verdicts = [t.decide(int(k[row, j]), int(n)) for j, n in enumerate(looks)]
        firsts = next(v for v in verdicts if v)
        assert firsts == ("PASS" if passed[row] else "FAIL")


def test_drop_in_for_sprt_and_a_capped_maximum():
    sprt, trunc = Sprt(*GATE), TruncatedSprt(*GATE)
    assert trunc.llr(1800, 2000) == pytest.approx(sprt.llr(1800, 2000))
    capped = TruncatedSprt(*GATE, batch=50, max_n=2000)
    assert capped.design.max_n == 2000
    pp, pf, en = capped.operating_characteristic([0.90, 0.92, 0.91])
    assert pp[0] <= 0.05 and pf[1] <= 0.10 and en.max() <= 1760
    with pytest.raises(ValueError, match="below the exact fixed n"):
        TruncatedSprt(*GATE, max_n=1500).design  # noqa: B018
    with pytest.raises(ValueError, match="no closed design"):  # too close to the fixed n: the caller uses fixed n
        TruncatedSprt(*GATE, max_n=1800).design  # noqa: B018
    assert look_schedule(50, 120).tolist() == [50, 100, 120]
