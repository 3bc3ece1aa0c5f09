"""Exact and near-duplicate inputs in a test set: a warning, because the gates count every sample as independent.

Augmented copies of one image, a record exported twice, rows of one patient: when the sample holds many inputs
that repeat another, the statistics count the same evidence several times and overstate it. The check runs on the
first rows of the pre-drawn sample order (at most CHECK_ROWS, and at most MAX_VALUES numbers: the rows that are
judged first, read the way the workers read them, so a million-row dataset costs no more than a batch or two):

- exact: inputs equal to another checked input, value for value;
- near: numeric inputs within NEAR_FRACTION of the nearest-neighbour spacing n rows would have if spread evenly
  (every numeric feature standardised by its spread over the checked rows: the typical distance between two rows
  is sqrt(2 d), the even spacing that times n ** (-1 / d); `near_radius`), with equal text after
  normalising case, whitespace and punctuation. Near pairs are found with a k-d tree (scipy) on an orthonormal
  projection of the rows to at most PROJECTED dimensions (a projection never lengthens a distance, so every pair
  within the radius is a candidate), then checked at full dimension; each row is linked to its nearest candidates,
  so the count is a lower bound.

The redundant rows are the checked rows minus the distinct inputs they form (connected components of the
"equal or near" relation). At WARN_SHARE or more, `mlci accuracy run` warns and the record says so.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CHECK_ROWS = 20_000
MAX_VALUES = 4_000_000  # numbers held at once (32 MB as float64): wide inputs (images) check fewer rows
WARN_SHARE = 0.05
NEAR_FRACTION = 0.05
PROJECTED = 16
NEIGHBOURS = 5


@dataclass(frozen=True)
class Duplicates:
    checked: int
    exact: int  # rows whose input equals an earlier checked row's
    near: int  # further rows that are near-duplicates of another row (not exact)

    @property
    def share(self) -> float:
        return (self.exact + self.near) / self.checked if self.checked else 0.0

    @property
    def many(self) -> bool:
        return self.share >= WARN_SHARE

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": round(self.share, 4), "warn_share": WARN_SHARE}

    def warning(self, dataset: str) -> str:
        return (f"dataset {dataset}: {self.exact + self.near} of the first {self.checked} sampled inputs repeat "
                f"another ({self.exact} exactly, {self.near} nearly; {self.share:.1%}): the gates count every sample "
                "as independent evidence, so duplicates overstate it -- remove them from the test set")


def near_radius(n: int, d: int) -> float:
    """How close two standardised rows must be to count as near duplicates: NEAR_FRACTION of the distance at which
    n rows spread evenly over d standardised features sit from their nearest neighbour (the typical distance
    between two rows, sqrt(2 d), times n ** (-1 / d)). So a million rows of one feature, or a grid of values, are
    not "near" each other merely because there are many of them; an augmented copy is."""
    return NEAR_FRACTION * np.sqrt(2 * d) * n ** (-1.0 / d) if d else 0.0


def _text(value: Any) -> str:
    return re.sub(r"[\W_]+", " ", str(value).casefold()).strip()


def split_columns(cols: dict[str, Any], n: int) -> tuple[np.ndarray, list[bytes], list[bytes]]:
    """(numeric matrix n x d, exact key per row for everything else, normalised key per row)."""
    numeric: list[np.ndarray] = []
    raw = [hashlib.sha256() for _ in range(n)]
    norm = [hashlib.sha256() for _ in range(n)]
    for name in sorted(cols):
        values = cols[name]
        arr = values if isinstance(values, np.ndarray) else None
        if arr is None:
            try:
                arr = np.asarray(values)
            except (ValueError, TypeError):
                arr = None
        if arr is not None and arr.dtype.kind in "biuf" and len(arr) == n:
            numeric.append(arr.reshape(n, -1).astype(np.float64))
            continue
        for i, v in enumerate(values):
            v = v.item() if isinstance(v, np.generic) else v
            raw[i].update(repr(v).encode() + b"\0")
            norm[i].update(_text(v).encode() + b"\0")
    matrix = np.hstack(numeric) if numeric else np.zeros((n, 0))
    return matrix, [h.digest() for h in raw], [h.digest() for h in norm]


def find(cols: dict[str, Any], n: int, *, seed: int = 0) -> Duplicates:
    """Exact and near duplicates among `n` rows given as {column: values} (Dataset.columns)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if n < 2:
        return Duplicates(n, 0, 0)
    x, raw, norm = split_columns(cols, n)
    finite = np.where(np.isfinite(x), x, 0.0)
    exact_keys = [r + np.ascontiguousarray(x[i]).tobytes() for i, r in enumerate(raw)]
    distinct_exact = len(set(exact_keys))
    edges_a: list[np.ndarray] = []
    edges_b: list[np.ndarray] = []
    # rows with the same normalised text form one candidate block; numeric closeness is checked inside it
    blocks: dict[bytes, list[int]] = {}
    for i, key in enumerate(norm):
        blocks.setdefault(key, []).append(i)
    spread = finite.std(axis=0)
    live = spread > 0
    z = (finite[:, live] - finite[:, live].mean(axis=0)) / spread[live]
    d = z.shape[1]
    radius = near_radius(n, d)
    proj = z
    if d > PROJECTED:
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, PROJECTED)))
        proj = z @ q  # orthonormal columns: projected distances never exceed the full ones
    for rows in blocks.values():
        if len(rows) < 2:
            continue
        idx = np.asarray(rows)
        if d == 0:  # text (or constant numbers) only: equal normalised text is a near duplicate
            edges_a.append(idx[:-1])
            edges_b.append(idx[1:])
            continue
        k = min(NEIGHBOURS + 1, len(idx))
        dist, nb = cKDTree(proj[idx]).query(proj[idx], k=k, distance_upper_bound=radius * (1 + 1e-9))
        a = np.repeat(np.arange(len(idx)), k).reshape(len(idx), k)
        ok = np.isfinite(dist) & (nb != a) & (nb < len(idx))
        ia, ib = idx[a[ok]], idx[nb[ok]]
        full = np.linalg.norm(z[ia] - z[ib], axis=1) <= radius
        edges_a.append(ia[full])
        edges_b.append(ib[full])
    # exact equality links too (rows equal in every value are in one block and at distance 0, but NaN rows are not)
    first: dict[bytes, int] = {}
    pairs = [(first.setdefault(key, i), i) for i, key in enumerate(exact_keys)]
    ea, eb = np.asarray(pairs, dtype=np.int64).T
    edges_a.append(ea)
    edges_b.append(eb)
    a_all, b_all = np.concatenate(edges_a), np.concatenate(edges_b)
    graph = coo_matrix((np.ones(len(a_all)), (a_all, b_all)), shape=(n, n))
    components, _ = connected_components(graph, directed=False)
    exact = n - distinct_exact
    return Duplicates(n, exact, max(0, n - int(components) - exact))


def check(dataset: Any, indices: np.ndarray, *, seed: int = 0) -> Duplicates | None:
    """Duplicates among the first CHECK_ROWS of `indices` (the drawn order), fewer for wide inputs (MAX_VALUES
    numbers at most); None for a folder of files (the workers read its files lazily, never the controller)."""
    if dataset.format == "folder" or len(indices) == 0:
        return None
    width = max(1, split_columns(dataset.columns(np.asarray(indices[:1], dtype=np.int64)), 1)[0].shape[1])
    idx = np.asarray(indices[:max(2, min(CHECK_ROWS, MAX_VALUES // width))], dtype=np.int64)
    return find(dataset.columns(idx), len(idx), seed=seed)
