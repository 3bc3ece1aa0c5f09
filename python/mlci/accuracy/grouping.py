"""Grouped samples (`artifacts.data.<name>.group: FIELD`): draw whole groups, judge every gate on groups.

Augmented copies of one sample, several images of one document, several rows of one patient are not independent:
a test that counts each row as an independent trial overstates the evidence by about 1 + (m - 1) * ICC and
PASSes a model at the threshold far more often than alpha (tests/benchmarks/bench_groups.py measures it). With
a group field:

* the sample order draws whole groups, stratified by each group's majority class (`sampling.group_order`), and
  the drawn prefix ends at a group boundary; a shard takes every N-th *group*, so no group is split across
  shards and `merge` re-feeds the groups in the same order;
* every look sees only complete groups (a batch that ends inside a group waits for the rest of it);
* accuracy / precision / recall and bounded-mean gates (custom scores, mae with a bound) use the anytime-valid
  cluster betting test (stats/cluster.py `ClusterBettingGate`): false PASS <= alpha at any look, whatever the
  within-group correlation;
* every other gate (f1, macro_f1, auc, latency, unbounded mae/rmse) and every change gate is judged once, on all
  drawn groups, by a BCa bootstrap that resamples whole groups (`cluster_interval`; approximate, fixed look);
* beta is not planned: the groups a gate needs depend on the within-group correlation, unknown before the run.
  The FAIL test still bounds a false FAIL at threshold + margin by beta / 2 (betting gates); a model between
  that and INCONCLUSIVE is the price of not knowing it.

The hooks elsewhere are small: data.DataSpec.group, engine.prepare (order, drawn, shards), gates.Evaluator
(`groups`: the group label of every fed position; `_look` and `_record` call `look` and `record` here),
the record's `sample.groups` and `outcomes.groups` (cli.py, merge.py) and the report's sample line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import PROPORTION_METRICS
from ..errors import UserError
from . import metrics, sampling
from .data import Dataset, py
from .stats.cluster import ClusterBettingGate, Clustered, cluster_interval, design_effect

BETTING, BOOTSTRAP, PAIRED = "cluster-betting", "cluster-bootstrap", "cluster-paired-bootstrap"
METHODS = (BETTING, BOOTSTRAP, PAIRED)
# a bootstrap over fewer groups has one-sided levels further from nominal, refused at plan time (bench_groups.py B:
# accuracy at its threshold 0.9, groups of 10, ICC 0.5, 2,000 runs: false PASS for alpha 0.05 0.068 at 30 groups,
# 0.058 at 50, 0.053 at 100, 0.052 at 200, 0.060 at 300 -- as approximate as the per-sample bootstrap gates)
MIN_GROUPS = 100
VALIDITY = {BETTING: "anytime-valid (group level)", BOOTSTRAP: "approximate, fixed look (cluster bootstrap)",
            PAIRED: "approximate, fixed look (paired cluster bootstrap)"}
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


# ---------------------------------------------------------------------------------------------- the data
def read_column(ds: Dataset, name: str, where: str) -> np.ndarray:
    """The group column of an opened dataset, one value per row; a missing column or an empty value is a
    UserError naming the key and the columns present."""
    fmt = ds.format
    if fmt == "folder":
        return read_column(ds.table, name, where)  # type: ignore[attr-defined] - the folder's labels table
    present: list[str]
    values: Any = None
    if fmt == "npz":
        with np.load(ds.path, allow_pickle=False) as z:
            present = list(z.files)
            if name in present:
                values = np.asarray(z[name])
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        present = list(pq.ParquetFile(ds.path).schema_arrow.names)
        if name in present:
            col = pq.read_table(ds.path, columns=[name])[name]
            if col.null_count:
                raise UserError(f"dataset {ds.path}: {col.null_count} row(s) have no group in column '{name}'",
                                where=where, hint="every sample needs a group (a sample alone is its own group)")
            values = np.asarray(col.to_pylist(), dtype=object)
    else:  # csv / jsonl: the indexed rows
        present = list(getattr(ds, "header", []))
        if name in present:
            rows = [ds._row(i) for i in range(len(ds))]  # type: ignore[attr-defined]
            missing = [i for i, r in enumerate(rows) if r.get(name) in (None, "")]
            if missing:
                raise UserError(f"dataset {ds.path}: {len(missing)} row(s) have no group in field '{name}', e.g. row "
                                f"{missing[0]}", where=where,
                                hint="every sample needs a group (a sample alone is its own group)")
            values = np.asarray([r[name] for r in rows], dtype=object)
    if values is None:
        raise UserError(f"group field '{name}' missing from dataset {Path(ds.path).name}", where=where,
                        hint=f"expected a column (npz: an array) naming each sample's group; present: "
                        f"{', '.join(map(str, present)) or '(none)'}")
    values = values.reshape(-1) if values.ndim else values
    if values.ndim != 1 or len(values) != len(ds):
        raise UserError(f"group field '{name}' has shape {values.shape}, expected one value per sample ({len(ds)})",
                        where=where, hint="one group id per row")
    return np.asarray([str(py(v)) for v in values.tolist()], dtype=object)


@dataclass(frozen=True)
class Groups:
    """A dataset's groups and the whole-group sample order drawn from them."""

    field: str
    labels: np.ndarray  # group label (str) of every dataset row
    order: np.ndarray  # dataset rows, whole groups one after the other
    bounds: np.ndarray  # where each drawn group starts in `order`
    count: int  # groups in the dataset
    max_size: int
    mean_size: float

    @property
    def ends(self) -> np.ndarray:
        return np.append(self.bounds[1:], len(self.order)).astype(np.int64)

    def drawn(self, cap: int, where: str) -> int:
        """Rows in the largest whole-group prefix of at most `cap` rows."""
        ok = self.ends[self.ends <= cap]
        if not ok.size:
            raise UserError(f"max_samples {cap} is smaller than the first drawn group ({int(self.ends[0])} samples)",
                            where=where, hint="raise max_samples: a group is drawn whole or not at all")
        return int(ok[-1])

    def groups_in(self, drawn: int) -> int:
        return int(np.sum(self.ends <= drawn))

    def shard_positions(self, drawn: int, shard: tuple[int, int] | None) -> np.ndarray:
        """Positions a shard runs: every N-th drawn group, whole (a group is never split across shards)."""
        if shard is None:
            return np.arange(drawn)
        k, n = shard
        g = self.groups_in(drawn)
        take = np.arange(k - 1, g, n)
        if not take.size:
            return np.zeros(0, dtype=np.int64)
        starts, ends = self.bounds[take], self.ends[take]
        return np.concatenate([np.arange(a, b) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)])

    def info(self, drawn: int) -> dict[str, Any]:
        return {"field": self.field, "drawn": self.groups_in(drawn), "available": self.count, "largest": self.max_size}

    def at(self, positions: np.ndarray) -> list[str]:
        """Group labels of positions in the drawn order."""
        return [str(v) for v in self.labels[self.order[np.asarray(positions, dtype=np.int64)]].tolist()]


