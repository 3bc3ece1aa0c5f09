#!/usr/bin/env python
"""Grouped samples by Monte-Carlo: false PASS at the threshold when samples come in correlated groups
(augmented copies of one image, pages of one document), for the per-sample tests and the group-level ones.

    python tests/benchmarks/bench_groups.py [--runs 2000]

Outcomes: 0/1 correctness, beta-binomial within a group (each group's accuracy ~ Beta with mean p and
intra-class correlation ICC). Gate: accuracy min 0.90, margin 0.03, alpha 0.05, beta 0.10. Looks every 50
samples (the per-sample tests) or at every group boundary (the group ones: the worst case for a sequential test).

Rows: the exact binomial test at one fixed look and the per-sample SPRT (both count every row as independent:
what mlci does without `group:`), the cluster betting test (anytime-valid, what `group:` uses for proportion
gates) and the cluster BCa bootstrap bound at one look (what `group:` uses for F1/AUC/latency; here on accuracy
so it can be compared); B: the cluster bootstrap by the number of groups. Target: false PASS at the threshold <= alpha (within 2 Monte-Carlo standard errors);
the per-sample tests are expected to miss it with ICC > 0. Last column: P(PASS) of a model at min + margin.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402
from scipy.stats import beta as beta_dist  # noqa: E402
from scipy.stats import binom  # noqa: E402

from mlci.accuracy.stats.cluster import ClusterBettingGate, cluster_bound  # noqa: E402
from mlci.accuracy.stats.sprt import Sprt  # noqa: E402

MIN, MARGIN, ALPHA, BETA = 0.90, 0.03, 0.05, 0.10
LOOK = 50


def outcomes(rng: np.random.Generator, runs: int, sizes: np.ndarray, p: float, icc: float) -> np.ndarray:
    """(runs, samples) 0/1 correctness, groups of `sizes` one after the other."""
    n = int(sizes.sum())
    if icc <= 0:
        return (rng.random((runs, n)) < p).astype(np.int8)
    a, b = p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc
    gp = beta_dist.rvs(a, b, size=(runs, len(sizes)), random_state=rng)
    return (rng.random((runs, n)) < np.repeat(gp, sizes, axis=1)).astype(np.int8)


def exact_fixed(x: np.ndarray) -> np.ndarray:
    n = x.shape[1]
    crit = int(binom.isf(ALPHA, n, MIN)) + 1  # the exact test at this n: PASS when P(K >= k | MIN) <= alpha
    assert binom.sf(crit - 1, n, MIN) <= ALPHA < binom.sf(crit - 2, n, MIN)
    return x.sum(axis=1) >= crit


def sprt(x: np.ndarray) -> np.ndarray:
    test = Sprt(MIN, MIN + MARGIN, ALPHA, BETA)
    looks = np.arange(LOOK, x.shape[1] + 1, LOOK)
    k = np.cumsum(x, axis=1)[:, looks - 1]
    llr = test.llr(k, looks[None, :])
    up, lo = llr >= test.upper, llr <= test.lower
    first_up = np.where(up.any(1), up.argmax(1), 10 ** 9)
    first_lo = np.where(lo.any(1), lo.argmax(1), 10 ** 9)
    return first_up < first_lo


def cluster_betting(x: np.ndarray, sizes: np.ndarray, fail: bool = False) -> np.ndarray:
    gate = ClusterBettingGate(MIN, MARGIN, ALPHA, BETA, max_size=int(sizes.max()), mean_size=float(sizes.mean()))
    ends = np.cumsum(sizes)
    totals = np.diff(np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)[:, ends - 1]], axis=1), axis=1)
    m = np.broadcast_to(sizes.astype(float), totals.shape)
    lp, lf = gate.log_pass(totals, m), gate.log_fail(totals, m)
    up, lo = lp >= math.log(1 / ALPHA), lf >= math.log(1 / gate.fail_level)
    first_up = np.where(up.any(1), up.argmax(1), 10 ** 9)
    first_lo = np.where(lo.any(1), lo.argmax(1), 10 ** 9)
    if fail:
        return (first_lo < 10 ** 9) & (first_lo <= first_up)
    return (first_up < 10 ** 9) & (first_up < first_lo)


def cluster_boot(x: np.ndarray, sizes: np.ndarray, seed: int) -> np.ndarray:
    g = np.repeat(np.arange(len(sizes)), sizes)
    return np.array([cluster_bound(row, g, alpha=ALPHA, seed=seed + i, n_resamples=999)[1] >= MIN
                     for i, row in enumerate(x)])


def scenario(label: str, sizes: np.ndarray, icc: float, runs: int, boot_runs: int, rng: np.random.Generator) -> None:
    print(f"\n{label}: {len(sizes)} groups, {int(sizes.sum())} samples, ICC {icc:g}")
    print(f"   {'test':44} {'false PASS at 0.90':>20}  {'<= alpha?':9} {'P(PASS) at 0.93':>15}")
    at_min, at_alt = outcomes(rng, runs, sizes, MIN, icc), outcomes(rng, runs, sizes, MIN + MARGIN, icc)
    rows = [("exact binomial, one look (per sample)", exact_fixed(at_min).mean(), exact_fixed(at_alt).mean(), runs),
            ("SPRT, looks every 50 (per sample)", sprt(at_min).mean(), sprt(at_alt).mean(), runs),
            ("cluster betting, every group (group:)", cluster_betting(at_min, sizes).mean(),
             cluster_betting(at_alt, sizes).mean(), runs)]
    if boot_runs:
        rows.append(("cluster BCa bootstrap, one look (group:)", cluster_boot(at_min[:boot_runs], sizes, 1).mean(),
                     cluster_boot(at_alt[:boot_runs], sizes, 10 ** 6).mean(), boot_runs))
    false_fail = cluster_betting(at_alt, sizes, fail=True).mean()
    for name, fp, power, r in rows:
        s = math.sqrt(ALPHA * (1 - ALPHA) / r)
        ok = "ok" if fp <= ALPHA + 2 * s else "EXCEEDS"
        print(f"   {name:44} {fp:12.4f} ({math.sqrt(max(fp * (1 - fp), 1e-12) / r):.4f})  {ok:9} {power:15.3f}"
              + (f"   [{r} runs]" if r != runs else ""))
    fs = math.sqrt(BETA / 2 * (1 - BETA / 2) / runs)
    print(f"   cluster betting: false FAIL at 0.93 {false_fail:.4f} <= beta/2 = {BETA / 2:g} "
          f"{'ok' if false_fail <= BETA / 2 + 2 * fs else 'EXCEEDS'}")


def bootstrap_by_groups(runs: int, rng: np.random.Generator) -> None:
    """B. the cluster bootstrap's false PASS at the threshold by the number of groups (10 rows each, ICC 0.5)."""
    print(f"\nB. cluster BCa bootstrap at one look, groups of 10, ICC 0.5, {runs} runs a row (grouping.MIN_GROUPS)")
    for k in (30, 50, 100, 200, 300):
        sizes = np.full(k, 10)
        fp = cluster_boot(outcomes(rng, runs, sizes, MIN, 0.5), sizes, 7).mean()
        s = math.sqrt(ALPHA * (1 - ALPHA) / runs)
        print(f"   {k:4d} groups: false PASS {fp:.4f} ({math.sqrt(fp * (1 - fp) / runs):.4f})  "
              f"{'ok' if fp <= ALPHA + 2 * s else 'EXCEEDS'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--boot-runs", type=int, default=2000, help="runs of the (slower) cluster bootstrap rows")
    args = ap.parse_args()
    rng = np.random.default_rng(20261201)
    t0 = time.time()
    print(f"accuracy gate min {MIN}, margin {MARGIN}, alpha {ALPHA}, beta {BETA}; {args.runs} runs per row")
    scenario("augmented copies", np.full(300, 10), 0.5, args.runs, args.boot_runs, rng)
    scenario("augmented copies, weaker correlation", np.full(300, 10), 0.1, args.runs, 0, rng)
    scenario("unequal groups (1-20 rows)", rng.integers(1, 21, 300), 0.5, args.runs, 0, rng)
    scenario("independent samples (control)", np.full(300, 10), 0.0, args.runs, 0, rng)
    if args.boot_runs:
        bootstrap_by_groups(args.boot_runs, rng)
    print(f"\ntook {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
