"""Slices of a suite (`accuracy.suites.<name>.slices`): every gate judged per slice, family-wise over the slices.

Why: an average that clears its threshold can hide a slice (a document type, a country, a size range) that does
not; a per-slice verdict catches it, but k slices are k chances of a wrong claim, so the risks are held over the
family (stats/slices.py has the statistics; this module wires them into a run).

* Sampling: each slice gets a quota of the suite's budget (`allocation` equal or proportional, at least
  `min_samples`, never more than the slice has); inside a slice the order is stratified by class as an unsliced
  suite's is, and the slices are interleaved so every prefix of the pre-drawn order holds each slice at its quota
  share (to within one sample). Shards take every N-th position of that order and `merge` feeds the recombined
  order to the same family, so a merged run decides exactly as an unsharded one.
* Levels: slice s is planned at the Bonferroni share of each gate's risks, alpha * w_s / W and beta * w_s / W
  (w_s its weight, 1 unless given; W the sum over the slices that take part). With `alpha_split: weights` that
  is the whole rule (weighted Bonferroni, fixed in advance: valid for every gate kind). With `alpha_split: holm`
  (the default) gates whose test yields anytime-valid p-values are additionally combined by (weighted) Holm
  step-down after every look: sequential proportion gates run the Ville SPRT (p = 1 / running max likelihood
  ratio, on both sides) instead of the truncated SPRT, and betting gates (custom scores, bounded MAE) give
  1 / running max capital. Holm on the same p-values rejects everything Bonferroni rejects and more, and on
  p-values valid at any stopping time it is valid at the stopping time (Holm's rejections only grow as the
  running p-values fall). Fixed-look gates (exact binomial, BCa bootstrap) and change gates stay at their
  Bonferroni share.
* Verdicts: a slice is a small suite (PASS when all its gates pass, FAIL when one fails); a slice with fewer than
  `min_samples` rows in the dataset is INCONCLUSIVE and takes no part in the family, and a slice whose gates
  passed earlier keeps sampling until it has `min_samples` (its PASS is never shown on fewer). The suite PASSes only when
  every slice passes (an intersection-union test: no correction is needed for the suite's false PASS, the
  family-wise control is what makes the slice *table* trustworthy and bounds the suite's false FAIL by beta),
  FAILs when some slice fails, and is INCONCLUSIVE otherwise. It stops when every slice is decided or the
  sample runs out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import UserError
from . import data, sampling
from .gates import FAIL, INCONCLUSIVE, PASS, Evaluator, _name, betting_gate, plan_gates
from .outputs import Output
from .stats import proportion
from .stats.slices import allocate
from .stats.sprt import Sprt
from .stats.sprt_design import looks_for, needed_cap

MAX_SLICES = 50
RANK = {FAIL: 0, INCONCLUSIVE: 1, PASS: 2}


@dataclass
class SlicePlan:
    """What a sliced suite decided before inference (stored in the record's plan; merge rebuilds the family)."""

    field: str
    names: list[str]  # slice names in code order
    sizes: list[int]  # rows per slice in the dataset
    quotas: list[int]  # samples drawn per slice (0 for a slice below min_samples)
    weights: list[float]
    min_samples: int
    alpha_split: str
    allocation: str
    plans: list[list[dict[str, Any]]]  # per slice its gate plans ([] for a slice below min_samples)
    bins: list[float] | None = None
    batches: list[int] = field(default_factory=list)  # samples per look of each slice (its truncated designs' batch)
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # slice per drawn position
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # dataset rows, pre-drawn order

    def eligible(self, s: int) -> bool:
        return bool(self.plans[s])

    def flat_plans(self) -> list[dict[str, Any]]:
        return [{**p, "slice": self.names[s]} for s, plans in enumerate(self.plans) for p in plans]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("codes", "order"):  # the record keeps each sample's slice in its outcomes
            d.pop(key)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], codes: list[int] | np.ndarray) -> SlicePlan:
        return cls(**{**d, "codes": np.asarray(codes, dtype=np.int64)})