def draw(ds: Dataset, field: str, codes: np.ndarray, seed: int, where: str) -> Groups:
    """Read the group column and draw whole groups, stratified by each group's majority class."""
    labels = read_column(ds, field, f"{where}.group")
    order, bounds = sampling.group_order(codes, labels, seed)
    _, sizes = np.unique(labels, return_counts=True)
    return Groups(field, labels, order, bounds, int(len(sizes)), int(sizes.max()), float(sizes.mean()))


# ---------------------------------------------------------------------------------------------- planning
def regroup(plans: list[dict[str, Any]], groups: Groups, *, sequential: bool, drawn: int, where: str) -> None:
    """Turn each (already checked) plan into its group-level test. The ungrouped plan's sample needs stay as
    necessary conditions (groups hold at most the evidence of their samples); every grouped gate may use every
    drawn group."""
    n_groups = groups.groups_in(drawn)
    for i, p in enumerate(plans):
        was = p["method"]
        if p["kind"] == "change":
            method = PAIRED
        elif p["metric"] in PROPORTION_METRICS or was == "betting":
            method = BETTING
        else:
            method = BOOTSTRAP
        if method != BETTING and n_groups < MIN_GROUPS:
            raise UserError(f"gate {p['metric']} on grouped samples is judged by a bootstrap over groups, which needs "
                            f"at least {MIN_GROUPS} groups, but {n_groups} are drawn", where=f"{where}.gates[{i}]",
                            hint="raise max_samples or use a test set with more groups")
        p.update(method=method, needed=drawn, achievable_beta=None, fallback=None, sequential=sequential,
                 grouped={"field": groups.field, "ungrouped_method": was, "max_size": groups.max_size,
                          "mean_size": groups.mean_size, "groups_drawn": n_groups})
        p.pop("design", None)


