"""Exact and near-duplicate inputs: counted on constructed data (numbers, images, text, mixed records), read from
every row format through Dataset.columns, and brute-force checked against all pairwise distances (scipy's pdist)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from mlci.accuracy import duplicates
from mlci.accuracy.data import DataSpec, open_dataset


def with_copies(x: np.ndarray, rng: np.random.Generator, exact: int, near: int, noise: float) -> np.ndarray:
    """x plus `exact` verbatim copies and `near` slightly perturbed copies of distinct original rows."""
    src = rng.choice(len(x), size=exact + near, replace=False)
    jitter = rng.normal(0, noise, size=(near, *x.shape[1:])) * x.std(axis=0)
    return np.concatenate([x, x[src[:exact]], x[src[exact:]] + jitter])


def test_counts_exact_and_near_copies_of_numeric_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 12))
    got = duplicates.find({"x": with_copies(x, rng, exact=150, near=90, noise=0.002)}, 3240)
    assert (got.checked, got.exact, got.near) == (3240, 150, 90)
    assert got.share == pytest.approx(240 / 3240) and got.many
    far = duplicates.find({"x": with_copies(x, rng, exact=0, near=90, noise=1.0)}, 3090)  # not near: new rows
    assert (far.exact, far.near) == (0, 0) and not far.many


def test_high_dimensional_inputs_go_through_the_projection_and_agree_with_all_pairs() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 8, 8))  # 64 features: projected to 16 for the k-d tree
    data = with_copies(x, rng, exact=20, near=30, noise=0.003)
    got = duplicates.find({"img": data}, len(data))
    flat = data.reshape(len(data), -1)
    z = (flat - flat.mean(0)) / flat.std(0)
    close = squareform(pdist(z)) <= duplicates.near_radius(len(z), z.shape[1])
    from scipy.sparse.csgraph import connected_components
    components, _ = connected_components(close, directed=False)
    assert got.exact + got.near == len(data) - components == 50 and got.exact == 20


def test_many_evenly_spread_rows_are_not_near_each_other() -> None:
    for x in (np.arange(200.0), np.arange(1_000_000.0)[::50], np.mgrid[0:70, 0:70].reshape(2, -1).T):
        got = duplicates.find({"x": x}, len(x))
        assert (got.exact, got.near) == (0, 0), x.shape
    uniform = np.random.default_rng(4).random((5000, 2))  # chance neighbours closer than 5% of the spacing: rare
    got = duplicates.find({"x": uniform}, 5000)
    assert got.exact == 0 and got.near < 0.01 * 5000 and not got.many


def test_text_is_compared_after_normalising_case_and_punctuation() -> None:
    got = duplicates.find({"text": ["Great product!", "great   product", "GREAT, product.", "terrible", "Terrible"],
                           "stars": [5, 5, 5, 1, 1]}, 5)
    assert (got.exact, got.near) == (0, 3)
    mixed = duplicates.find({"text": ["a", "a", "b"], "stars": [1, 1, 1]}, 3)
    assert (mixed.exact, mixed.near) == (1, 0)
    nan = duplicates.find({"x": np.array([[np.nan, 1.0], [np.nan, 1.0], [2.0, 3.0]])}, 3)
    assert nan.exact == 1


def test_rows_are_read_from_every_row_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = with_copies(rng.normal(size=(200, 3)), rng, exact=30, near=0, noise=0)
    y = rng.integers(0, 2, len(x))
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cols = ["a", "b", "c"]
    (tmp_path / "d.csv").write_text("a,b,c,y\n" + "".join(f"{r[0]!r},{r[1]!r},{r[2]!r},{v}\n" for r, v in zip(x, y, strict=True)))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({**dict(zip(cols, map(float, r), strict=True)), "y": int(v)}) + "\n"
                                              for r, v in zip(x, y, strict=True)))
    for name, spec in (("d.npz", DataSpec(inputs=("x",))), ("d.csv", DataSpec(inputs=tuple(cols))),
                       ("d.jsonl", DataSpec(inputs=tuple(cols)))):
        ds = open_dataset(tmp_path / name, spec)
        got = duplicates.check(ds, np.arange(len(ds)))
        assert got is not None and (got.checked, got.exact) == (230, 30), name
        ds.close()