# ---- planning -------------------------------------------------------------------------------------------------
def read_field(ref: Any, ds: data.Dataset, name: str, where: str) -> np.ndarray:
    """One value per row of the dataset's column `name` (the label column, or any other column/array)."""
    if name == ds.spec.label:
        return np.asarray(ds.labels)
    spec = replace(ref.spec, format=ref.format, inputs=(name,), batch_as="columns")
    try:
        fds = data.open_dataset(ref.path, spec, folder=ref.folder)
    except UserError as exc:
        raise UserError(f"cannot read the slice field '{name}': {exc.message}", where=f"{where}.field",
                        hint=exc.hint or "name a column (npz: an array) of the dataset") from None
    try:
        values = np.asarray(fds.columns(np.arange(len(fds)))[name])
    finally:
        fds.close()
    if values.ndim != 1 or len(values) != len(ds):
        raise UserError(f"slice field '{name}' has shape {values.shape}; one value per row is needed "
                        f"({len(ds)} rows)", where=f"{where}.field", hint="name a column with one value per sample")
    return values


def slice_codes(values: np.ndarray, bins: list[float] | None, labels: list[str] | None,
                where: str) -> tuple[np.ndarray, list[str]]:
    """(slice code per row, slice names): a field's distinct values, or the `bins` ranges of a numeric field."""
    if bins:
        try:
            x = values.astype(np.float64)
        except (TypeError, ValueError):
            raise UserError("slice field with `bins` must be numeric", where=f"{where}.bins",
                            hint="drop `bins` to slice by the field's values, or name a numeric field") from None
        if np.isnan(x).any():
            raise UserError(f"slice field has {int(np.isnan(x).sum())} missing (NaN) value(s)", where=f"{where}.field",
                            hint="fill them, or slice by another field")
        codes = np.searchsorted(np.asarray(bins, dtype=float), x, side="right").astype(np.int64)
        names = labels or [f"<{bins[0]:g}", *(f"[{a:g}, {b:g})" for a, b in zip(bins, bins[1:], strict=False)),
                           f">={bins[-1]:g}"]
        return codes, list(names)
    codes, names = data.label_codes(values)
    if len(names) > MAX_SLICES:
        raise UserError(f"slice field has {len(names)} distinct values; at most {MAX_SLICES} slices are judged",
                        where=f"{where}.field", hint="cut a numeric field into ranges with `bins:`, or slice by a "
                        "coarser field")
    return np.asarray(codes, dtype=np.int64), list(names)


def prepare_slices(cfg_slices: dict[str, Any], *, ref: Any, ds: data.Dataset, gates: list[dict[str, Any]],
                   class_codes: np.ndarray, classes: list[str], output: Output, sequential: bool, cap: int,
                   seed: int, batch_size: int, task: str, where: str) -> SlicePlan:
    """Slice codes, quotas, per-slice gate plans and the interleaved pre-drawn order (SlicePlan.codes is per
    drawn position, SlicePlan.order the dataset rows in that order)."""
    sw = f"{where}.slices"
    values = read_field(ref, ds, cfg_slices["field"], sw)
    codes, names = slice_codes(values, cfg_slices["bins"] or None, cfg_slices["labels"] or None, sw)
    return plan_slices(cfg_slices, codes=codes, names=names, gates=gates, class_codes=class_codes, classes=classes,
                       output=output, sequential=sequential, cap=cap, seed=seed, batch_size=batch_size, task=task,
                       where=where)


