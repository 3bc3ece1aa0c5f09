"""BCa bootstrap intervals (scipy.stats.bootstrap) for metrics that are not per-sample proportions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import bootstrap


def bca_interval(
    columns: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray | float],
    *,
    alpha: float,
    seed: int,
    n_resamples: int = 2000,
    vectorized: bool = True,
    batch: int | None = None,
) -> tuple[float, float]:
    """Two-sided (1 - 2 alpha) BCa interval: each end is a one-sided level-alpha bound.

    `columns` are paired per-sample arrays (e.g. labels, predictions) resampled together; `batch` bounds how many
    resamples (and jackknife samples) scipy evaluates at once, for statistics whose per-sample data is wide.
    """
    n = len(columns[0])
    if n < 3:
        return (float("-inf"), float("inf"))
    res = bootstrap(columns, statistic, paired=True, vectorized=vectorized, n_resamples=n_resamples,
                    confidence_level=1 - 2 * alpha, method="BCa", random_state=np.random.default_rng(seed),
                    batch=batch)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isnan(lo) or np.isnan(hi):  # degenerate resamples (e.g. a constant statistic)
        value = float(statistic(*columns, axis=-1) if vectorized else statistic(*columns))
        return (value, value)
    return (lo, hi)