# ---------------------------------------------------------------------------------------------- looks
def complete(labels: Any, n: int) -> int:
    """The longest prefix of the first n fed positions that holds only whole groups."""
    total = len(labels)
    n = min(n, total)
    if n <= 0:
        return 0
    if n == total:
        return n
    j = n
    while j > 0 and labels[j] == labels[j - 1]:
        j -= 1
    return j


def rows_by_group(labels: list[Any]) -> list[np.ndarray]:
    """Row indices of each group, groups in first-seen order."""
    if not labels:
        return []
    _, first, inverse = np.unique(np.asarray(labels, dtype=object).astype(str), return_index=True,
                                  return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[inverse.reshape(-1)]
    by = np.argsort(codes, kind="stable")
    return np.split(by, np.cumsum(np.bincount(codes))[:-1])


def _units(ev: Any, i: int, c: int, view: str) -> tuple[np.ndarray, np.ndarray]:
    """(score, counts) per sample over the first c positions on the higher-is-better [0, 1] scale, errored
    samples as the view says (lo worst, hi best, excl not counted)."""
    p = ev.plans[i]
    if p["metric"] in PROPORTION_METRICS:
        y, pr, keep = ev._view(0, c, view)
        trial = keep
        if p.get("class") is not None:
            code = ev._code(p["class"])
            trial = keep & ((y == code) if p["metric"] == "recall" else (pr == code))
        return (trial & (pr == y)).astype(float), trial.astype(float)
    vals = np.asarray(ev._bounded[i]["hi" if view == "hi" else "lo"][:c], dtype=float)
    counts = np.ones(c) if view != "excl" else np.asarray([e is None for e in ev.errors[:c]], dtype=float)
    return (vals if p["direction"] == ">=" else 1 - vals), counts


def _codes(ev: Any) -> np.ndarray:
    """The fed positions' groups as integer codes in first-seen order, computed once per evaluator: groups are
    contiguous, so the groups of a prefix [0, c) are the codes 0 .. codes[c - 1]."""
    codes = getattr(ev, "_group_codes", None)
    if codes is None or len(codes) != len(ev.groups):
        groups = rows_by_group(list(ev.groups))
        codes = np.empty(len(ev.groups), dtype=np.int64)
        for j, rows in enumerate(groups):
            codes[rows] = j
        ev._group_codes = codes
    return codes


def _clustered(ev: Any, i: int, c: int, view: str) -> Clustered:
    s, t = _units(ev, i, c, view)
    if c == 0:
        return Clustered(np.zeros(0), np.zeros(0))
    codes = _codes(ev)[:c]
    k = int(codes[-1]) + 1
    return Clustered(np.bincount(codes, weights=s * t, minlength=k), np.bincount(codes, weights=t, minlength=k))


def betting_gate(p: dict[str, Any]) -> ClusterBettingGate:
    scale = p.get("bound") or 1.0
    thr, margin = p["threshold"] / scale, p["margin"] / scale
    m0 = thr if p["direction"] == ">=" else 1 - thr
    g = p["grouped"]
    return ClusterBettingGate(m0, margin, p["alpha"], p["beta"], g["max_size"], g["mean_size"])


def look(ev: Any, n: int) -> None:
    """Decide the grouped gates on the whole groups among the first n fed positions."""
    c = complete(ev.groups, n)
    if c == 0:
        return
    last = n >= ev.drawn
    for i, s in enumerate(ev.states):
        p = s.plan
        if s.verdict is not None or p["method"] not in METHODS:
            continue
        if p["method"] == BETTING:
            if not p.get("sequential", True) and not last:
                continue
            v = betting_gate(p).evaluate(_clustered(ev, i, c, ev.pass_view), _clustered(ev, i, c, ev.fail_view))
            if v.verdict is not None:  # undecided at the last look: the evaluator closes it INCONCLUSIVE
                s.verdict, s.used = v.verdict, c
        elif last:
            s.extra = _bootstrap(ev, p, c) if p["method"] == BOOTSTRAP else _paired(ev, p, c)
            s.verdict, s.used = s.extra["verdict"], c


# ---------------------------------------------------------------------------------------------- bootstraps
def _metric(ev: Any, p: dict[str, Any], c: int, view: str, which: str = "cand") -> tuple[Callable, np.ndarray]:
    """(fn(rows) -> the metric on those rows, mask of the rows that count) over the first c positions."""
    from .gates import LATENCY, auc_estimate, auc_inputs

    metric = p["metric"]
    err = np.asarray([e is not None for e in ev.errors[:c]], dtype=bool)
    if metric in LATENCY:
        lat = np.asarray(ev.latency[:c], dtype=float)
        q = 50 if metric == "latency_p50" else 95
        return (lambda r: float(np.percentile(lat[r], q))), ~err
    if metric in ("mae", "rmse"):
        y = np.asarray([float(v) for v in ev.labels[:c]])
        src = ev.preds[:c] if which == "cand" else ev.base[:c]
        pr = np.asarray([math.nan if (which == "cand" and e) or x is None else _float(x) for x, e in
                         zip(src, err, strict=True)])
        fn = metrics.mae if metric == "mae" else metrics.rmse
        return (lambda r: float(fn(y[r], pr[r]))), ~np.isnan(pr)
    if metric == "auc":
        rows = np.flatnonzero(~err) if view == "excl" else np.arange(c)
        if which == "cand":
            yk, sk = auc_inputs(ev.out, ev.labels[:c], ev.scores[:c], ev.errors[:c], view)
        else:
            yk, sk = auc_inputs(ev.out, ev.labels[:c], ev._bscores[:c], [None] * c, "lo")
            yk, sk = yk[rows], sk[rows]
        pos = np.full(c, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        mask = np.zeros(c, dtype=bool)
        mask[rows] = True
        return (lambda r: auc_estimate(yk[pos[r]], sk[pos[r]])), mask
    y, pr, keep = ev._view(0, c, view)
    if which == "base":
        pr, keep = np.asarray(ev._bp[:c], dtype=np.int64), np.ones(c, dtype=bool)
    present = sorted(set(y.tolist()))
    code = ev._code(p["class"]) if p.get("class") is not None else None

    def fn(r: np.ndarray) -> float:
        a, b = y[r], pr[r]
        if metric == "macro_f1" or (metric == "f1" and code is None):
            return float(metrics.macro_f1(a, b, classes=present))
        if metric == "f1":
            return float(metrics.class_f1(a, b, code))
        hit = a == b
        mask = np.ones_like(hit) if code is None else ((a == code) if metric == "recall" else (b == code))
        return float(np.sum(hit & mask) / np.sum(mask)) if np.sum(mask) else math.nan

    return fn, keep


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _groups_of(ev: Any, c: int, mask: np.ndarray) -> list[np.ndarray]:
    groups = rows_by_group(list(ev.groups[:c]))
    kept = [g[mask[g]] for g in groups]
    return [g for g in kept if g.size]


def _bootstrap(ev: Any, p: dict[str, Any], c: int) -> dict[str, Any]:
    """Estimate, cluster-BCa interval and verdict of an absolute gate over the whole groups in [0, c)."""
    from .gates import LATENCY

    higher = p["direction"] == ">="
    views = ("excl",) if p["metric"] in LATENCY or ev.task == "regression" else tuple(
        dict.fromkeys((ev.pass_view, ev.fail_view)))
    got = {}
    for view in views:
        fn, mask = _metric(ev, p, c, view)
        got[view] = cluster_interval(fn, _groups_of(ev, c, mask), alpha=p["alpha"], seed=ev.seed)
    pv, fv = got[views[0]], got[views[-1]]
    if (pv[1] >= p["threshold"]) if higher else (pv[2] <= p["threshold"]):
        verdict = PASS
    elif len(views) == 1 or ((fv[1] < p["threshold"]) if higher else (fv[2] > p["threshold"])):
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE
    rv = ev.report_view if ev.report_view in got else views[0]
    est = got[rv][0] if rv in got else _metric(ev, p, c, rv)[0](np.arange(c))
    return {"verdict": verdict, "estimate": est, "interval": [min(pv[1], fv[1]), max(pv[2], fv[2])],
            "groups": len(_groups_of(ev, c, np.ones(c, dtype=bool)))}


def _paired(ev: Any, p: dict[str, Any], c: int) -> dict[str, Any]:
    """A change gate on the whole groups in [0, c): the sign-adjusted difference candidate - baseline (and with a
    relative margin, difference + relative * baseline) bounded by a paired bootstrap over groups."""
    if any(b is None for b in ev.base[:c]):
        raise UserError("a change gate needs baseline predictions for every sample",
                        hint="pass --baseline FILE or --baseline-models DIR")
    sign = 1.0 if p["direction"] == ">=" else -1.0
    rel = p.get("relative_margin")
    out: dict[str, Any] = {}
    verdicts = {}
    for view in dict.fromkeys((ev.pass_view, ev.fail_view)):
        cand, cmask = _metric(ev, p, c, view, "cand")
        base, bmask = _metric(ev, p, c, view, "base")
        groups = _groups_of(ev, c, cmask & bmask)

        def diff(r: np.ndarray, cand: Callable = cand, base: Callable = base) -> float:
            return sign * (cand(r) - base(r))

        est, lo, _ = cluster_interval(diff, groups, alpha=p["alpha"], seed=ev.seed)
        _, _, hi = cluster_interval(diff, groups, alpha=p["beta"], seed=ev.seed)
        ok = lo >= -p["margin"]
        if rel is not None:
            _, rlo, _ = cluster_interval(lambda r, diff=diff, base=base: diff(r) + rel * abs(base(r)), groups,
                                         alpha=p["alpha"], seed=ev.seed)
            ok = ok and rlo >= 0
        verdicts[view] = PASS if ok else (FAIL if hi < 0 else INCONCLUSIVE)
        rows = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        out[view] = {"estimate": sign * est, "interval": sorted((sign * lo, sign * hi)),
                     "candidate_value": cand(rows) if rows.size else None,
                     "baseline_value": base(rows) if rows.size else None, "groups": len(groups)}
    v = PASS if verdicts[ev.pass_view] == PASS else (FAIL if verdicts[ev.fail_view] == FAIL else INCONCLUSIVE)
    shown = out[ev.fail_view] if v == FAIL else out[ev.pass_view]
    return {"verdict": v, **shown}


# ---------------------------------------------------------------------------------------------- records
def record(ev: Any, rec: dict[str, Any], s: Any, name: str, risk: str) -> None:
    """The gate record of a grouped gate: group-level estimate, bounds, the groups it used, its validity."""
    p = s.plan
    c = complete(ev.groups, s.used or len(ev.labels))
    n_groups = len(rows_by_group(list(ev.groups[:c])))
    field = p["grouped"]["field"]
    rec.update(validity=VALIDITY[p["method"]], groups=n_groups, group_field=field, samples_used=c,
               samples_saved=None, beta_planned=False)
    level = 1 - p["alpha"]
    note = f"; {s.note}" if s.note else ""
    if p["method"] == BETTING:
        i = ev.states.index(s)
        gate = betting_gate(p)
        pv, fv = _clustered(ev, i, c, ev.pass_view), _clustered(ev, i, c, ev.fail_view)
        rv = _clustered(ev, i, c, ev.report_view)
        scale = p.get("bound") or 1.0
        higher = p["direction"] == ">="
        est = rv.estimate if rv.groups and rv.sizes.sum() else None
        lo, hi = gate.interval(pv, fv)
        pass_p, fail_p = gate.pvalues(pv, fv)
        if not higher:  # back from the oriented (1 - score) scale
            est = None if est is None else 1 - est
            lo, hi = 1 - hi, 1 - lo
        lo, hi = lo * scale, hi * scale
        est = None if est is None else est * scale
        if s.verdict == FAIL:
            alt = p["threshold"] + p["margin"] if higher else p["threshold"] - p["margin"]
            bound = {"side": "upper" if higher else "lower", "value": hi if higher else lo,
                     "level": 1 - gate.fail_level, "against": alt}
        else:
            bound = {"side": "lower" if higher else "upper", "value": lo if higher else hi, "level": level,
                     "against": p["threshold"]}
        rec.update(estimate=est, interval=[lo, hi], bound=bound, pvalues={"pass": pass_p, "fail": fail_p},
                   interval_levels=[level, 1 - gate.fail_level] if higher else [1 - gate.fail_level, level],
                   interval_method=(f"cluster betting confidence bounds over {n_groups} groups (anytime-valid; "
                                    f"PASS side {level:.0%}, FAIL side {1 - gate.fail_level:.0%})"),
                   test="cluster betting test on group totals (anytime-valid at group boundaries)",
                   fail_level=gate.fail_level)
        if rv.groups:
            succ, trials = float(rv.totals.sum()), float(rv.sizes.sum())
            rec["successes"] = int(succ) if succ.is_integer() else succ  # counts for proportions, sums for scores
            rec["trials"] = int(trials)
        rec["message"] = (f"{name} {_f(est)} {p['direction']} {p['threshold']} -> {s.verdict} after {n_groups} "
                          f"groups ({c} samples, group field '{field}'); {bound['side']} bound {_f(bound['value'])} "
                          f"({bound['level']:.0%}); cluster betting test, anytime-valid (p PASS {pass_p:.3g}, "
                          f"p FAIL {fail_p:.3g}); {risk} (beta not planned: it depends on the within-group "
                          f"correlation){note}")
        return
    x = s.extra if s.extra.get("estimate") is not None or c < 3 else (
        _bootstrap(ev, p, c) if p["method"] == BOOTSTRAP else _paired(ev, p, c))
    interval = [_finite(v) for v in x.get("interval", [None, None])]
    est = _finite(x.get("estimate"))
    if p["method"] == BOOTSTRAP:
        side = "lower" if p["direction"] == ">=" else "upper"
        rec.update(estimate=est, interval=interval, interval_levels=[level, level],
                   interval_method=f"cluster BCa bootstrap over {n_groups} groups; each end a one-sided {level:.0%} "
                   "bound (fixed look, approximate)",
                   bound={"side": side, "value": interval[0] if side == "lower" else interval[1], "level": level,
                          "against": p["threshold"]})
        rec["message"] = (f"{name} {_f(est)} {p['direction']} {p['threshold']} -> {s.verdict} after {n_groups} "
                          f"groups ({c} samples, group field '{field}'); cluster BCa interval [{_f(interval[0])}, "
                          f"{_f(interval[1])}] (one-sided {level:.0%} each, fixed look); {risk}{note}")
        return
    rec.update(estimate=est, interval=interval, bound=None, interval_levels=[level, 1 - p["beta"]],
               candidate_value=_finite(x.get("candidate_value")), baseline_value=_finite(x.get("baseline_value")),
               relative_margin=p.get("relative_margin"),
               interval_method=(f"paired cluster BCa bootstrap over {n_groups} groups (fixed look; lower "
                                f"{level:.0%}, upper {1 - p['beta']:.0%}; approximate)"),
               test=f"paired cluster bootstrap (fixed look): PASS when the candidate is within margin {p['margin']:g} "
               f"of the baseline at one-sided {level:.0%}")
    rec["message"] = (f"{name} change vs baseline {_f(x.get('candidate_value'))} vs {_f(x.get('baseline_value'))} "
                      f"({_f(est)}) -> {s.verdict} after {n_groups} groups ({c} samples, group field '{field}'); "
                      f"paired cluster bootstrap at one look; difference bounds [{_f(interval[0])}, "
                      f"{_f(interval[1])}]; {risk}{note}")


@dataclass(frozen=True)
class GroupSummary:
    """`sample.groups` in the accuracy record: how many groups the verdict rests on."""

    field: str
    drawn: int  # groups in the drawn sample
    used: int  # whole groups in the samples the verdict used
    samples: int  # samples in those groups
    available: int  # groups in the dataset
    largest: int  # the dataset's largest group
    design_effect: float | None  # of accuracy's 0/1 correctness over the used groups (1: independent samples)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary(info: dict[str, Any], labels: list[str], used: int, correct: np.ndarray | None) -> GroupSummary:
    """The record's group summary. `info`: field, drawn, available and largest (`Groups.info`, or a shard
    record's summary when merging); `labels`: the group of each position fed; `used`: samples the verdict used."""
    c = complete(labels, used)
    deff = None
    if correct is not None and c >= 2 and len(correct) >= c:
        d = design_effect(np.asarray(correct[:c], dtype=float), np.asarray(labels[:c], dtype=object).astype(str))
        deff = round(d, 3) if math.isfinite(d) else None
    return GroupSummary(info["field"], info["drawn"], len(rows_by_group(list(labels[:c]))), c, info["available"],
                        info["largest"], deff)


def correctness(ev: Any, n: int) -> np.ndarray | None:
    """Accuracy's 0/1 outcome of the first n samples (errors counted wrong); None for regression."""
    return ev.correct(n) if ev.task == "classification" else None


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _f(x: Any) -> str:
    v = _finite(x)
    return "n/a" if v is None else f"{v:.4f}"