def plan_slices(cfg_slices: dict[str, Any], *, codes: np.ndarray, names: list[str], gates: list[dict[str, Any]],
                class_codes: np.ndarray, classes: list[str], output: Output, sequential: bool, cap: int, seed: int,
                batch_size: int, task: str, where: str) -> SlicePlan:
    """`prepare_slices` once each row's slice is known (no I/O: the Monte-Carlo benchmark plans with it)."""
    sw = f"{where}.slices"
    k = len(names)
    sizes = np.bincount(codes, minlength=k)
    given = cfg_slices["weights"] or {}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UserError(f"weights name slice(s) {', '.join(map(repr, unknown))} the field does not have",
                        where=f"{sw}.weights", hint=f"slices: {', '.join(names)}")
    if given and len(given) != k:
        missing = [n for n in names if n not in given]
        raise UserError(f"weights miss slice(s) {', '.join(map(repr, missing))}", where=f"{sw}.weights",
                        hint="give every slice a weight (or none: equal weights)")
    weights = [float(given.get(n, 1.0)) for n in names]
    min_n = int(cfg_slices["min_samples"])
    eligible = sizes >= min_n
    if not eligible.any():
        raise UserError(f"no slice has min_samples {min_n} samples (sizes: "
                        + ", ".join(f"{n} {c}" for n, c in zip(names, sizes.tolist(), strict=True)) + ")",
                        where=f"{sw}.min_samples", hint="lower min_samples, use coarser slices or a larger test set")
    budget = min(cap, int(sizes[eligible].sum()))
    alloc = np.zeros(k, dtype=np.int64)
    alloc[eligible] = allocate(sizes[eligible], budget, min_per_slice=min_n, policy=cfg_slices["allocation"])
    short = [names[s] for s in np.flatnonzero(eligible) if alloc[s] < min_n]
    if short:
        raise UserError(f"max_samples {cap} cannot give each of the {int(eligible.sum())} slices min_samples {min_n} "
                        f"(short: {', '.join(short)})", where=f"{where}.max_samples",
                        hint=f"raise max_samples to >= {min_n * int(eligible.sum())} or lower min_samples")
    total_w = sum(w for w, e in zip(weights, eligible.tolist(), strict=True) if e)
    batches = [max(1, round(batch_size * int(q) / budget)) for q in alloc.tolist()]
    plans: list[list[dict[str, Any]]] = []
    for s in range(k):
        if not eligible[s]:
            plans.append([])
            continue
        share = weights[s] / total_w
        in_slice = class_codes[codes == s]
        counts = np.bincount(in_slice, minlength=len(classes))
        prevalence = {c: int(n) / len(in_slice) for c, n in zip(classes, counts.tolist(), strict=True)
                      if n or task == "regression"}
        if task == "regression":
            prevalence = {"all": 1.0}
        split = [{**g, "alpha": g["alpha"] * share, "beta": g["beta"] * share} for g in gates]
        quota = int(alloc[s])
        try:
            ville = cfg_slices["alpha_split"] == "holm" and sequential
            # Holm + sequential: proportion gates become Ville SPRTs, so no truncated design is computed for them
            ps = plan_gates(split, sequential=sequential and not ville, available=int(sizes[s]), cap=quota,
                            prevalence=prevalence, where=where, output=output,
                            batch_size=batches[s])
            if ville:
                ps = [_ville(p, quota, batches[s], prevalence, where, i)
                      for i, p in enumerate(ps)]
        except UserError as exc:
            raise UserError(f"slice '{names[s]}' ({quota} of its {int(sizes[s])} samples, its share {share:.3g} of "
                            f"alpha and beta): {exc.message}", where=exc.where,
                            hint=(exc.hint or "") + "; or give the slice more samples (max_samples, allocation) or "
                            "fewer slices") from None
        for p in ps:
            # the gate's family-wise levels (beta already split over the suite's gates by plan_gates)
            p["family"] = {"split": cfg_slices["alpha_split"], "share": share, "alpha": p["alpha"] / share,
                           "beta": p["beta"] / share}
        plans.append(ps)
        if not sequential:  # a fixed-look suite draws what its looks need (and min_samples)
            alloc[s] = min(quota, max(min_n, *(int(p["needed"] or quota) for p in ps)))
    order, pos_codes = interleave(codes, class_codes, alloc, seed)
    sp = SlicePlan(cfg_slices["field"], names, sizes.tolist(), alloc.tolist(), weights, min_n,
                   cfg_slices["alpha_split"], cfg_slices["allocation"], plans, cfg_slices["bins"] or None, batches,
                   pos_codes, order)
    return sp


