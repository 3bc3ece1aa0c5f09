"""The statistics of a drift check: per-feature tests, effect sizes, and the correction across features.

Choices (and why):
- Numeric features: Kolmogorov-Smirnov against the reference's stored CDF, not `scipy.stats.ks_2samp`.
  ks_2samp needs the raw training sample, which the reference deliberately does not keep. The statistic
  D = sup|F_cur - F_ref| is computed exactly against the stored CDF (exact ECDF for features with at most 1,024
  distinct values, else a quantile sketch within 1/512), and the p-value comes from `scipy.stats.kstwo` with the
  two-sample effective size n*m/(n+m) -- what ks_2samp's asymptotic mode does -- so the reference's own sampling
  noise is accounted for. For discrete features KS is conservative (fewer false alarms, a little less power).
- Categorical features and class predictions: chi-square test of homogeneity (`scipy.stats.chi2_contingency`)
  on the 2 x K table of reference vs current counts, not a goodness-of-fit test against reference frequencies:
  a category never seen in training has reference count 0, which breaks chisquare's expected counts but is an
  ordinary cell in a contingency table. Categories with expected counts below 5 are pooled.
- Multiple testing: Holm's step-down correction of the per-feature p-values. The decision the check makes is
  one yes/no "retrain?", so the error that costs money is a false retrain, i.e. the family-wise error rate;
  Holm controls it at `alpha` under any dependence between features (features are correlated: neighbouring
  pixels, income and spend), which Benjamini-Hochberg (FDR, valid under positive dependence) does not promise,
  and it is uniformly more powerful than Bonferroni.
- A feature drifts when its change is significant after Holm AND material (PSI >= threshold), or when its
  missing rate rises / values leave the reference range beyond their thresholds. Significance alone flags
  trivial shifts once windows hold tens of thousands of rows; PSI alone has no false-alarm control on small
  windows. The AND keeps the false-retrain rate at or below alpha.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from .reference import bin_counts
from .table import to_categorical, to_numeric

PSI_FLOOR = 1e-4  # proportion used for an empty bin (PSI is infinite otherwise); documented convention
MIN_EXPECTED = 5.0
OTHER = "(other)"


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index sum((c - r) * ln(c / r)) over bins, empty bins floored at PSI_FLOOR."""
    r = np.maximum(np.asarray(ref_counts, float) / max(np.sum(ref_counts), 1), PSI_FLOOR)
    c = np.maximum(np.asarray(cur_counts, float) / max(np.sum(cur_counts), 1), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _cdf_at(cdf: dict[str, Any], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right values F(v) and left limits F(v-) of a stored CDF at `points`."""
    x = np.asarray(cdf["x"], float)
    pl = np.asarray(cdf["pl"], float)
    pr = np.asarray(cdf["pr"], float)
    i = np.searchsorted(x, points, side="right") - 1
    right = np.zeros(points.size)
    left = np.zeros(points.size)
    inside = i >= 0
    at_knot = inside & (x[np.clip(i, 0, None)] == points)
    ii = np.clip(i, 0, x.size - 1)
    right[inside] = pr[ii[inside]]
    left[inside] = pr[ii[inside]]
    left[at_knot] = pl[ii[at_knot]]
    if cdf["interp"] == "linear":
        between = inside & ~at_knot & (i < x.size - 1)
        j = ii[between]
        frac = (points[between] - x[j]) / (x[j + 1] - x[j])
        value = pr[j] + (pl[j + 1] - pr[j]) * frac
        right[between] = value
        left[between] = value
    return right, left


def ks_distance(cdf: dict[str, Any], values: np.ndarray) -> float:
    """sup |F_cur - F_ref|: both are monotone and F_cur is a step function, so the supremum is reached at a
    jump of either function, from the right or the left; evaluating both limits at every knot is exact."""
    uniq, counts = np.unique(values, return_counts=True)
    cur = {"interp": "step", "x": uniq, "pr": np.cumsum(counts) / values.size}
    cur["pl"] = np.concatenate([[0.0], cur["pr"][:-1]])
    points = np.union1d(uniq, np.asarray(cdf["x"], float))
    ref_r, ref_l = _cdf_at(cdf, points)
    cur_r, cur_l = _cdf_at(cur, points)
    return float(max(np.max(np.abs(ref_r - cur_r)), np.max(np.abs(ref_l - cur_l))))


def ks_test(cdf: dict[str, Any], n_ref: int, values: np.ndarray) -> tuple[float, float]:
    """(D, p): p from scipy's exact one-sample KS distribution at the two-sample effective size."""
    d = ks_distance(cdf, values)
    en = values.size * n_ref / (values.size + n_ref)
    return d, float(stats.kstwo.sf(d, max(int(round(en)), 1)))


def chi2_homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """(statistic, p, dof) of the 2 x K homogeneity test; sparse columns pooled so expected counts are >= 5."""
    table = np.vstack([ref_counts, cur_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    share = table.sum(axis=1, keepdims=True) / table.sum()
    expected_min = (table.sum(axis=0, keepdims=True) * share).min(axis=0)
    sparse = expected_min < MIN_EXPECTED
    if sparse.any():
        pooled = table[:, sparse].sum(axis=1, keepdims=True)
        table = np.hstack([table[:, ~sparse], pooled])
        if (pooled.sum() * share).min() < MIN_EXPECTED and table.shape[1] > 2:
            # still too thin: fold the pool into the smallest remaining column
            k = int(np.argmin(table[:, :-1].sum(axis=0)))
            table[:, k] += table[:, -1]
            table = table[:, :-1]
    if table.shape[1] < 2:
        return 0.0, 1.0, 0
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue), int(res.dof)


def holm(pvalues: list[float]) -> list[float]:
    """Holm step-down adjusted p-values: reject feature i at level alpha iff adjusted p_i <= alpha."""
    p = np.asarray(pvalues, float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out.tolist()


def check_numeric(ref: dict[str, Any], raw: list[Any] | np.ndarray) -> dict[str, Any]:
    """KS, PSI, missing and out-of-range rates of one numeric feature; histograms for the report."""
    values, _ = to_numeric(raw)
    present = values[~np.isnan(values)]
    missing = 1 - present.size / values.size if values.size else 0.0
    edges = ref["bins"]["edges"]
    ref_counts = np.asarray(ref["bins"]["counts"])
    cur_counts = bin_counts(present, edges)
    result: dict[str, Any] = {
        "test": "ks", "n": int(present.size), "missing_rate": float(missing),
        "missing_rate_ref": ref["missing_rate"],
        "out_of_range": float(np.mean((present < ref["min"]) | (present > ref["max"]))) if present.size else 0.0,
        "mean": float(present.mean()) if present.size else None, "mean_ref": ref["mean"],
        "psi": psi(ref_counts, cur_counts) if present.size else 0.0,
        "histogram": {"labels": _bin_labels(edges), "ref": _props(ref_counts), "cur": _props(cur_counts)},
    }
    if present.size:
        n_ref = int(round(ref["n"] * (1 - ref["missing_rate"])))
        result["statistic"], result["p_value"] = ks_test(ref["cdf"], n_ref, present)
    else:
        result["statistic"], result["p_value"] = None, 1.0
    return result


def check_categorical(ref: dict[str, Any], raw: list[Any] | np.ndarray) -> dict[str, Any]:
    """Chi-square, PSI, missing rate and unseen categories of one categorical feature."""
    labels = to_categorical(raw)
    present = [v for v in labels if v is not None]
    known = ref["categories"]
    names = [*known, OTHER]
    index = {name: i for i, name in enumerate(known)}
    cur_counts = np.zeros(len(names), dtype=np.int64)
    unseen: dict[str, int] = {}
    for value in present:
        i = index.get(value)
        if i is None:
            cur_counts[-1] += 1
            unseen[value] = unseen.get(value, 0) + 1
        else:
            cur_counts[i] += 1
    ref_counts = np.asarray([*known.values(), ref["other"]], dtype=np.int64)
    statistic, p, dof = chi2_homogeneity(ref_counts, cur_counts)
    top_unseen = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return {
        "test": "chi2", "n": len(present), "statistic": statistic, "p_value": p, "dof": dof,
        "missing_rate": 1 - len(present) / len(labels) if labels else 0.0,
        "missing_rate_ref": ref["missing_rate"], "out_of_range": 0.0,
        "psi": psi(ref_counts, cur_counts) if present else 0.0,
        "unseen": {k: v for k, v in top_unseen},
        "unseen_rate": (sum(unseen.values()) / len(present)) if present else 0.0,
        "histogram": {"labels": names, "ref": _props(ref_counts), "cur": _props(cur_counts)},
    }


def decide(results: list[dict[str, Any]], thresholds: dict[str, dict[str, float]], alpha: float) -> None:
    """Holm across all features' p-values, then the drift rule per feature (adds p_adjusted/drifted/reasons)."""
    adjusted = holm([r["p_value"] for r in results])
    for r, p_adj in zip(results, adjusted, strict=True):
        t = thresholds[r["name"]]
        r["p_adjusted"] = p_adj
        r["psi_threshold"] = t["psi"]
        reasons = []
        if p_adj <= alpha and r["psi"] >= t["psi"]:
            test = "KS" if r["test"] == "ks" else "chi-square"
            reasons.append(f"distribution changed: {test} p={p_adj:.2g} (Holm) <= {alpha:g}, "
                           f"PSI {r['psi']:.3f} >= {t['psi']:g}")
        rise = r["missing_rate"] - r["missing_rate_ref"]
        if rise > t["max_missing_increase"]:
            reasons.append(f"missing rate {r['missing_rate']:.1%} vs {r['missing_rate_ref']:.1%} in the reference")
        if r["out_of_range"] > t["max_out_of_range"]:
            reasons.append(f"{r['out_of_range']:.1%} of values outside the reference range")
        if r.get("unseen"):
            names = ", ".join(repr(k) for k in list(r["unseen"])[:5])
            r["note"] = f"{r['unseen_rate']:.1%} of values are categories not in the reference: {names}"
        r["reasons"] = reasons
        r["drifted"] = bool(reasons)


def _props(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    lo = ["-inf", *(f"{e:.4g}" for e in edges)]
    hi = [*(f"{e:.4g}" for e in edges), "inf"]
    return [f"[{a}, {b})" for a, b in zip(lo, hi, strict=True)]
