"""Gates per slice: family-wise risk over slices, a minimum sample count per slice, stratified sampling.

A suite with slices judges every gate once per slice. Two risks grow with the number of slices k:
* a good model is FAILed because one of its k good slices happens to fail (k chances of a false FAIL);
* the slice table claims PASS for a slice that is below the threshold (k chances of a false PASS claim).
Both are held family-wise here: the per-slice p-values of each side go through Holm's step-down procedure
(Holm 1979) -- reject the smallest p_(1) if p_(1) <= level / k, then p_(2) <= level / (k - 1), ... --
which keeps the probability of *any* false claim of that side <= level under every dependence between the
slices, and is uniformly more powerful than Bonferroni. Users who want to spend the risk unevenly give
weights (weighted Holm: step j rejects the smallest p_i / w_i if p_i <= w_i level / (sum of the weights
still in play)); weights that sum to 1 with `holm=False` are plain weighted Bonferroni: slice i at w_i level.
The suite's own false-PASS rate needs no correction (it PASSes only when every slice passes: an
intersection-union test), so the family-wise control is what makes the slice *table* trustworthy.

Sequential slices use anytime-valid p-values (1 / the running maximum of an e-process, e.g. the betting
gate's capital or the Ville SPRT's likelihood ratio): Holm on p-values that are valid at any stopping time
is valid at the stopping time, and since those p-values only decrease the decided slices stay decided.

A slice with fewer than `min_samples` samples is INCONCLUSIVE, never a silent PASS.

`allocate` and `stratified_order` give each slice its samples: the suite's budget is split (equal: every
slice gets the same share, which suits per-slice gates with one threshold; proportional: by slice size),
capped by each slice's size with the remainder water-filled into the others; the pre-drawn order interleaves
the slices so that every prefix holds its quota share of each (each slice in its own random order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def holm(pvalues: Sequence[float] | np.ndarray, level: float,
         weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Rejections (bool per hypothesis) of the (weighted) Holm step-down procedure at family-wise `level`."""
    p = np.asarray(pvalues, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    if p.shape != w.shape or np.any(w <= 0):
        raise ValueError("weights must be positive, one per p-value")
    reject = np.zeros(p.size, dtype=bool)
    alive = np.ones(p.size, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        j = idx[np.argmin(p[idx] / w[idx])]
        if p[j] <= w[j] * level / w[idx].sum():
            reject[j], alive[j] = True, False
        else:
            break
    return reject


def bonferroni(pvalues: Sequence[float] | np.ndarray, level: float,
               weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Weighted Bonferroni: slice i at level * w_i / sum(w) (equal weights: level / k)."""
    p = np.asarray(pvalues, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    return p <= level * w / w.sum()


def slice_levels(level: float, k: int, weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Per-slice levels for designs fixed in advance (e.g. a truncated SPRT per slice): level * w_i / sum(w)."""
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=float)
    if w.size != k or np.any(w <= 0):
        raise ValueError("weights must be positive, one per slice")
    return level * w / w.sum()


def family_verdicts(pass_p: Sequence[float], fail_p: Sequence[float], samples: Sequence[int], *, alpha: float,
                    beta: float, min_samples: int = 0, weights: Sequence[float] | None = None,
                    method: str = "holm", final: bool = False) -> list[str | None]:
    """Per-slice verdicts from each slice's PASS-side and FAIL-side p-values.

    PASS-side p tests "slice metric <= threshold", FAIL-side "slice metric >= threshold + margin". Slices
    below `min_samples` take no part and are INCONCLUSIVE once `final`; the others are PASS (family-wise
    alpha), FAIL (family-wise beta), or None (undecided; INCONCLUSIVE when `final`). A slice rejected on both
    sides (possible only with contradictory evidence) is FAIL.
    """
    if method not in ("holm", "bonferroni"):
        raise ValueError(f"method must be 'holm' or 'bonferroni', got {method!r}")
    k = len(samples)
    if not (len(pass_p) == len(fail_p) == k):
        raise ValueError("one PASS p-value, one FAIL p-value and one sample count per slice")
    eligible = np.asarray(samples) >= min_samples
    verdicts: list[str | None] = [None] * k
    idx = np.flatnonzero(eligible)
    if idx.size:
        w = None if weights is None else np.asarray(weights, dtype=float)[idx]
        test = holm if method == "holm" else bonferroni
        passed = test(np.asarray(pass_p, dtype=float)[idx], alpha, w)
        failed = test(np.asarray(fail_p, dtype=float)[idx], beta, w)
        for j, i in enumerate(idx):
            verdicts[i] = "FAIL" if failed[j] else ("PASS" if passed[j] else None)
    if final:
        verdicts = [v if v is not None else "INCONCLUSIVE" for v in verdicts]
    return verdicts


def allocate(sizes: Sequence[int], budget: int, *, min_per_slice: int = 0, policy: str = "equal") -> np.ndarray:
    """Samples per slice: `min_per_slice` first (as far as each slice has them), then the rest of the budget
    split equally or proportionally to size, never above a slice's size (water-filling: what a small slice
    cannot take goes to the others)."""
    if policy not in ("equal", "proportional"):
        raise ValueError(f"policy must be 'equal' or 'proportional', got {policy!r}")
    cap = np.asarray(sizes, dtype=np.int64)
    if np.any(cap < 0) or budget < 0:
        raise ValueError("sizes and budget must be >= 0")
    budget = min(int(budget), int(cap.sum()))
    alloc = np.minimum(cap, min_per_slice)
    if alloc.sum() > budget:  # the minimums alone exceed the budget: share the budget equally instead
        alloc = np.zeros_like(cap)
    remaining = budget - int(alloc.sum())
    while remaining > 0:
        open_ = np.flatnonzero(alloc < cap)
        share = np.ones(open_.size) if policy == "equal" else cap[open_].astype(float)
        want = remaining * share / share.sum()
        add = np.minimum(np.floor(want).astype(np.int64), cap[open_] - alloc[open_])
        if add.sum() == 0:  # fewer samples left than open slices: one each by largest remainder
            order = open_[np.argsort(-(want - np.floor(want)), kind="stable")]
            add_one = order[:remaining]
            alloc[add_one] += 1
            break
        alloc[open_] += add
        remaining -= int(add.sum())
    return alloc


def stratified_order(slice_of: Sequence[object] | np.ndarray, quotas: dict[object, int] | None = None,
                     seed: int = 0) -> np.ndarray:
    """Sample indices in a pre-drawn order that interleaves the slices by quota.

    Each slice's indices are shuffled (seeded); slot after slot goes to the slice furthest behind its quota
    share of the prefix (deficit round-robin), so after any prefix of length L slice s holds
    round(L * q_s / sum q) samples to within one. Without quotas every sample of every slice is used,
    proportionally.
    """
    labels = np.asarray(slice_of, dtype=object)
    keys = sorted(set(labels.tolist()), key=str)
    rng = np.random.default_rng(seed)
    pools = {s: rng.permutation(np.flatnonzero(labels == s)) for s in keys}
    q = {s: (len(pools[s]) if quotas is None else min(int(quotas.get(s, 0)), len(pools[s]))) for s in keys}
    total = sum(q.values())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    share = np.array([q[s] / total for s in keys])
    taken = np.zeros(len(keys), dtype=np.int64)
    limit = np.array([q[s] for s in keys])
    out = np.empty(total, dtype=np.int64)
    for pos in range(total):
        deficit = np.where(taken < limit, (pos + 1) * share - taken, -math.inf)
        j = int(np.argmax(deficit))
        out[pos] = pools[keys[j]][taken[j]]
        taken[j] += 1
    return out