def _ville(p: dict[str, Any], quota: int, batch: int, prevalence: dict[str, float], where: str,
           i: int) -> dict[str, Any]:
    """A sequential proportion plan as the Ville SPRT (anytime-valid p-values for Holm), with the samples it needs
    for its beta at the slice's Bonferroni share computed exactly (Holm only adds rejections)."""
    if p["method"] == "betting":  # planned as a fixed look above: back to sequential
        return {**p, "sequential": True}
    if p["method"] == "mcnemar-exact":
        return {**p, "method": "mcnemar-sprt"}
    if p["method"] not in ("truncated-sprt", "binomial-exact"):
        return p
    share = prevalence.get(p["class"], 1.0) if p["class"] is not None and p["metric"] in ("precision", "recall") \
        else 1.0
    test = Sprt(p["threshold"], p["threshold"] + p["margin"], p["alpha"], p["beta"])
    looks = looks_for(quota, batch, share)
    need_trials = needed_cap(test, looks, p["threshold"] + p["margin"], 1 - p["beta"])
    if need_trials is None:
        raise UserError(f"gate {_name(p)} (Ville SPRT, alpha {p['alpha']:.3g}, beta {p['beta']:.3g}) cannot deliver "
                        f"its beta within {quota} samples", where=f"{where}.gates[{i}]",
                        hint="widen the margin, raise max_samples, or use alpha_split: weights (truncated SPRT)")
    q = {k: v for k, v in p.items() if k not in ("design", "critical", "fallback")}
    q.update(method="sprt", needed=min(quota, math.ceil(need_trials / share)))
    return q


