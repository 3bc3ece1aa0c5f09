"""Seeded, stratified sampling without replacement, drawn once as an *order*.

The whole sample order is drawn before anything runs: the sequential test looks at prefixes of this order
(never at completion order), shards take interleaved positions of it, and a retry with the same seed sees
exactly the same samples. The default seed is derived from what is judged -- the suite, the dataset, the model
files and the service's code -- and not from the commit, so neither a retry nor an empty commit redraws the
sample: re-running a bad model until it passes cannot find a luckier one.

Stratification interleaves the classes systematically: every class gets a random permutation and a
random phase, and samples are ordered by (rank + phase) / class size, so *every prefix* holds each class
within two samples of its share in the test set (a simple random draw is off by ~sqrt(m)).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import UserError


def derive_seed(*parts: str) -> int:
    """A 32-bit seed from stable strings (digests, suite name)."""
    return int(hashlib.sha256(":".join(parts).encode()).hexdigest()[:8], 16)


def choose_seed(flag: int | None, configured: int | None, *, suite: str, dataset_sha: str,
                models: Mapping[str, str], code: str) -> tuple[int, str]:
    """(seed, source): --seed wins, then the suite's `seed`, then the inputs being judged ("inputs": suite,
    dataset digest, model file digests, code digest)."""
    if flag is not None:
        return int(flag), "flag"
    if configured is not None:
        return int(configured), "config"
    model_part = json.dumps(dict(sorted(models.items())), separators=(",", ":"))
    return derive_seed("inputs/1", suite, dataset_sha, model_part, code), "inputs"


def stratified_order(labels: Sequence[str], seed: int) -> np.ndarray:
    """A permutation of range(len(labels)) whose every prefix is stratified by label."""
    _, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    return stratified_order_codes(codes, seed)


def stratified_order_codes(codes: np.ndarray, seed: int) -> np.ndarray:
    """`stratified_order` on integer class codes (code order = the classes' sorted order), in O(n log n): the
    controller of a million-row dataset holds one small integer per row, never the label strings."""
    rng = np.random.default_rng(seed)
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    n = len(codes)
    keys = np.empty(n)
    by_class = np.argsort(codes, kind="stable")  # each class's rows, ascending, one class after the other
    bounds = np.cumsum(np.bincount(codes)) if n else np.zeros(0, dtype=np.int64)
    start = 0
    for end in bounds.tolist():
        if end == start:
            continue
        perm = rng.permutation(by_class[start:end])
        keys[perm] = (np.arange(len(perm)) + rng.random()) / len(perm)
        start = end
    tiebreak = rng.random(n)
    return _sort_by(keys, tiebreak)


def _sort_by(keys: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """np.lexsort((tiebreak, keys)), ~8x faster on a million rows: sort by key, then order the (rare) runs of
    equal keys by tiebreak, then by index, exactly as the stable lexsort does."""
    order = np.argsort(keys)
    sorted_keys = keys[order]
    equal = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if equal.size:
        starts = equal[np.r_[True, np.diff(equal) > 1]]
        for start in starts.tolist():
            end = start + 1
            while end < len(order) and sorted_keys[end] == sorted_keys[start]:
                end += 1
            run = order[start:end]
            order[start:end] = run[np.lexsort((run, tiebreak[run]))]
    return order


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    if text is None:
        return None
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UserError(f"--shard '{text}' is not K/N", hint="e.g. --shard 1/2 (shards are numbered from 1)") from None
    if not 1 <= k <= n:
        raise UserError(f"--shard {text}: need 1 <= K <= N", hint="e.g. --shard 1/2 and --shard 2/2")
    return k, n


def shard_positions(drawn: int, shard: tuple[int, int] | None) -> np.ndarray:
    """Positions (in the drawn order) a shard runs: every N-th, so each shard is itself stratified."""
    if shard is None:
        return np.arange(drawn)
    k, n = shard
    return np.arange(k - 1, drawn, n)


def group_order(codes: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(row order, group boundaries) drawing whole groups: the groups are ordered as `stratified_order_codes`
    orders rows, stratified by each group's most frequent class code (ties: the smallest), and each group's rows
    follow one another in dataset order. `boundaries[j]` is where the j-th drawn group starts in the row order
    (a prefix ending at a boundary holds only whole groups). Rows of one group are never split across the
    sample, so a statistic over groups sees every member of each group it sees."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    _, group_codes = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
    group_codes = group_codes.reshape(-1)
    if len(group_codes) != len(codes):
        raise ValueError("one group per row is needed")
    k = int(group_codes.max()) + 1 if len(group_codes) else 0
    n_classes = int(codes.max()) + 1 if len(codes) else 0
    counts = np.zeros((k, max(n_classes, 1)), dtype=np.int64)
    np.add.at(counts, (group_codes, codes), 1)
    majority = counts.argmax(axis=1)  # argmax takes the first (smallest) class on ties
    drawn_groups = stratified_order_codes(majority, seed)
    rows_by_group = np.argsort(group_codes, kind="stable")
    sizes = np.bincount(group_codes, minlength=k)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if k else np.zeros(0, dtype=np.int64)
    drawn_sizes = sizes[drawn_groups]
    boundaries = np.concatenate([[0], np.cumsum(drawn_sizes)[:-1]]).astype(np.int64) if k else np.zeros(0, np.int64)
    within = np.arange(len(codes)) - np.repeat(boundaries, drawn_sizes)  # each row's rank inside its group
    order = rows_by_group[np.repeat(starts[drawn_groups], drawn_sizes) + within]
    return order.astype(np.int64), boundaries
