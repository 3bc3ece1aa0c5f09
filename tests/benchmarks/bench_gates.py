#!/usr/bin/env python
"""Benchmark of the gate statistics by Monte-Carlo: error rates against their bounds and samples used against
the exact fixed-n test, in one run. Pure statistics (no service, no engine); vectorised numpy, one core.

    python tests/benchmarks/bench_gates.py [--runs 2000] [--change-runs 2000] [--only A,B,C,D,E,F]

A. betting gate for bounded scores (min 0.90, margin 0.02, alpha 0.05, beta 0.10): false PASS at the
   threshold, false FAIL at threshold + margin, INCONCLUSIVE at the planned n; 0/1 scores and Beta scores.
   Targets: false PASS <= alpha, false FAIL <= beta / 2 (the FAIL test's level), PASS >= 1 - beta at the
   planned n (each within 2 Monte-Carlo standard errors).
B. samples used on 0/1 scores by: the exact fixed-n test, the open SPRT (Ville thresholds, current default),
   the truncated SPRT (new design), the betting gate (design bets; the paper's predictable plug-in bets):
   mean / p90 / max at true accuracy min - margin ... min + 2 margin. The SPRT stays the default for
   proportions where it uses fewer samples.
C. slice family: 5 slices, betting gates' anytime p-values, Holm at every look: P(any false PASS claim) at
   the threshold, P(any false FAIL) at threshold + margin, suite false PASS with one bad slice among good.
D. change gates (paired BCa bootstrap) for AUC, macro-F1, MAE, RMSE, latency p95: false PASS with the
   candidate exactly one margin worse, false FAIL at no change; n per run 300 (targets alpha / beta).
E. betting change gate on paired 0/1 correctness: false PASS at the margin, false FAIL at no change, samples.
F. truncated SPRT when looks see a random number of trials (class-conditional precision / recall).
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
from scipy.stats import binom  # noqa: E402

from mlci.accuracy import metrics  # noqa: E402
from mlci.accuracy.stats import betting, fixed_n  # noqa: E402
from mlci.accuracy.stats.betting import BettingGate  # noqa: E402
from mlci.accuracy.stats.paired import ChangeMargin, auc, betting_change_gate, paired_change_test, paired_scores  # noqa: E402
from mlci.accuracy.stats.slices import holm  # noqa: E402
from mlci.accuracy.stats.sprt import Sprt  # noqa: E402
from mlci.accuracy.stats.truncated import TruncatedSprt  # noqa: E402

MIN, MARGIN, ALPHA, BETA, LOOK = 0.90, 0.02, 0.05, 0.10, 50
CHUNK_CELLS = 4_000_000  # elements per simulated block (memory)


def se(rate: float, runs: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-12) / runs)


def verdict_line(label: str, rate: float, bound: float, runs: int, extra: str = "") -> str:
    s = se(bound, runs)
    ok = "ok" if rate <= bound + 2 * s else "MISSED"
    return f"   {label:58} {rate:7.4f} ({s:.4f})  <= {bound:<6g} {ok}  {extra}".rstrip()


def draw(rng: np.random.Generator, law: str, mean: float, shape: tuple[int, int]) -> np.ndarray:
    if law == "0/1":
        return (rng.random(shape) < mean).astype(float)
    return rng.beta(mean * 20, (1 - mean) * 20, shape)  # Beta scores, sd ~0.06 at mean 0.9


def sim_betting(gate: BettingGate, law: str, mean: float, runs: int, cap: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    codes, used = [], []
    chunk = max(1, CHUNK_CELLS // cap)
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        c, u = gate.simulate(draw(rng, law, mean, (r, cap)), LOOK)
        codes.append(c)
        used.append(u)
    return np.concatenate(codes), np.concatenate(used)


def sim_counts(decide_cuts, p: float, runs: int, cap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Verdict codes and samples for a count-based test with cuts (a, r) at looks every LOOK up to cap."""
    looks = np.arange(LOOK, cap + 1, LOOK)
    a, r = decide_cuts(looks)
    codes, used = [], []
    chunk = max(1, CHUNK_CELLS // cap)
    for start in range(0, runs, chunk):
        m = min(chunk, runs - start)
        k = np.cumsum(rng.random((m, cap)) < p, axis=1, dtype=np.int32)[:, looks - 1]
        up, down = k >= r, k <= a
        hit = up | down
        first = hit.argmax(axis=1)
        any_hit = hit.any(axis=1)
        codes.append(np.where(any_hit, np.where(up[np.arange(m), first], 1, -1), 0))
        used.append(np.where(any_hit, looks[first], cap))
    return np.concatenate(codes), np.concatenate(used)


def sprt_cuts(test: Sprt):
    s, f = test.step_success, test.step_failure

    def cuts(looks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.ceil((test.upper - looks * f) / (s - f) - 1e-9).astype(int)
        a = np.floor((test.lower - looks * f) / (s - f) + 1e-9).astype(int)
        return a, r

    return cuts


def section_a(runs: int, rng: np.random.Generator) -> None:
    gate = BettingGate(MIN, MARGIN, ALPHA, BETA)
    t = time.time()
    plan = betting.plan(MIN, MARGIN, ALPHA, BETA, batch=LOOK, cap=8000)
    print(f"\nA. betting gate (design bets), min {MIN}, margin {MARGIN}, alpha {ALPHA}, beta {BETA} (FAIL test at "
          f"beta/2); {runs} runs per point")
    print(f"   plan: {plan.needed} samples for P(PASS) >= {1 - BETA} at {MIN + MARGIN} ({plan.law}, {plan.runs} "
          f"simulated runs, {time.time() - t:.1f}s); exact fixed n {fixed_n.exact_n(MIN, MIN + MARGIN, ALPHA, BETA).n}")
    print(f"   {'case':58} {'rate':>7} {'(se)':>8}  bound")
    for law in ("0/1", "Beta"):
        for cap, capname in ((20000, "uncapped (20,000)"), (plan.needed, f"cap = planned n {plan.needed}")):
            c, _ = sim_betting(gate, law, MIN, runs, cap, rng)
            print(verdict_line(f"{law} scores, false PASS at mean = min, {capname}", float(np.mean(c == 1)), ALPHA,
                               runs))
            c, u = sim_betting(gate, law, MIN + MARGIN, runs, cap, rng)
            print(verdict_line(f"{law} scores, false FAIL at min + margin, {capname}", float(np.mean(c == -1)),
                               BETA / 2, runs, f"inconclusive {np.mean(c == 0):.4f}, mean samples {u.mean():.0f}"))
            if cap == plan.needed:
                rate = float(np.mean(c != 1))
                print(verdict_line(f"{law} scores, not PASS (FAIL + INCONCLUSIVE) at min + margin", rate, BETA, runs))


def section_b(runs: int, rng: np.random.Generator) -> None:
    fx = fixed_n.exact_n(MIN, MIN + MARGIN, ALPHA, BETA)
    trunc = TruncatedSprt(MIN, MIN + MARGIN, ALPHA, BETA, batch=LOOK)
    d = trunc.design
    open_sprt = Sprt(MIN, MIN + MARGIN, ALPHA, BETA)
    design = BettingGate(MIN, MARGIN, ALPHA, BETA)
    prpl = BettingGate(MIN, MARGIN, ALPHA, BETA, bets="prpl")
    cap = 20000
    print(f"\nB. samples used on 0/1 scores, looks every {LOOK} (min {MIN}, margin {MARGIN}, alpha {ALPHA}, beta {BETA};"
          f" {runs} runs per point; cap {cap:,} for the open tests)")
    print(f"   exact fixed n {fx.n}; truncated SPRT: N = {d.max_n}, exact size {d.size:.4f}, exact false FAIL "
          f"{d.false_fail:.4f} (U {d.upper:.3f}, L {d.lower:.3f}, meet {d.meet:.3f})")
    print(f"   {'true p':>7} {'method':26} {'mean':>6} {'p90':>6} {'max':>6} {'mean/fixed n':>12} {'PASS':>6} "
          f"{'FAIL':>6} {'INCONC':>6}")
    for p in (MIN - MARGIN, MIN, MIN + MARGIN / 4, MIN + MARGIN / 2, MIN + 3 * MARGIN / 4, MIN + MARGIN,
              MIN + 2 * MARGIN):
        rows = [("fixed n (exact binomial)", None)]
        rows += [("open SPRT (current)", sim_counts(sprt_cuts(open_sprt), p, runs, cap, rng)),
                 ("truncated SPRT (new)", sim_counts(lambda lk: trunc.boundaries(lk), p, runs, d.max_n, rng)),
                 ("betting, design bets", sim_betting(design, "0/1", p, runs, cap, rng)),
                 ("betting, plug-in bets", sim_betting(prpl, "0/1", p, runs, cap, rng))]
        for name, res in rows:
            if res is None:
                pw = float(binom.sf(fx.critical - 1, fx.n, p))
                print(f"   {p:7.3f} {name:26} {fx.n:6d} {fx.n:6d} {fx.n:6d} {1:12.2f} {pw:6.3f} {1 - pw:6.3f} {0:6.3f}")
                continue
            c, u = res
            extra = ""
            if name.startswith("truncated"):
                extra = f"  exact mean {float(trunc.operating_characteristic([p])[2][0]):.0f}"
            print(f"   {p:7.3f} {name:26} {u.mean():6.0f} {np.percentile(u, 90):6.0f} {u.max():6d} {u.mean() / fx.n:12.2f}"
                  f" {np.mean(c == 1):6.3f} {np.mean(c == -1):6.3f} {np.mean(c == 0):6.3f}{extra}")


def holm_rows(p: np.ndarray, level: float) -> np.ndarray:
    """Holm's rejections for each row of a (runs, k) p-value matrix (vectorised; checked against slices.holm)."""
    k = p.shape[1]
    order = np.argsort(p, axis=1)
    ps = np.take_along_axis(p, order, axis=1)
    ok = np.cumprod(ps <= level / (k - np.arange(k)), axis=1).astype(bool)
    out = np.zeros_like(ok)
    np.put_along_axis(out, order, ok, axis=1)
    return out


def section_c(runs: int, rng: np.random.Generator) -> None:
    k, cap = 5, 4000
    gate = BettingGate(MIN, MARGIN, ALPHA, BETA, fail_share=1.0)  # Holm spends beta across the slices' FAIL tests
    check = rng.random((50, k))
    assert all((holm_rows(check, 0.05)[i] == holm(check[i], 0.05)).all() for i in range(50))
    print(f"\nC. slice family: {k} slices, betting gates (min {MIN}, margin {MARGIN}), anytime p-values, Holm at alpha "
          f"{ALPHA} (PASS side) and beta {BETA} (FAIL side) at every look; cap {cap} per slice; {runs} runs per point")
    print(f"   {'case':58} {'rate':>7} {'(se)':>8}  bound")
    cases = (("any false PASS claim, every slice at min", [MIN] * k, "pass", ALPHA),
             ("any false FAIL, every slice at min + margin", [MIN + MARGIN] * k, "fail", BETA),
             ("suite PASS with one slice at min, 4 at min + 2 margin", [MIN] + [MIN + 2 * MARGIN] * (k - 1), "suite",
              ALPHA))
    looks = np.arange(LOOK, cap + 1, LOOK)
    chunk = max(1, CHUNK_CELLS // (cap * k))
    for label, means, kind, bound in cases:
        hits = 0
        used = []
        for start in range(0, runs, chunk):
            r = min(chunk, runs - start)
            x = np.stack([draw(rng, "0/1", m, (r, cap)) for m in means], axis=1)
            lp, lf = gate.paths(x)
            pp = np.minimum(1, np.exp(-np.maximum.accumulate(lp, axis=-1)[..., looks - 1]))  # (r, k, looks)
            pf = np.minimum(1, np.exp(-np.maximum.accumulate(lf, axis=-1)[..., looks - 1]))
            state = np.zeros((r, k), dtype=int)  # 1 PASS, -1 FAIL, once decided stays
            stop = np.full(r, cap)
            for j, n in enumerate(looks):
                passed = holm_rows(pp[:, :, j], ALPHA)
                failed = holm_rows(pf[:, :, j], BETA)
                state = np.where(state != 0, state, np.where(failed, -1, np.where(passed, 1, 0)))
                done = (state == -1).any(axis=1) | (state == 1).all(axis=1)
                stop = np.where(done & (stop == cap), n, stop)
            if kind == "pass":
                hits += int(np.sum((state == 1).any(axis=1)))
            elif kind == "fail":
                hits += int(np.sum((state == -1).any(axis=1)))
            else:
                hits += int(np.sum((state == 1).all(axis=1)))
            used.append(stop)
        print(verdict_line(label, hits / runs, bound, runs, f"mean samples per slice to stop {np.concatenate(used).mean():.0f}"))


def change_population(metric: str, rng: np.random.Generator, size: int = 200_000) -> dict[str, np.ndarray]:
    """A large population of (label, baseline output, candidate output) with two candidates: 'equal' (the same
    law as the baseline, independently noised) and 'worse' (more noise)."""
    if metric == "auc":
        y = rng.random(size) < 0.4
        signal = rng.normal(size=size) + 1.0 * y
        return {"y": y, "base": signal + rng.normal(scale=0.7, size=size),
                "equal": signal + rng.normal(scale=0.7, size=size), "worse": signal + rng.normal(scale=0.85, size=size)}
    if metric == "f1":
        y = rng.integers(0, 3, size)
        noisy = lambda acc: np.where(rng.random(size) < acc, y, rng.integers(0, 3, size))  # noqa: E731
        return {"y": y, "base": noisy(0.8), "equal": noisy(0.8), "worse": noisy(0.75)}
    if metric in ("mae", "rmse"):
        y = rng.normal(size=size)
        return {"y": y, "base": y + rng.normal(scale=0.5, size=size), "equal": y + rng.normal(scale=0.5, size=size),
                "worse": y + rng.normal(scale=0.55, size=size)}
    lat = rng.lognormal(3, 0.4, size)  # latency: baseline and candidate measured on the same requests
    return {"y": lat, "base": lat * rng.lognormal(0, 0.1, size), "equal": lat * rng.lognormal(0, 0.1, size),
            "worse": lat * rng.lognormal(0.05, 0.1, size)}


def section_d(runs: int, rng: np.random.Generator, n: int = 300, resamples: int = 999,
              only: str = "auc,f1,mae,rmse,latency_p95") -> None:
    def f1(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return metrics.macro_f1(a, b, axis, classes=[0, 1, 2])

    def p95(_y: np.ndarray, x: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.percentile(x, 95, axis=axis)

    specs = {"auc": (auc, True), "f1": (f1, True), "mae": (metrics.mae, False), "rmse": (metrics.rmse, False),
             "latency_p95": (p95, False)}
    print(f"\nD. change gates, paired BCa bootstrap ({resamples} resamples), {n} samples per run, {runs} runs per point;"
          f" absolute margin = the population gap between 'worse' and the baseline")
    print(f"   {'case':58} {'rate':>7} {'(se)':>8}  bound")
    for name, (fn, higher) in specs.items():
        if name not in only.split(","):
            continue
        t = time.time()
        pop = change_population(name if name != "latency_p95" else "latency", rng)
        base_v, worse_v, equal_v = (float(fn(pop["y"], pop[out])) for out in ("base", "worse", "equal"))
        margin = abs(base_v - worse_v)
        counts = {"worse": {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0}, "equal": {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0}}
        planned = []
        for case in ("worse", "equal"):
            for i in range(runs):
                idx = rng.integers(0, pop["y"].size, n)
                res = paired_change_test((pop["y"][idx], pop[case][idx]), (pop["y"][idx], pop["base"][idx]), fn,
                                         higher_better=higher, margin=ChangeMargin(absolute=margin), alpha=ALPHA,
                                         beta=BETA, n_resamples=resamples, seed=i)
                counts[case][res.verdict] += 1
                if case == "equal" and res.planned_n:
                    planned.append(res.planned_n)
        print(f"   {name}: baseline {base_v:.4f}, 'worse' {worse_v:.4f} (margin {margin:.4f}), 'equal' {equal_v:.4f}; "
              f"{time.time() - t:.0f}s")
        print(verdict_line(f"{name}: false PASS, candidate one margin worse", counts["worse"]["PASS"] / runs, ALPHA,
                           runs))
        print(verdict_line(f"{name}: false FAIL at no change", counts["equal"]["FAIL"] / runs, BETA, runs,
                           f"PASS {counts['equal']['PASS'] / runs:.3f}, INCONCLUSIVE "
                           f"{counts['equal']['INCONCLUSIVE'] / runs:.3f}; planned n for beta: median "
                           f"{np.median(planned):.0f}"))


def section_e(runs: int, rng: np.random.Generator) -> None:
    margin, cap, disc = 0.03, 20000, 0.10
    gate = betting_change_gate(margin, ALPHA, BETA)
    print(f"\nE. betting change gate on paired 0/1 correctness (baseline 0.90, margin {margin}, ~{disc:.0%} discordant "
          f"pairs at no change), {runs} runs per point, cap {cap}")
    print(f"   {'case':58} {'rate':>7} {'(se)':>8}  bound")

    def pairs(drop: float, r: int) -> np.ndarray:
        base = rng.random((r, cap)) < 0.9
        redraw = rng.random((r, cap)) < 0.9 - drop / (disc / 0.18)  # redrawn samples carry the whole drop
        cand = np.where(rng.random((r, cap)) < disc / 0.18, redraw, base)
        return paired_scores(cand.astype(float), base.astype(float))

    for label, drop, bad, bound in (("false PASS, candidate one margin worse", margin, 1, ALPHA),
                                    ("false FAIL at no change", 0.0, -1, BETA / 2)):
        codes, used = [], []
        chunk = max(1, CHUNK_CELLS // cap)
        for start in range(0, runs, chunk):
            c, u = gate.simulate(pairs(drop, min(chunk, runs - start)), LOOK)
            codes.append(c)
            used.append(u)
        c, u = np.concatenate(codes), np.concatenate(used)
        print(verdict_line(label, float(np.mean(c == bad)), bound, runs,
                           f"mean samples {u.mean():.0f}, p90 {np.percentile(u, 90):.0f}, inconclusive {np.mean(c == 0):.4f}"))


def section_f(runs: int, rng: np.random.Generator) -> None:
    """The truncated SPRT when a look's trial count is not a whole batch: a class-conditional recall gate sees
    ~Binomial(50, share) trials per batch, so the design is made for the expected count per look."""
    print(f"\nF. truncated SPRT with random trial counts per look (trials per 50-sample batch ~ Binomial(50, share), "
          f"design batch = 50 x share); {runs} runs per point")
    print(f"   {'case':58} {'rate':>7} {'(se)':>8}  bound")
    for share in (0.3, 0.97):
        batch = round(LOOK * share)
        test = TruncatedSprt(MIN, MIN + MARGIN, ALPHA, BETA, batch=batch)
        d = test.design
        for p, bad, bound, exact in ((MIN, 1, ALPHA, d.size), (MIN + MARGIN, -1, BETA, d.false_fail)):
            nb = int(np.ceil(d.max_n / (LOOK * share))) + 40
            looks = np.cumsum(rng.binomial(LOOK, share, (runs, nb)), axis=1)
            outcomes = rng.random((runs, int(looks[:, -1].max()))) < p
            cum = np.concatenate([np.zeros((runs, 1), dtype=np.int64), np.cumsum(outcomes, axis=1)], axis=1)
            k = np.take_along_axis(cum, looks, axis=1)
            a, r = test.boundaries(looks)
            up, down = k >= r, k <= a
            first = (up | down).argmax(axis=1)
            v = np.where(up[np.arange(runs), first], 1, -1)
            label = f"share {share}: {'false PASS at min' if bad == 1 else 'false FAIL at min + margin'}"
            print(verdict_line(label, float(np.mean(v == bad)), bound, runs, f"exact at the regular schedule {exact:.4f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="Monte-Carlo runs per point (sections A, B, C, E, F)")
    ap.add_argument("--change-runs", type=int, default=2000, help="runs per point for the bootstrap change gates (D)")
    ap.add_argument("--only", default="A,B,C,D,E,F", help="comma-separated sections to run")
    ap.add_argument("--change-n", type=int, default=300, help="samples per run for the bootstrap change gates (D)")
    ap.add_argument("--change-metrics", default="auc,f1,mae,rmse,latency_p95", help="metrics for section D")
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    sections = {"A": lambda: section_a(args.runs, rng), "B": lambda: section_b(args.runs, rng),
                "C": lambda: section_c(args.runs, rng), "D": lambda: section_d(args.change_runs, rng, args.change_n,
                                                               only=args.change_metrics),
                "E": lambda: section_e(args.runs, rng), "F": lambda: section_f(args.runs, rng)}
    for key in args.only.split(","):
        t = time.time()
        sections[key.strip().upper()]()
        print(f"   ({time.time() - t:.0f}s)")


if __name__ == "__main__":
    main()
