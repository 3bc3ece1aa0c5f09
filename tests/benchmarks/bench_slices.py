#!/usr/bin/env python
"""Monte-Carlo error rates of a sliced suite, through the code a run uses (slicing.plan_slices + SliceFamily over
gates.Evaluator), fed synthetic 0/1 correctness in the pre-drawn interleaved order, batch by batch.

    python tests/benchmarks/bench_slices.py [--runs 2000] [--slices 4] [--only holm,weights] [--workers 2]
                                            [--sizes 3000,1500,1000,500 --allocation proportional]

One accuracy gate (min 0.80, margin 0.06, alpha 0.05, beta 0.10), `slices` with k equal slices of 1,500 samples
each (equal allocation, min_samples 100), suite batches of 100 (25 per slice per look), sequential:
* holm (default): Ville SPRT per slice, weighted Holm over the slices after every look;
* weights: each slice's truncated SPRT at alpha / k and beta / k (Bonferroni fixed in advance).

Points (targets, each within 2 Monte-Carlo standard errors):
  1. every slice at the threshold (0.80): P(any slice claimed PASS) <= alpha (family-wise, the slice table);
  2. one slice at the threshold, the others at 0.90: P(suite PASS) <= alpha (the suite's false PASS);
  3. every slice at threshold + margin (0.86): P(any slice FAIL) = P(suite FAIL) <= beta (family-wise false FAIL),
     and P(suite not PASS) (FAIL or INCONCLUSIVE at the quota) <= beta (the planned power);
  4. one slice at 0.74 (a regression the average hides: the mean over slices is 0.83 >= min), the others 0.86:
     P(suite FAIL) -- the power to flag the hidden regression -- and P(the bad slice is the one named).
With --sizes the slices differ in size (the suite's batches then hold a varying number of each slice's samples;
each slice still looks every planned batch of its own samples).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402

from mlci.accuracy.outputs import Output  # noqa: E402
from mlci.accuracy.slicing import SliceFamily, plan_slices  # noqa: E402

MIN, MARGIN, ALPHA, BETA = 0.80, 0.06, 0.05, 0.10
PER_SLICE, BATCH = 1500, 100
GATE = {"metric": "accuracy", "kind": "absolute", "min": MIN, "max": None, "margin": MARGIN, "alpha": ALPHA,
        "beta": BETA, "class": None, "relative_margin": None, "bound": None, "discordance": None}


def make_plan(sizes: tuple[int, ...], split: str, allocation: str = "equal"):
    k = len(sizes)
    codes = np.repeat(np.arange(k), sizes)
    cfg = {"field": "s", "bins": [], "labels": [], "min_samples": 100, "alpha_split": split, "weights": {},
           "allocation": allocation}
    classes = ["0", "1"]
    class_codes = np.ones(len(codes), dtype=np.int64)  # every label is "1": a sample is right when it predicts 1
    return plan_slices(cfg, codes=codes, names=[f"s{i}" for i in range(k)], gates=[GATE], class_codes=class_codes,
                       classes=classes, output=Output("labels"), sequential=True, cap=len(codes), seed=1,
                       batch_size=BATCH, task="classification", where="bench")


def one_run(sp, means: np.ndarray, rng: np.random.Generator) -> tuple[str, list[str | None]]:
    codes = sp.codes
    right = rng.random(len(codes)) < means[codes]
    fam = SliceFamily(sp, Output("labels"), "fail", slice_of=codes, seed=0)
    labels = ["1"] * BATCH
    lat = [0.0] * BATCH
    err = [None] * BATCH
    for lo in range(0, len(codes), BATCH):
        hi = min(lo + BATCH, len(codes))
        m = hi - lo
        preds = ["1" if r else "0" for r in right[lo:hi]]
        if fam.feed(labels[:m], preds, err[:m], lat[:m]):
            break
    if fam.verdict is None:
        fam.finish()
    return fam.verdict or "INCONCLUSIVE", fam.slice_verdicts()


def point(args: tuple[tuple[int, ...], str, str, list[float], int, int]) -> dict[str, float]:
    sizes, split, allocation, means, runs, seed = args
    sp = make_plan(sizes, split, allocation)
    rng = np.random.default_rng(seed)
    mu = np.asarray(means)
    out = {"suite_pass": 0, "suite_fail": 0, "any_pass_claim_at_min": 0, "named_bad": 0}
    for _ in range(runs):
        verdict, slices = one_run(sp, mu, rng)
        out["suite_pass"] += verdict == "PASS"
        out["suite_fail"] += verdict == "FAIL"
        out["any_pass_claim_at_min"] += any(v == "PASS" and mu[s] <= MIN for s, v in enumerate(slices))
        out["named_bad"] += verdict == "FAIL" and [s for s, v in enumerate(slices) if v == "FAIL"] == [0]
    return {key: v / runs for key, v in out.items()}


def se(rate: float, runs: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-12) / runs)


def line(label: str, rate: float, bound: float | None, runs: int) -> str:
    if bound is None:
        return f"   {label:62} {rate:7.4f} ({se(rate, runs):.4f})"
    ok = "ok" if rate <= bound + 2 * se(bound, runs) else "MISSED"
    return f"   {label:62} {rate:7.4f} ({se(rate, runs):.4f})  <= {bound:<5g} {ok}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="Monte-Carlo runs per point")
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--only", default="holm,weights", help="alpha_split modes to simulate")
    ap.add_argument("--workers", type=int, default=1, help="processes (points run in parallel)")
    ap.add_argument("--sizes", help="comma-separated slice sizes (default: --slices slices of 1,500)")
    ap.add_argument("--allocation", default="equal", choices=("equal", "proportional"))
    a = ap.parse_args()
    sizes = tuple(int(x) for x in a.sizes.split(",")) if a.sizes else (PER_SLICE,) * a.slices
    k, runs = len(sizes), a.runs
    good, bad = MIN + MARGIN, MIN - MARGIN
    pts = {"1": [MIN] * k, "2": [MIN] + [0.90] * (k - 1), "3": [good] * k, "4": [bad] + [good] * (k - 1)}
    jobs = [(sizes, split, a.allocation, means, runs, 1000 + 17 * i + 101 * j)
            for j, split in enumerate(a.only.split(",")) for i, means in enumerate(pts.values())]
    t0 = time.time()
    with ProcessPoolExecutor(a.workers) as pool:
        results = list(pool.map(point, jobs))
    print(f"slice family: {k} slices of {', '.join(map(str, sizes))} samples ({a.allocation} allocation of "
          f"{sum(sizes)}), accuracy min {MIN} margin {MARGIN} alpha {ALPHA} "
          f"beta {BETA}, looks every {BATCH} suite samples; {runs} runs per point ({time.time() - t0:.0f}s)")
    for j, split in enumerate(a.only.split(",")):
        r = dict(zip(pts, results[4 * j:4 * j + 4], strict=True))
        sp = make_plan(sizes, split, a.allocation)
        print(f"\n alpha_split: {split} (per-slice method {sp.plans[0][0]['method']}, per-slice alpha "
              f"{sp.plans[0][0]['alpha']:.4g}, beta {sp.plans[0][0]['beta']:.4g}; quotas {sp.quotas}, samples "
              f"per look {sp.batches})")
        print(line(f"1. all slices at min {MIN}: P(any slice claimed PASS)", r["1"]["any_pass_claim_at_min"], ALPHA,
                   runs))
        print(line(f"2. one slice at min, {k - 1} at 0.90: P(suite PASS)", r["2"]["suite_pass"], ALPHA, runs))
        print(line(f"3. all at min + margin {good:g}: P(suite FAIL) (any slice FAIL)", r["3"]["suite_fail"], BETA,
                   runs))
        print(line("   ... P(suite not PASS) (FAIL or INCONCLUSIVE at the quota)", 1 - r["3"]["suite_pass"], BETA,
                   runs))
        print(line(f"4. one slice at {bad:g}, {k - 1} at {good:g} (mean {(bad + (k - 1) * good) / k:.3f}): "
                   "P(suite FAIL)", r["4"]["suite_fail"], None, runs))
        print(line("   ... P(FAIL naming exactly the bad slice)", r["4"]["named_bad"], None, runs))


if __name__ == "__main__":
    main()