def interleave(codes: np.ndarray, class_codes: np.ndarray, quotas: np.ndarray,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(dataset rows in pre-drawn order, slice code per position): each slice's first `quota` rows of its own
    class-stratified order, the slices interleaved by (rank + phase) / quota so every prefix holds each slice
    at its quota share."""
    rng = np.random.default_rng(sampling.derive_seed("slices/1", str(seed)))
    rows, keys, owner = [], [], []
    for s, q in enumerate(np.asarray(quotas).tolist()):
        if q <= 0:
            continue
        idx = np.flatnonzero(codes == s)
        inner = sampling.stratified_order_codes(class_codes[idx], int(rng.integers(2**31)))
        rows.append(idx[inner[:q]])
        keys.append((np.arange(q) + rng.random()) / q)
        owner.append(np.full(q, s, dtype=np.int64))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    r, kk, o = np.concatenate(rows), np.concatenate(keys), np.concatenate(owner)
    order = np.lexsort((o, kk))
    return r[order].astype(np.int64), o[order]


def holm_levels(pvalues: list[float] | np.ndarray, level: float, weights: np.ndarray) -> np.ndarray:
    """Weighted Holm step-down as stats.slices.holm, returning for each hypothesis the level of the step that
    rejected it (NaN: not rejected)."""
    p, w = np.asarray(pvalues, dtype=float), np.asarray(weights, dtype=float)
    out = np.full(p.size, np.nan)
    alive = np.ones(p.size, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        j = idx[np.argmin(p[idx] / w[idx])]
        step = w[j] * level / w[idx].sum()
        if p[j] > step:
            break
        out[j], alive[j] = step, False
    return out


# ---- evaluation -----------------------------------------------------------------------------------------------
@dataclass
class SliceResult:
    """One row of the slice table (accuracy.json `slices`, worst first)."""

    name: str
    size: int  # rows in the dataset
    quota: int  # samples drawn for it
    n: int  # samples judged
    verdict: str
    reason: str
    metric: str | None  # the gate the row's numbers are from (the failing one, else the weakest)
    estimate: float | None
    bound: float | None  # the one-sided bound the verdict rests on
    threshold: float | None
    direction: str | None
    pvalue_pass: float | None  # the PASS-side p-value combined over the slices (None: no p-value, Bonferroni)
    pvalue_fail: float | None
    alpha: float | None  # the level the row's gate was judged at: its Bonferroni share, or its Holm step's level
    beta: float | None
    decided_by: str  # "holm", "bonferroni", "weights" or "min_samples"
    gates: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SliceFamily:
    """The Evaluator interface (feed / finish / verdict / gate_records) over one Evaluator per slice."""

    def __init__(self, sp: SlicePlan, output: Output | str, on_error: str, *, slice_of: np.ndarray, seed: int = 0,
                 max_errors: int | None = None):
        self.sp, self.on_error, self.max_errors = sp, on_error, max_errors
        self.slice_of = np.asarray(slice_of, dtype=np.int64)
        k = len(sp.names)
        self.expected = np.bincount(self.slice_of, minlength=k)  # positions each slice will be fed
        # drawn + 1: a slice's Evaluator never closes itself at its last sample; the family does, after Holm
        self.evs: list[Evaluator | None] = [
            Evaluator(sp.plans[s], output, on_error, drawn=int(self.expected[s]) + 1, seed=seed)
            if sp.eligible(s) else None for s in range(k)]
        probe = next(e for e in self.evs if e is not None)
        self.out: Output = probe.out
        self.fed = 0
        self.errors = 0
        self.received = np.zeros(k, dtype=np.int64)
        # looks per slice every `batch` of its own samples, whatever the suite's batches hold of it
        self.batches = [int(sp.batches[s]) if s < len(sp.batches) else 1 for s in range(k)]
        self._buf: list[dict[str, list[Any]]] = [
            {"labels": [], "preds": [], "errors": [], "latency": [], "base": []} for _ in range(k)]
        self._with_base = False
        self.verdict: str | None = None
        self.reason = ""
        self.stopped_at: int | None = None
        # running extremes of each Ville SPRT's log-LR: (slice, gate) -> [max on the PASS view, min on the FAIL view]
        self._llr: dict[tuple[int, int], list[float]] = {}
        # (slice, gate) decided by Holm beyond its Bonferroni share -> (side, the level of its Holm step)
        self._holm_level: dict[tuple[int, int], tuple[str, float]] = {}

    @property
    def n(self) -> list[int]:
        return [len(e.labels) if e is not None else 0 for e in self.evs]

    def feed(self, labels: list[Any], preds: list[Any], errors: list[str | None], latency: list[float],
             base: list[Any] | None = None, custom: dict[str, list[float | None]] | None = None) -> str | None:
        if self.verdict is not None:
            return self.verdict
        m = len(labels)
        codes = self.slice_of[self.fed:self.fed + m]
        self.fed += m
        self.errors += sum(e is not None for e in errors)
        self._with_base = self._with_base or base is not None
        for s in np.unique(codes).tolist():
            ev = self.evs[s]
            if ev is None or ev.verdict is not None:
                continue
            idx = np.flatnonzero(codes == s).tolist()
            buf = self._buf[s]
            for key, xs in (("labels", labels), ("preds", preds), ("errors", errors), ("latency", latency),
                            ("base", base if base is not None else [None] * m)):
                buf[key] += [xs[i] for i in idx]
            for ref, v in (custom or {}).items():
                buf.setdefault("custom:" + ref, []).extend(v[i] for i in idx)
            self.received[s] += len(idx)
            self._drain(s, ev, final=self.received[s] >= self.expected[s])
        if self.on_error == "exclude" and self.max_errors is not None and self.errors > self.max_errors:
            for ev in self.evs:
                if ev is not None and ev.verdict is None:
                    ev._close_undecided(len(ev.labels), "too many prediction errors")
                    ev._stop(INCONCLUSIVE, "too many prediction errors", len(ev.labels))
            self._stop(INCONCLUSIVE, f"{self.errors} samples raised in predict: more than accuracy.max_error_rate "
                       f"allows ({self.max_errors})")
            return self.verdict
        self._holm()
        for s, ev in enumerate(self.evs):
            if ev is not None and ev.verdict is None:
                self._settle(s, ev)
                self._hold(s, ev)
        self._conclude(final=self.fed >= len(self.slice_of))
        return self.verdict

    def _drain(self, s: int, ev: Evaluator, final: bool) -> None:
        """Feed slice s's buffered samples to its Evaluator in looks of exactly its planned batch (a truncated
        SPRT's design is exact at those looks), the remainder once the slice's samples are all in."""
        buf, b = self._buf[s], self.batches[s]
        while ev.verdict is None and (len(buf["labels"]) >= b or (final and buf["labels"])):
            take = min(b, len(buf["labels"]))
            part = {key: xs[:take] for key, xs in buf.items()}
            for key in buf:
                del buf[key][:take]
            ev.feed(part["labels"], part["preds"], part["errors"], part["latency"],
                    part["base"] if self._with_base else None,
                    {key.split(":", 1)[1]: v for key, v in part.items() if key.startswith("custom:")})
            self._track(s)
            self._hold(s, ev)

    def finish(self) -> str:
        if self.verdict is None:
            for s, ev in enumerate(self.evs):
                if ev is not None and ev.verdict is None:
                    self._drain(s, ev, final=True)
            self._holm()
            for s, ev in enumerate(self.evs):
                if ev is not None and ev.verdict is None:
                    self._settle(s, ev)
                    if ev.verdict is None:
                        ev.finish()
            self._conclude(final=True)
        return self.verdict or INCONCLUSIVE

    # ---- the family -------------------------------------------------------------------------------------------
    def _track(self, s: int) -> None:
        ev = self.evs[s]
        assert ev is not None
        for i, p in enumerate(ev.plans):
            st = ev.states[i]
            if p["method"] != "sprt" or (st.verdict is not None and st.used != len(ev.labels)):
                continue  # a gate decided at an earlier look keeps the p-value it was decided with
            test = Sprt(p["threshold"], p["threshold"] + p["margin"], p["alpha"], p["beta"])
            kp, tp = ev._counts[i][ev.pass_view]
            kf, tf = ev._counts[i][ev.fail_view]
            ext = self._llr.setdefault((s, i), [0.0, 0.0])
            ext[0] = max(ext[0], float(test.llr(kp, tp)))
            ext[1] = min(ext[1], float(test.llr(kf, tf)))

    def pvalues(self, s: int, i: int) -> tuple[float | None, float | None]:
        """(PASS-side, FAIL-side) p-value of slice s's gate i: anytime-valid for the Ville SPRT and betting gates,
        exact at the fixed look for the exact binomial (PASS side); None where the test gives none."""
        ev = self.evs[s]
        if ev is None:
            return None, None
        p = ev.plans[i]
        if p["method"] == "sprt":
            lo, hi = self._llr.get((s, i), [0.0, 0.0])
            return min(1.0, math.exp(-lo)), min(1.0, math.exp(hi))
        if p["method"] == "betting":
            views = ev._bounded[i]
            gate = ev._betting[i]
            return gate.pvalues(views[ev.pass_view])[0], gate.pvalues(views[ev.fail_view])[1]
        if p["method"] == "binomial-exact":
            k, t = ev.states[i].counts.get(ev.pass_view, (0, 0)) if ev.states[i].counts else (0, 0)
            return (proportion.pvalue_greater(k, t, p["threshold"]) if t else None), None
        return None, None

    def _holm(self) -> None:
        """Weighted Holm over the slices, per gate and side, on the p-values of the gates that have them."""
        if self.sp.alpha_split != "holm":
            return
        members = [s for s, ev in enumerate(self.evs) if ev is not None]
        for i, p0 in enumerate(self.evs[members[0]].plans):  # type: ignore[union-attr]
            if p0["method"] not in ("sprt", "betting"):
                continue
            w = np.asarray([self.sp.weights[s] for s in members])
            pv = [self.pvalues(s, i) for s in members]
            fam = p0["family"]
            fail_level = fam["beta"] * (0.5 if p0["method"] == "betting" else 1.0)  # betting's FAIL test: beta / 2
            passed = holm_levels([a if a is not None else 1.0 for a, _ in pv], fam["alpha"], w)
            failed = holm_levels([b if b is not None else 1.0 for _, b in pv], fail_level, w)
            for j, s in enumerate(members):
                ev = self.evs[s]
                assert ev is not None
                st = ev.states[i]
                hit_fail, hit_pass = not math.isnan(failed[j]), not math.isnan(passed[j])
                if st.verdict is not None or ev.verdict is not None or not (hit_pass or hit_fail):
                    continue
                st.verdict, st.used = (FAIL if hit_fail else PASS), len(ev.labels)
                self._holm_level[(s, i)] = (st.verdict, float(failed[j] if hit_fail else passed[j]))
                if p0["method"] == "sprt":
                    st.counts = {view: tuple(c) for view, c in ev._counts[i].items()}
                pval = pv[j][1] if hit_fail else pv[j][0]
                st.note = (f"{st.verdict} by Holm's step-down over {len(members)} slices (p {pval:.3g} <= "
                           f"{self._holm_level[(s, i)][1]:.3g} at its step; family "
                           f"{'beta' if hit_fail else 'alpha'} {fail_level if hit_fail else fam['alpha']:.3g})")

    def _hold(self, s: int, ev: Evaluator) -> None:
        """A slice PASSes only on at least `min_samples` samples: an earlier PASS of its gates (valid as it is)
        keeps the slice sampling until then. A FAIL needs no minimum."""
        n = len(ev.labels)
        if ev.verdict == PASS and n < self.sp.min_samples and n < self.expected[s]:
            ev.verdict, ev.reason, ev.stopped_at = None, "", None

    def _settle(self, s: int, ev: Evaluator) -> None:
        """A slice's verdict from its gates (as Evaluator.feed rules), and its close when its samples ran out."""
        n = len(ev.labels)
        decided = [st.verdict for st in ev.states]
        if FAIL in decided:
            failed = [_name(st.plan, self.out) for st in ev.states if st.verdict == FAIL]
            ev._close_undecided(n, f"the slice stopped when {', '.join(failed)} failed")
            ev._stop(FAIL, f"gate {', '.join(failed)} failed", n)
        elif all(v == PASS for v in decided):
            ev._stop(PASS, "every gate passed", n)
        elif None not in decided:
            ev._stop(INCONCLUSIVE, "a gate could not be decided", n)
        elif n >= self.expected[s]:
            ev.finish()

    def slice_verdicts(self) -> list[str | None]:
        return [ev.verdict if ev is not None else INCONCLUSIVE for ev in self.evs]

    def _conclude(self, final: bool) -> None:
        verdicts = self.slice_verdicts()
        if None in verdicts and not final:
            return
        verdicts = [v or INCONCLUSIVE for v in verdicts]
        failed = [self.sp.names[s] for s, v in enumerate(verdicts) if v == FAIL]
        open_ = [self.sp.names[s] for s, v in enumerate(verdicts) if v == INCONCLUSIVE]
        if failed:
            why = "; ".join(f"'{self.sp.names[s]}': {self.evs[s].reason}" for s, v in enumerate(verdicts)  # type: ignore[union-attr]
                            if v == FAIL)
            self._stop(FAIL, f"slice(s) {', '.join(map(repr, failed))} failed ({why})")
        elif open_:
            small = [self.sp.names[s] for s in range(len(verdicts)) if self.evs[s] is None]
            extra = f"; fewer than min_samples {self.sp.min_samples}: {', '.join(map(repr, small))}" if small else ""
            self._stop(INCONCLUSIVE, f"slice(s) {', '.join(map(repr, open_))} undecided{extra}")
        else:
            self._stop(PASS, f"every slice passed ({len(verdicts)} slices)")

    def _stop(self, verdict: str, reason: str) -> None:
        self.verdict, self.reason, self.stopped_at = verdict, reason, self.fed

    # ---- results ----------------------------------------------------------------------------------------------
    def gate_records(self) -> list[dict[str, Any]]:
        """Every gate of every slice (slice key and name in the message); a slice below min_samples gets one
        INCONCLUSIVE record per gate."""
        out: list[dict[str, Any]] = []
        template = next(e for e in self.evs if e is not None).plans
        for s, ev in enumerate(self.evs):
            name = self.sp.names[s]
            if ev is None:
                for p in template:
                    rec = {k: p.get(k) for k in ("metric", "kind", "class", "class_configured", "threshold",
                                                 "direction", "margin", "score_name")}
                    rec.update(alpha=None, beta=None, method=None, verdict=INCONCLUSIVE, samples_used=0,
                               estimate=None, interval=[None, None], bound=None, fixed_n=None, samples_saved=None,
                               slice=name, class_name=None, gates=p.get("gates", 1),
                               message=f"slice '{name}': {self.sp.sizes[s]} samples, fewer than min_samples "
                               f"{self.sp.min_samples}: INCONCLUSIVE (not judged)")
                    out.append(rec)
                continue
            for i, rec in enumerate(ev.gate_records()):
                if (s, i) in self._holm_level:  # bounds and risks at the level Holm decided it with
                    rec = self._holm_record(ev, i, *self._holm_level[(s, i)])
                pp, pf = self.pvalues(s, i)
                rec["slice"] = name
                rec["family"] = {**ev.plans[i]["family"], "pvalue_pass": pp, "pvalue_fail": pf}
                rec["message"] = f"slice '{name}': {rec['message']}"
                out.append(rec)
        return out

    def _holm_record(self, ev: Evaluator, i: int, side: str, level: float) -> dict[str, Any]:
        """The gate's record with the risk of its side set to the level of its Holm step (the bound shown is then
        the one the verdict rests on, e.g. a lower bound >= min at that level)."""
        st = ev.states[i]
        key, value = ("alpha", level) if side == PASS else ("beta", level / 0.5 if st.plan["method"] == "betting"
                                                              else level)
        plan = {**st.plan, key: value}
        twin = replace(st, plan=plan)
        saved_gate = ev._betting.get(i)
        ev.states[i] = twin
        if saved_gate is not None:
            ev._betting[i] = betting_gate(plan)
        try:
            rec = ev._record(twin)
        finally:
            ev.states[i] = st
            if saved_gate is not None:
                ev._betting[i] = saved_gate
        rec["holm_level"] = level
        return rec

    def slice_records(self) -> list[dict[str, Any]]:
        """The slice table, worst first: FAIL, then INCONCLUSIVE, then PASS; within each by the headroom of the
        row's estimate over its threshold."""
        rows: list[SliceResult] = []
        recs = self.gate_records()
        for s, name in enumerate(self.sp.names):
            ev = self.evs[s]
            mine = [r for r in recs if r["slice"] == name]
            if ev is None:
                rows.append(SliceResult(name, self.sp.sizes[s], 0, 0, INCONCLUSIVE,
                                        f"{self.sp.sizes[s]} samples < min_samples {self.sp.min_samples}", None,
                                        None, None, None, None, None, None, None, None, "min_samples",
                                        [_short(r) for r in mine]))
                continue
            lead = next((r for r in mine if r["verdict"] == FAIL), None) or min(mine, key=_headroom)
            i = mine.index(lead)
            pp, pf = self.pvalues(s, i)
            holm_gate = self.sp.alpha_split == "holm" and ev.plans[i]["method"] in ("sprt", "betting")
            bound = lead.get("bound")
            rows.append(SliceResult(
                name, self.sp.sizes[s], self.sp.quotas[s], len(ev.labels), ev.verdict or INCONCLUSIVE, ev.reason,
                lead.get("score_name") or lead["metric"], lead.get("estimate"),
                bound.get("value") if isinstance(bound, dict) else None, lead.get("threshold"), lead.get("direction"),
                pp, pf, lead.get("alpha"), lead.get("beta"),
                "holm" if holm_gate else ("weights" if self.sp.alpha_split == "weights" else "bonferroni"),
                [_short(r) for r in mine]))
        rows.sort(key=lambda r: (RANK.get(r.verdict, 1), _headroom_of(r.estimate, r.threshold, r.direction)))
        return [r.to_dict() for r in rows]


def _headroom_of(est: Any, thr: Any, direction: Any) -> float:
    if est is None or thr is None:
        return math.inf
    return (est - thr) if direction != "<=" else (thr - est)


def _headroom(r: dict[str, Any]) -> float:
    return _headroom_of(r.get("estimate"), r.get("threshold"), r.get("direction"))


def _short(r: dict[str, Any]) -> dict[str, Any]:
    fam = r.get("family") or {}
    bound = r.get("bound")
    return {"metric": r.get("score_name") or r["metric"], "kind": r["kind"], "class": r.get("class"),
            "verdict": r["verdict"], "estimate": r.get("estimate"),
            "bound": bound.get("value") if isinstance(bound, dict) else None, "threshold": r.get("threshold"),
            "method": r.get("method"), "samples_used": r.get("samples_used"),
            "pvalue_pass": fam.get("pvalue_pass"), "pvalue_fail": fam.get("pvalue_fail")}


def family_for(sp: SlicePlan, output: Output | str, on_error: str, *, slice_of: np.ndarray, seed: int,
               max_errors: int | None) -> SliceFamily:
    return SliceFamily(sp, output, on_error, slice_of=slice_of, seed=seed, max_errors=max_errors)
