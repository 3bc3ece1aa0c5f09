"""Gate planning and evaluation on the prefix of the pre-drawn sample order.

`plan_gates` turns the suite's gates into test plans (method, split beta, exact fixed n, samples needed)
before anything runs, and refuses a plan that cannot deliver the risks it states: a threshold or margin the data
cannot support, a cap (`max_samples`) or dataset too small for a sequential gate to reach its beta (the exact
truncated operating characteristic, stats/sprt_design.py), a change gate whose fixed n at the planned
discordance exceeds the cap. `Evaluator` is fed batches strictly in pre-drawn order -- by the engine's
controller as the prefix grows, or by `merge` over the recombined shards -- and decides each gate at the same
looks either way, which is why a merged run reproduces an unsharded one exactly.

Every metric reads the same per-sample view of the predictions (outputs.transform: predicted label and score).
Prediction errors follow `accuracy.on_error`:
* `fail`: the first error fails the suite.
* `count_wrong`: an errored sample is a wrong prediction of no class (recall and accuracy count it as a miss;
  AUC ranks it last); the gates and the record's metrics use exactly that view.
* `exclude`: errored samples are left out of the reported estimates, but a gate PASSes only if it also passes
  with every excluded sample counted wrong, and FAILs only if it also fails with every excluded sample counted
  right; a gate neither view decides is INCONCLUSIVE. Past `accuracy.max_error_rate` of the drawn samples the
  suite stops INCONCLUSIVE: the verdict would rest on samples the model could not predict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.schema import HIGHER_BETTER, PROPORTION_METRICS
from ..errors import UserError
from . import metrics
from .data import label_key
from .outputs import Output, imputed_score, transform
from .stats import betting, bootstrap, fixed_n, mcnemar, paired, proportion
from .stats.betting import BettingGate
from .stats.sprt import Sprt
from .stats.sprt_design import fail_bound, pass_bound
from .stats.truncated import TruncatedSprt, stagewise_bounds

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
ERR = -1  # code of a prediction counted wrong (no class)
LATENCY = ("latency_p50", "latency_p95")
PROPORTION_METHODS = ("sprt", "truncated-sprt", "binomial-exact")
SEQUENTIAL_METHODS = ("sprt", "truncated-sprt", "mcnemar-sprt")
# when a gate's stated risks hold: at any stopping time, at the planned looks only, or at one final look
VALIDITY = {"sprt": "anytime-valid", "mcnemar-sprt": "anytime-valid", "betting": "anytime-valid",
            "mcnemar-exact": "exact, fixed look", "binomial-exact": "exact, fixed look",
            "truncated-sprt": "exact at the planned looks"}


def task_for(gates: list[dict[str, Any]]) -> str:
    """regression (numbers: mae/rmse) or classification."""
    return "regression" if {metric_name(g) for g in gates} & {"mae", "rmse"} else "classification"


def resolve_class(value: Any, prevalence: dict[str, float], names: dict[str, str], where: str) -> str:
    """A gate's `class`: a label of the dataset, or a display name from `accuracy.labels`."""
    key = label_key(value)
    if key in prevalence:
        return key
    by_name = [k for k, n in names.items() if n == str(value)]
    if by_name and by_name[0] in prevalence:
        return by_name[0]
    shown = ", ".join(f"{k} ({names[k]})" if k in names else k for k in sorted(prevalence)[:20])
    raise UserError(f"class '{value}' does not occur in the dataset's labels", where=where, hint=f"labels present: {shown}")


def plan_gates(gates: list[dict[str, Any]], *, sequential: bool, available: int, cap: int,
               prevalence: dict[str, float], where: str, output: Output | None = None,
               batch_size: int = 64) -> list[dict[str, Any]]:
    """One plan per gate; raises UserError for requests the data, the cap or the prediction type cannot support."""
    output = output or Output("labels")
    k = len(gates)
    plans = []
    for i, g in enumerate(gates):
        metric, kind = metric_name(g), g["kind"]
        gw = f"{where}.gates[{i}]"
        higher = metric in HIGHER_BETTER or metric == "score"
        threshold = g["min"] if higher else g["max"]
        beta = g["beta"] / k
        if (higher or kind == "change") and metric not in LATENCY and g["margin"] >= 1:
            raise UserError(f"margin {g['margin']:g} of a {metric} gate must be below 1 (the metric lies in [0, 1])",
                            where=f"{gw}.margin", hint="e.g. margin: 0.02 (two points)")
        if g.get("relative_margin") is not None and (kind != "change" or metric == "accuracy"):
            raise UserError("`relative_margin` applies to change gates on metrics other than accuracy",
                            where=f"{gw}.relative_margin", hint="use kind: change with auc, f1, macro_f1, mae, rmse...; "
                            "accuracy change gates take an absolute margin")
        if g.get("bound") is not None and metric != "mae":
            raise UserError(f"`bound` applies to mae gates only, not {metric}", where=f"{gw}.bound",
                            hint="remove it, or gate on mae")
        if metric == "auc" and not output.has_scores:
            raise UserError(f"an auc gate ranks samples by score, but this suite's predict returns {output.kind}",
                            where=gw, hint="set accuracy.output (or the suite's output) to scores or probabilities, "
                            "with a predict that returns them")
        if metric == "auc" and len(prevalence) < 2:
            raise UserError(f"an auc gate needs samples of two classes; the dataset has only "
                            f"{', '.join(prevalence) or 'none'}", where=gw, hint="gate on accuracy or recall instead")
        cls = None if g.get("class") is None else resolve_class(g["class"], prevalence, output.names, gw)
        share = prevalence[cls] if (cls is not None and metric in ("precision", "recall")) else 1.0
        plan: dict[str, Any] = {
            "metric": metric, "kind": kind, "class": cls, "threshold": threshold,
            "direction": ">=" if higher else "<=", "margin": g["margin"], "alpha": g["alpha"], "beta": beta,
            "beta_configured": g["beta"], "class_configured": g.get("class"), "gates": k, "fixed_n": None,
            "needed": None,
        }
        if metric == "score":
            plan.update(score=g["metric"]["score"], score_name=score_name(g["metric"]["score"]))
        if g.get("bound") is not None:
            plan["bound"] = g["bound"]
        if kind != "change" and (metric == "score" or (metric == "mae" and g.get("bound") is not None)):
            _plan_betting(plan, sequential=sequential, cap=cap, available=available, batch_size=batch_size, where=gw)
        elif kind == "change" and metric != "accuracy":
            _plan_paired(plan, g, cap=cap, available=available, where=gw)
        elif kind == "change":
            plan["method"] = "mcnemar-sprt" if sequential else "mcnemar-exact"
            plan["needed"] = cap  # the real discordance is known only after the run: use every drawn sample
            psi = g.get("discordance") or 0.1
            plan["discordance"] = psi
            plan["fixed_n"] = mcnemar.planned_n(psi, g["margin"], g["alpha"], beta)
            if plan["fixed_n"] is not None and plan["fixed_n"] > cap:
                raise UserError(
                    f"change gate {metric} (margin {g['margin']}, alpha {g['alpha']}, beta {_g(beta)}) needs "
                    f"n = {plan['fixed_n']} paired samples at a discordance of {psi:g} (candidate and baseline "
                    f"disagree on {psi:.0%} of the samples) but {_cap_text(cap, available)}", where=gw,
                    hint=f"raise max_samples to >= {plan['fixed_n']}, widen the margin, or set `discordance:` on "
                    "the gate if you know the models disagree less often")
        elif metric in PROPORTION_METRICS:
            if threshold is None or not 0 < threshold < 1 or threshold + g["margin"] >= 1:
                raise UserError(f"{metric} threshold {threshold!r} with margin {g['margin']} is outside (0, 1)",
                                where=gw, hint="a proportion gate needs 0 < min and min + margin < 1")
            fx = fixed_n.exact_n(threshold, threshold + g["margin"], g["alpha"], beta)
            plan["fixed_n"] = math.ceil(fx.n / share)
            plan["critical"] = fx.critical
            plan["method"] = "binomial-exact"
            plan["needed"] = plan["fixed_n"]
            plan["achievable_beta"] = 1 - fx.power
            if sequential:
                _plan_truncated(plan, cap=cap, available=available, share=share, batch_size=batch_size)
            _check_fixed(plan, fx, cap=cap, available=available, share=share, where=gw)
        else:
            if higher and (threshold is None or not 0 < threshold < 1):
                raise UserError(f"{metric} threshold {threshold!r} is outside (0, 1)", where=gw, hint="0 < min < 1")
            if higher and threshold + g["margin"] < 1:
                # planning proxy: the n an accuracy gate with the same threshold/margin/alpha/beta would need
                plan["fixed_n"] = fixed_n.exact_n(threshold, threshold + g["margin"], g["alpha"], beta).n
                plan["needed"] = plan["fixed_n"]
            else:
                plan["needed"] = cap
            plan["method"] = "bootstrap-bca"
        if plan["fixed_n"] is not None and plan["fixed_n"] > available and plan["method"] == "bootstrap-bca":
            raise UserError(
                f"gate {metric} (min {threshold}, margin {g['margin']}, alpha {g['alpha']}, beta {_g(beta)}) needs "
                f"n = {plan['fixed_n']} samples for an exact fixed-n test but the dataset has {available}",
                where=gw, hint="widen the margin, raise alpha/beta, or use a larger test set")
        if plan["needed"] is not None and plan["needed"] > cap:
            raise UserError(f"gate {metric} needs {plan['needed']} samples but max_samples allows {cap}", where=gw,
                            hint=f"raise max_samples to >= {plan['needed']} (the dataset has {available})")
        plans.append(plan)
    return plans


def metric_name(gate: dict[str, Any]) -> str:
    """A gate's metric: a built-in name, or `score` for a custom per-sample score ({score: module:callable})."""
    m = gate["metric"]
    return "score" if isinstance(m, dict) else str(m)


def score_name(ref: str) -> str:
    """A custom score's name in records and reports: the callable's name (module:exact_match -> exact_match)."""
    return ref.rpartition(":")[2]


def _scaled(plan: dict[str, Any]) -> tuple[float, float]:
    """(threshold, margin) of a betting gate on its [0, 1] score scale: MAE divides by its declared bound."""
    scale = plan.get("bound") or 1.0
    return plan["threshold"] / scale, plan["margin"] / scale


def betting_gate(plan: dict[str, Any]) -> BettingGate:
    thr, margin = _scaled(plan)
    return BettingGate(thr, margin, plan["alpha"], plan["beta"], plan["direction"])


def _plan_betting(plan: dict[str, Any], *, sequential: bool, cap: int, available: int, batch_size: int,
                  where: str) -> None:
    """The anytime-valid betting gate (stats/betting.py) on the mean of a per-sample score in [0, 1]: a custom
    score, or an absolute error clipped at its declared bound and divided by it. The samples it needs for its beta
    come from simulating the maximum-variance (Bernoulli) score law at the alternative; a cap below them is
    refused. A `sequential: false` suite judges it once, at that planned n."""
    name = _name(plan)
    where_unit = "on the [0, 1] score scale" if plan["metric"] == "score" else f"(bound {plan['bound']:g})"
    thr, margin = _scaled(plan)
    if plan["threshold"] is None:
        raise UserError(f"gate {name} has no threshold", where=where,
                        hint="set min: (custom scores are higher-is-better, in [0, 1])" if plan["metric"] == "score"
                        else "set max:")
    alt = thr + margin if plan["direction"] == ">=" else thr - margin
    if not (0 < thr < 1 and 0 < alt < 1):
        raise UserError(f"gate {name}: threshold {plan['threshold']:g} with margin {plan['margin']:g} {where_unit} "
                        f"leaves the [0, 1] score scale ({thr:g} and {alt:g})", where=where,
                        hint="custom scores: 0 < min and min + margin < 1; mae: 0 < max - margin and max < bound")
    limit = min(cap, available)
    pl = betting.plan(thr, margin, plan["alpha"], plan["beta"], batch=batch_size, cap=limit,
                      direction=plan["direction"])
    m0, m1 = (thr, alt) if plan["direction"] == ">=" else (1 - thr, 1 - alt)
    plan.update(method="betting", fixed_n=fixed_n.exact_n(m0, m1, plan["alpha"], plan["beta"]).n,
                planned_law=pl.law, achievable_beta=1 - pl.power_at_cap,
                needed=pl.needed if pl.needed is not None else limit)
    if pl.needed is None:
        raise UserError(
            f"gate {name} (anytime-valid betting test, alpha {_g(plan['alpha'])}, beta {_g(plan['beta'])}) cannot "
            f"deliver its beta within {_cap_text(cap, available)}: a score at the alternative {alt:g} (simulated "
            f"{pl.law}, {pl.runs} runs) PASSes by then with probability {pl.power_at_cap:.3f} (achievable beta "
            f"{1 - pl.power_at_cap:.3g})", where=where,
            hint="raise max_samples or use a larger test set, or widen the margin" + _accept(1 - pl.power_at_cap, plan))
    plan["sequential"] = sequential


MIN_PAIRED = 300  # below this the paired bootstrap's one-sided levels drift from nominal (bench_gates D)


def _plan_paired(plan: dict[str, Any], g: dict[str, Any], *, cap: int, available: int, where: str) -> None:
    """A change gate on a metric other than accuracy: the paired BCa bootstrap (stats/paired.py) on every drawn
    sample, at one final look, with an absolute margin (metric units) and optionally a relative one (a fraction of
    the baseline's value); both must hold, like MLflow's min_absolute_change / min_relative_change."""
    name = _name(plan)
    if plan["metric"] in LATENCY:
        raise UserError(f"a change gate on {plan['metric']} needs the baseline's own latencies, which a baseline "
                        "run does not measure", where=where,
                        hint="gate latency with an absolute max: (kind: absolute) instead")
    if plan["metric"] == "score":
        raise UserError(f"a change gate on the custom score {name} needs the baseline's scores, which a baseline "
                        "run does not compute", where=where, hint="gate the custom score with kind: absolute")
    limit = min(cap, available)
    if limit < MIN_PAIRED:
        raise UserError(f"change gate {name} judges candidate and baseline by a paired bootstrap, whose stated "
                        f"risks need at least {MIN_PAIRED} paired samples, but {_cap_text(cap, available)}",
                        where=where, hint=f"raise max_samples to >= {MIN_PAIRED}")
    plan.update(method="paired-bootstrap", needed=limit, relative_margin=g.get("relative_margin"),
                min_samples=MIN_PAIRED)


def _plan_truncated(plan: dict[str, Any], *, cap: int, available: int, share: float, batch_size: int) -> None:
    """The truncated SPRT (stats/truncated.py) for a sequential proportion gate: looks every batch (a class
    gate's trials per batch: batch_size x its share), boundaries meeting at N <= the cap, alpha and beta exact
    at those looks. When the cap leaves no design (N must be about 1.1 x the fixed n or more) the plan stays
    the exact fixed-n test."""
    batch = max(1, round(batch_size * share))
    limit = math.floor(min(cap, available) * share + 1e-9)
    try:
        test = TruncatedSprt(plan["threshold"], plan["threshold"] + plan["margin"], plan["alpha"], plan["beta"],
                             batch=batch, max_n=limit)
        d = test.design
    except ValueError as exc:
        plan["fallback"] = f"no truncated design within {limit} trials ({exc}): exact fixed-n test"
        return
    plan.update(method="truncated-sprt", needed=min(math.ceil(d.max_n / share), cap, available),
                achievable_beta=d.false_fail,
                design={"batch": batch, "limit": limit, "max_n": d.max_n, "size": d.size, "false_fail": d.false_fail,
                        "meet": d.meet, "upper": d.upper, "lower": d.lower, "shape": d.shape})


def truncated_test(plan: dict[str, Any]) -> TruncatedSprt:
    """The plan's truncated SPRT (the design is cached per process: merge re-derives the same one)."""
    d = plan["design"]
    return TruncatedSprt(plan["threshold"], plan["threshold"] + plan["margin"], plan["alpha"], plan["beta"],
                         batch=d["batch"], max_n=d["limit"])


def _check_fixed(plan: dict[str, Any], fx: fixed_n.FixedPlan, *, cap: int, available: int, share: float,
                 where: str) -> None:
    """Refuse a fixed-n proportion gate whose n the cap or the dataset cannot hold: at the samples it has the
    exact test reaches only a smaller power; name that beta and the cap that delivers the stated one."""
    if plan["method"] != "binomial-exact" or plan["fixed_n"] <= min(cap, available):
        return
    trials = math.floor(min(cap, available) * share + 1e-9)
    power = fixed_n.power_at(trials, plan["threshold"], plan["threshold"] + plan["margin"], plan["alpha"])
    achieved = 1 - power
    if plan["fixed_n"] <= available:
        how = f"raise max_samples to >= {plan['fixed_n']}"
    else:
        how = f"the dataset ({available} samples) cannot deliver it: use a larger test set"
    per = f" ({_g(plan['beta'])} per gate: beta {_g(plan['beta_configured'])} split over {plan['gates']} gates)" \
        if plan["gates"] > 1 else ""
    cls = f"[{plan['class']}]" if plan["class"] is not None else ""
    raise UserError(
        f"gate {plan['metric']}{cls} cannot deliver its beta{per} within {_cap_text(cap, available)}: it needs "
        f"n = {plan['fixed_n']} samples for its exact test but "
        f"{f'max_samples allows {cap}' if cap < available else f'the dataset has {available}'}; at "
        f"{min(cap, available)} a model at min + margin = "
        f"{plan['threshold'] + plan['margin']:g} PASSes with probability {power:.3f} (achievable beta "
        f"{achieved:.3g})", where=where, hint=f"{how}, or widen the margin" + _accept(achieved, plan))


def _accept(achieved: float, plan: dict[str, Any]) -> str:
    """How to accept the risk the plan has: the gate-level beta whose per-gate share covers it (beta < 0.5)."""
    need = math.ceil(achieved * plan["gates"] * 1000) / 1000
    return f", or accept that risk with beta: {need:g} on this gate" if need < 0.5 else ""


def _cap_text(cap: int, available: int) -> str:
    return f"max_samples {cap}" if cap < available else f"the dataset's {available} samples"


def _g(x: float) -> str:
    """Risks as people write them: 0.1, 0.0333."""
    return f"{x:.3g}"


@dataclass
class GateState:
    plan: dict[str, Any]
    verdict: str | None = None
    used: int = 0  # samples in the prefix when decided
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # view -> (successes, trials)
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # why an undecided gate was closed


@dataclass
class Evaluator:
    """Accumulates outcomes in pre-drawn order and decides the gates after each batch (look)."""

    plans: list[dict[str, Any]]
    output: Output | str
    on_error: str
    drawn: int
    seed: int = 0
    max_errors: int | None = None  # on_error exclude: more excluded samples than this end the run INCONCLUSIVE
    groups: Any = None  # grouped samples: the group label of every position fed, in order (accuracy/grouping.py)
    labels: list[Any] = field(default_factory=list)  # label keys (classification) or floats (regression)
    preds: list[Any] = field(default_factory=list)  # raw predictions
    plabels: list[str | None] = field(default_factory=list)  # predicted label keys (None: error)
    scores: list[Any] = field(default_factory=list)
    base: list[Any] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    verdict: str | None = None
    reason: str = ""
    stopped_at: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.output, str):  # a task name (records written before prediction types existed)
            self.output = Output.from_dict(None, task=self.output)
        self.out: Output = self.output
        self._index: dict[str, int] = {}
        self._y: list[int] = []
        self._p: list[int] = []
        self._bp: list[int] = []
        self._bscores: list[Any] = []  # the baseline's scores (AUC change gates)
        self.states = [GateState(p) for p in self.plans]
        self._counts: dict[int, dict[str, list[int]]] = {
            i: {v: [0, 0] for v in ("lo", "hi", "excl")} for i, p in enumerate(self.plans)
            if p["method"] in PROPORTION_METHODS}
        self._bounded: dict[int, dict[str, list[float]]] = {
            i: {v: [] for v in ("lo", "hi", "excl")} for i, p in enumerate(self.plans)
            if "betting" in (p["method"], (p.get("grouped") or {}).get("ungrouped_method"))}
        self._betting = {i: betting_gate(self.plans[i]) for i in self._bounded}
        self.clipped: dict[int, int] = dict.fromkeys(self._bounded, 0)
        self.seq_mcnemar = {i: {v: mcnemar.SequentialMcNemar(p["margin"], p["alpha"], p["beta"])
                                for v in self._decision_views()}
                            for i, p in enumerate(self.plans) if p["method"] == "mcnemar-sprt"}

    @property
    def task(self) -> str:
        return "regression" if self.out.kind == "numbers" else "classification"

    # ---- views of errored samples ------------------------------------------------------------------------
    def _decision_views(self) -> tuple[str, ...]:
        return ("lo", "hi") if self.on_error == "exclude" else ("lo",)

    @property
    def pass_view(self) -> str:
        return "lo"

    @property
    def fail_view(self) -> str:
        return "hi" if self.on_error == "exclude" else "lo"

    @property
    def report_view(self) -> str:
        """count_wrong reports what it decides on; exclude and fail report the predicted samples."""
        return "lo" if self.on_error == "count_wrong" else "excl"

    def _code(self, key: str) -> int:
        return self._index.setdefault(key, len(self._index))

    # ---- feeding -------------------------------------------------------------------------------------
    def feed(self, labels: list[Any], preds: list[Any], errors: list[str | None], latency: list[float],
             base: list[Any] | None = None, custom: dict[str, list[float | None]] | None = None) -> str | None:
        """Add one batch; return the overall verdict once reached (further batches are then ignored).
        `custom`: the batch's custom per-sample scores by reference (module:callable), None where predict failed."""
        if self.verdict is not None:
            return self.verdict
        start = len(self.labels)
        t = transform(self.out, preds, errors)
        self._feed_bounded(labels, preds, t.errors, custom or {})
        if self.task == "regression":
            keys: list[Any] = [float(y) for y in labels]
        else:
            keys = [label_key(y) for y in labels]
            self._y += [self._code(k) for k in keys]
            self._p += [ERR if p is None else self._code(p) for p in t.labels]
        self.labels += keys
        self.preds += preds
        self.plabels += t.labels
        self.scores += t.scores
        self.errors += t.errors
        self.latency += latency
        self.base += base if base is not None else [None] * len(labels)
        if base is not None and self.task == "classification":
            bt = transform(self.out, base, [None] * len(base))
            self._bp += [ERR if p is None else self._code(p) for p in bt.labels]
            self._bscores += bt.scores
        elif self.task == "classification":
            self._bp += [ERR] * len(labels)
        n = len(self.labels)
        for i in self._counts:
            for view in ("lo", "hi", "excl"):
                k, tr = self._count(self.plans[i], start, n, view)
                self._counts[i][view][0] += k
                self._counts[i][view][1] += tr
        bad = sum(e is not None for e in self.errors)
        if self.on_error == "fail" and any(e is not None for e in t.errors):
            self._close_undecided(n, "the suite stopped at the first prediction error")
            self._stop(FAIL, f"{bad} prediction error(s) (accuracy.on_error: fail)", n)
            return self.verdict
        if self.on_error == "exclude" and self.max_errors is not None and bad > self.max_errors:
            self._close_undecided(n, "too many prediction errors")
            self._stop(INCONCLUSIVE, f"{bad} samples raised in predict: more than accuracy.max_error_rate allows "
                       f"({self.max_errors} of the {self.drawn} drawn); a verdict would rest on samples the model "
                       "could not predict", n)
            return self.verdict
        self._look(start, n)
        decided = [s.verdict for s in self.states]
        if FAIL in decided:
            failed = [_name(s.plan) for s in self.states if s.verdict == FAIL]
            self._close_undecided(n, f"the suite stopped when {', '.join(failed)} failed")
            self._stop(FAIL, f"gate {', '.join(failed)} failed", n)
        elif None not in decided and INCONCLUSIVE in decided:
            self._stop(INCONCLUSIVE, "a gate could not be decided (prediction errors: accuracy.on_error exclude)", n)
        elif all(v == PASS for v in decided):
            self._stop(PASS, "every gate passed", n)
        elif n >= self.drawn:
            self._close_undecided(n, f"no verdict within the {self.drawn} drawn samples")
            self._stop(INCONCLUSIVE, f"no verdict within the {self.drawn} drawn samples", n)
        return self.verdict

    def _feed_bounded(self, labels: list[Any], preds: list[Any], errors: list[str | None],
                      custom: dict[str, list[float | None]]) -> None:
        """Per-sample scores in [0, 1] of the betting gates, per view of errored samples: counted worst (lo),
        best (hi) or left out (excl)."""
        for i, views in self._bounded.items():
            p = self.plans[i]
            if p["metric"] == "score":
                got = custom.get(p["score"])
                if got is None or len(got) != len(labels):
                    raise UserError(f"custom score {p['score']} returned no value for this batch",
                                    hint="the score callable must return one number in [0, 1] per sample")
                raw = [None if e is not None or v is None else float(v) for v, e in zip(got, errors, strict=True)]
            else:  # mae with a declared bound: the absolute error clipped at it, scaled to [0, 1]
                b = float(p["bound"])
                raw = [None if e is not None else min(abs(float(y) - float(x)), b) / b
                       for y, x, e in zip(labels, preds, errors, strict=True)]
                self.clipped[i] += sum(e is None and abs(float(y) - float(x)) > b
                                       for y, x, e in zip(labels, preds, errors, strict=True))
            worst, best = (0.0, 1.0) if p["direction"] == ">=" else (1.0, 0.0)
            views["lo"] += [worst if v is None else v for v in raw]
            views["hi"] += [best if v is None else v for v in raw]
            views["excl"] += [v for v in raw if v is not None]

    def _decide_betting(self, i: int, s: GateState, n: int) -> None:
        p, gate, views = s.plan, self._betting[i], self._bounded[i]
        sequential = p.get("sequential", True)
        if not sequential and n < min(p["needed"], self.drawn):
            return
        if gate.decide(views[self.pass_view]) == PASS:
            v: str | None = PASS
        elif gate.decide(views[self.fail_view]) == FAIL:
            v = FAIL
        else:
            v = None if sequential else INCONCLUSIVE
        if v is not None:
            s.verdict, s.used = v, n

    def _stop(self, verdict: str, reason: str, n: int) -> None:
        self.verdict, self.reason, self.stopped_at = verdict, reason, n

    def _close_undecided(self, n: int, why: str) -> None:
        """Undecided gates end INCONCLUSIVE, with their estimates on the samples scored so far."""
        for i, s in enumerate(self.states):
            if s.verdict is not None:
                continue
            s.verdict, s.used, s.note = INCONCLUSIVE, n, why
            method = s.plan["method"]
            if method in PROPORTION_METHODS:
                s.counts = {v: tuple(c) for v, c in self._counts[i].items()}
            elif method == "bootstrap-bca" and n >= 3:
                s.extra = self._bootstrap_gate(s.plan, n)
                s.extra.pop("verdict")
            elif method == "paired-bootstrap" and n >= 3 and all(b is not None for b in self.base[:n]):
                s.extra = {"result": self._paired_change(s.plan, n, self.pass_view)}

    def finish(self) -> str:
        """Close a run whose samples ran out before the cap (shard, or fewer batches than drawn)."""
        if self.verdict is None:
            n = len(self.labels)
            self._close_undecided(n, f"no verdict after {n} samples")
            self._stop(INCONCLUSIVE, f"no verdict after {n} samples", n)
        return self.verdict or INCONCLUSIVE

    # ---- per-sample views ------------------------------------------------------------------------------
    def _view(self, a: int, b: int, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(label codes, predicted codes, kept mask) over samples [a, b) with errors as the view says:
        lo = counted wrong (ERR), hi = counted right (the label), excl = left out."""
        y = np.asarray(self._y[a:b], dtype=np.int64)
        p = np.asarray(self._p[a:b], dtype=np.int64)
        err = p == ERR
        if view == "hi":
            p = np.where(err, y, p)
        keep = ~err if view == "excl" else np.ones(len(y), dtype=bool)
        return y, p, keep

    def _count(self, plan: dict[str, Any], a: int, b: int, view: str) -> tuple[int, int]:
        """(successes, trials) of a proportion gate over samples [a, b) in one view."""
        y, p, keep = self._view(a, b, view)
        cls, metric = plan.get("class"), plan["metric"]
        trials = keep
        if cls is not None:
            c = self._code(cls)
            trials = keep & ((y == c) if metric == "recall" else (p == c))
        return int(np.sum(trials & (p == y))), int(trials.sum())

    def correct(self, upto: int, which: str = "cand", view: str = "lo") -> np.ndarray:
        """Per-sample correctness (1/0) of the candidate (errors as the view says) or of the baseline."""
        y, p, _ = self._view(0, upto, view)
        if which == "base":
            p = np.asarray(self._bp[:upto], dtype=np.int64)
        return (p == y).astype(float)

    # ---- one look ------------------------------------------------------------------------------------
    def _look(self, start: int, n: int) -> None:
        if self.groups is not None:
            from . import grouping

            grouping.look(self, n)
            return
        for i, s in enumerate(self.states):
            if s.verdict is not None:
                continue
            p, method = s.plan, s.plan["method"]
            if method in ("sprt", "truncated-sprt"):
                c = self._counts[i]
                test = truncated_test(p) if method == "truncated-sprt" else \
                    Sprt(p["threshold"], p["threshold"] + p["margin"], p["alpha"], p["beta"])
                if test.decide(*c[self.pass_view]) == PASS:
                    v = PASS
                elif test.decide(*c[self.fail_view]) == FAIL:
                    v = FAIL
                elif method == "truncated-sprt" and min(c[self.pass_view][1], c[self.fail_view][1]) \
                        >= p["design"]["max_n"]:
                    v = INCONCLUSIVE  # both views decided at N, in opposite ways: the excluded errors decide
                    s.note = "at the design's last look the excluded prediction errors leave the verdict open"
                else:
                    continue
                s.verdict, s.used, s.counts = v, n, {view: tuple(x) for view, x in c.items()}
            elif method == "binomial-exact" and n >= p["needed"]:
                counts = {view: self._count(p, 0, p["needed"], view) for view in ("lo", "hi", "excl")}
                if fixed_n.decide(*counts[self.pass_view], p["threshold"], p["alpha"]) == PASS:
                    v = PASS
                elif fixed_n.decide(*counts[self.fail_view], p["threshold"], p["alpha"]) == FAIL:
                    v = FAIL
                else:
                    v = INCONCLUSIVE
                s.verdict, s.used, s.counts = v, p["needed"], counts
            elif method == "betting":
                self._decide_betting(i, s, n)
            elif method == "mcnemar-sprt":
                seq = self.seq_mcnemar[i]
                results = {view: seq[view].update(*self._paired(start, n, view)) for view in seq}
                if results[self.pass_view] == PASS:
                    s.verdict, s.used = PASS, n
                elif results[self.fail_view] == FAIL:
                    s.verdict, s.used = FAIL, n
            elif method == "mcnemar-exact" and n >= min(p["needed"], self.drawn):
                res = {view: mcnemar.fixed_test(*mcnemar.discordant_counts(*self._paired(0, n, view)), p["margin"],
                                                p["alpha"]) for view in self._decision_views()}
                v = PASS if res[self.pass_view].verdict == PASS else (
                    FAIL if res[self.fail_view].verdict == FAIL else INCONCLUSIVE)
                shown = res[self.pass_view] if v != FAIL else res[self.fail_view]
                s.verdict, s.used = v, n
                s.extra = {"pvalue": shown.pvalue, "theta0": shown.theta0, "psi_upper": shown.psi_upper}
            elif method == "paired-bootstrap" and n >= min(p["needed"], self.drawn):
                res = {view: self._paired_change(p, n, view) for view in self._decision_views()}
                v = PASS if res[self.pass_view].verdict == PASS else (
                    FAIL if res[self.fail_view].verdict == FAIL else INCONCLUSIVE)
                s.verdict, s.used = v, n
                s.extra = {"result": res[self.fail_view] if v == FAIL else res[self.pass_view]}
            elif method == "bootstrap-bca" and n >= min(p["needed"], self.drawn):
                s.extra = self._bootstrap_gate(p, n)
                s.verdict, s.used = s.extra.pop("verdict"), n

    def _paired(self, start: int, end: int, view: str = "lo") -> tuple[np.ndarray, np.ndarray]:
        if any(b is None for b in self.base[start:end]):
            raise UserError("a change gate needs baseline predictions for every sample",
                            hint="pass --baseline FILE or --baseline-models DIR")
        cand = self.correct(end, "cand", view)[start:end].astype(bool)
        base = self.correct(end, "base")[start:end].astype(bool)
        return cand, base

    def _paired_change(self, p: dict[str, Any], n: int, view: str) -> paired.ChangeResult:
        """Candidate vs baseline on the first n samples: one resampling of sample indices drives both metric
        values (paired), the candidate's errors as the view says (the baseline's errored samples count wrong)."""
        if any(b is None for b in self.base[:n]):
            raise UserError("a change gate needs baseline predictions for every sample",
                            hint="pass --baseline FILE or --baseline-models DIR")
        metric, higher = p["metric"], p["direction"] == ">="
        cls = p.get("class")
        if metric in ("mae", "rmse"):
            y = np.asarray([float(v) for v in self.labels[:n]])
            cand = np.asarray([np.nan if e is not None else float(x) for x, e in zip(self.preds[:n], self.errors[:n],
                                                                                     strict=True)])
            base = np.asarray([float(b) if _number(b) else np.nan for b in self.base[:n]])
            keep = ~np.isnan(cand) & ~np.isnan(base)  # regression errors are left out of both
            y, cand, base = y[keep], cand[keep], base[keep]
            fn = metrics.mae if metric == "mae" else metrics.rmse

            def value(which: np.ndarray, i: np.ndarray, axis: int = -1) -> np.ndarray:
                return fn(y[i], which[i], axis=axis)
        elif metric == "auc":
            yc, sc = auc_inputs(self.out, self.labels[:n], self.scores[:n], self.errors[:n], view)
            _, sb = auc_inputs(self.out, self.labels[:n], self._bscores[:n], [None] * n, "lo")
            y, cand, base = yc, sc, sb
            present = sorted(set(y.tolist()) - {-1})

            def value(which: np.ndarray, i: np.ndarray, axis: int = -1) -> np.ndarray:
                if which.ndim == 1:
                    return metrics.auc(y[i] == 1, which[i], axis=axis)
                return metrics.auc_ovr(y[i], which[i], present)
        else:  # f1, macro_f1, precision, recall: label codes
            y, cand, _ = self._view(0, n, view)
            base = np.asarray(self._bp[:n], dtype=np.int64)
            present = sorted(set(y.tolist()))
            c = self._code(cls) if cls is not None else None

            def value(which: np.ndarray, i: np.ndarray, axis: int = -1) -> np.ndarray:
                a, b = y[i], which[i]
                if metric == "macro_f1" or (metric == "f1" and c is None):
                    return metrics.macro_f1(a, b, axis, classes=present)
                if metric == "f1":
                    return metrics.class_f1(a, b, c, axis)
                hit = (a == b)
                mask = np.ones_like(hit) if c is None else ((a == c) if metric == "recall" else (b == c))
                with np.errstate(invalid="ignore", divide="ignore"):
                    return np.sum(hit & mask, axis=axis) / np.sum(mask, axis=axis)

        which_of = {0: cand, 1: base}

        def stat(i: np.ndarray, flag: np.ndarray, axis: int = -1) -> np.ndarray:
            return value(which_of[int(np.asarray(flag).flat[0])], np.asarray(i, dtype=np.int64), axis)

        idx = np.arange(len(y))
        margin = paired.ChangeMargin(absolute=p["margin"], relative=p.get("relative_margin"))
        multi = metric == "auc" and np.ndim(cand) == 2
        return paired.paired_change_test((idx, np.zeros(len(y))), (idx, np.ones(len(y))), stat, higher_better=higher,
                                         margin=margin, alpha=p["alpha"], beta=p["beta"], seed=self.seed,
                                         batch=max(1, 2_000_000 // max(len(y) * (cand.shape[1] if multi else 1), 1)))

    def _bootstrap_gate(self, p: dict[str, Any], n: int) -> dict[str, Any]:
        """Estimate (report view), BCa interval and verdict of a bootstrap gate over the first n samples."""
        higher = p["direction"] == ">="
        if p["metric"] in LATENCY or self.task == "regression":
            est, (lo, hi) = self._bootstrap(p, n, "excl")
            passed = lo >= p["threshold"] if higher else hi <= p["threshold"]
            verdict = PASS if passed else FAIL
            return {"estimate": est, "interval": [lo, hi], "verdict": verdict}
        views = {v: self._bootstrap(p, n, v) for v in dict.fromkeys((self.pass_view, self.fail_view))}
        est = self._bootstrap(p, n, self.report_view, estimate_only=True)[0] if self.report_view not in views \
            else views[self.report_view][0]
        (_, (plo, phi)), (_, (flo, fhi)) = views[self.pass_view], views[self.fail_view]
        if (plo >= p["threshold"]) if higher else (phi <= p["threshold"]):
            verdict = PASS
        elif (flo < p["threshold"]) if higher else (fhi > p["threshold"]):
            verdict = FAIL
        else:
            verdict = INCONCLUSIVE
        return {"estimate": est, "interval": [min(plo, flo), max(phi, fhi)], "verdict": verdict}

    def _bootstrap(self, p: dict[str, Any], n: int, view: str,
                   estimate_only: bool = False) -> tuple[float, tuple[float, float]]:
        metric, seed, alpha = p["metric"], self.seed, p["alpha"]
        nan = (math.nan, math.nan)
        if metric in LATENCY:
            lat = np.asarray(self.latency[:n], dtype=float)
            q = 50 if metric == "latency_p50" else 95
            est = float(np.percentile(lat, q))
            return est, nan if estimate_only else bootstrap.bca_interval(
                (lat,), lambda x, axis=-1: metrics.percentile(x, q, axis), alpha=alpha, seed=seed)
        if metric in ("mae", "rmse"):
            keep = [i for i in range(n) if self.errors[i] is None]
            y = np.asarray([float(self.labels[i]) for i in keep])
            pr = np.asarray([float(self.preds[i]) for i in keep])
            fn = metrics.mae if metric == "mae" else metrics.rmse
            return float(fn(y, pr)), nan if estimate_only else bootstrap.bca_interval(
                (y, pr), fn, alpha=alpha, seed=seed)
        if metric == "auc":
            return self._bootstrap_auc(n, view, alpha, estimate_only)
        y, pr, keep = self._view(0, n, view)
        y, pr = y[keep], pr[keep]
        cls = p.get("class")
        if cls is not None:  # f1 of one class
            c = self._code(cls)

            def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
                return metrics.class_f1(a, b, c, axis)
        else:
            present = sorted(set(y.tolist()))

            def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
                return metrics.macro_f1(a, b, axis, classes=present)
        est = float(stat(y, pr))
        return est, nan if estimate_only else bootstrap.bca_interval((y, pr), stat, alpha=alpha, seed=seed)

    def _bootstrap_auc(self, n: int, view: str, alpha: float,
                       estimate_only: bool) -> tuple[float, tuple[float, float]]:
        y, s = auc_inputs(self.out, self.labels[:n], self.scores[:n], self.errors[:n], view)
        est = auc_estimate(y, s)
        if estimate_only:
            return est, (math.nan, math.nan)
        if s.ndim == 1:  # binary: the positive class's score
            return est, bootstrap.bca_interval((y == 1, s), metrics.auc, alpha=alpha, seed=self.seed,
                                               n_resamples=1000)
        present = sorted(set(y.tolist()) - {-1})

        def stat(i: np.ndarray, axis: int = -1) -> np.ndarray:
            return metrics.auc_ovr(y[i], s[i], present)

        return est, bootstrap.bca_interval((np.arange(len(y)),), stat, alpha=alpha, seed=self.seed,
                                           n_resamples=1000, batch=50)

    # ---- results -------------------------------------------------------------------------------------
    def gate_records(self) -> list[dict[str, Any]]:
        return [self._record(s) for s in self.states]

    def _record(self, s: GateState) -> dict[str, Any]:
        p = s.plan
        rec = {k: p.get(k) for k in ("metric", "kind", "class", "class_configured", "threshold", "direction", "margin",
                                     "alpha", "beta", "beta_configured", "method", "achievable_beta", "discordance")}
        rec["gates"] = p.get("gates", 1)
        rec["class_name"] = self.out.name(p["class"]) if p.get("class") is not None else None
        rec.update(verdict=s.verdict, samples_used=s.used, fixed_n=p["fixed_n"],
                   samples_saved=(p["fixed_n"] - s.used) if p["fixed_n"] is not None and s.used
                   and p["method"] in SEQUENTIAL_METHODS else None)
        rec["needed"] = p.get("needed")
        rec["validity"] = VALIDITY.get(p["method"], "fixed look")
        if p.get("fallback"):
            rec["fallback"] = p["fallback"]
        if s.note:
            rec["note"] = s.note
        method = p["method"]
        name = _name(p, self.out)
        risk = f"alpha {p['alpha']:g}, beta {_beta_text(p)}"
        if p.get("grouped"):
            from . import grouping

            grouping.record(self, rec, s, name, risk)
        elif method in PROPORTION_METHODS:
            self._record_proportion(rec, s, name, risk)
        elif method == "betting":
            self._record_betting(rec, s, name, risk)
        elif method.startswith("mcnemar"):
            self._record_change(rec, s, name, risk)
        elif method == "paired-bootstrap":
            self._record_paired(rec, s, name, risk)
        else:
            est = s.extra.get("estimate")
            interval = s.extra.get("interval", [None, None])
            level = 1 - p["alpha"]
            side = "lower" if p["direction"] == ">=" else "upper"
            bound = interval[0] if side == "lower" else interval[1]
            rec.update(estimate=_finite(est), interval=[_finite(x) for x in interval],
                       interval_method=f"BCa bootstrap; each end a one-sided {level:.0%} bound",
                       interval_levels=[level, level],
                       bound={"side": side, "value": _finite(bound), "level": level, "against": p["threshold"]})
            rec["message"] = (f"{name} {_f(est)} {p['direction']} {p['threshold']} -> {s.verdict} after {s.used} "
                              f"samples; BCa interval [{_f(interval[0])}, {_f(interval[1])}] (one-sided {level:.0%} "
                              f"each); {risk}" + (f"; {s.note}" if s.note else ""))
        return rec

    def _record_proportion(self, rec: dict[str, Any], s: GateState, name: str, risk: str) -> None:
        p = s.plan
        k, t = s.counts.get(self.report_view, (0, 0))
        kp, tp = s.counts.get(self.pass_view, (0, 0))
        kf, tf = s.counts.get(self.fail_view, (0, 0))
        est = k / t if t else None
        a, b = p["alpha"], p["beta"]
        if p["method"] == "truncated-sprt":
            d = p["design"]
            test = truncated_test(p)
            lo = stagewise_bounds(test, kp, tp, 1 - a, 1 - b)[0]
            hi = stagewise_bounds(test, kf, tf, 1 - a, 1 - b)[1]
            levels = [1 - a, 1 - b]
            how = (f"truncated SPRT bounds (stage-wise ordering; exact at looks every {d['batch']} trials, not "
                   f"anytime-valid; lower {1 - a:.0%}: PASS when it clears min; upper {1 - b:.0%}: FAIL when it is "
                   "below min + margin)")
            if tp:
                fl, pl = test.llr_bounds(tp)
                detail = (f"truncated SPRT log-LR {test.llr(kp, tp):.2f} vs [{fl:.2f}, {pl:.2f}] at {tp} trials "
                          f"(boundaries meet at N = {d['max_n']}; exact size {d['size']:.4f}, false FAIL "
                          f"{d['false_fail']:.4f})")
            else:
                detail = "no trials"
            if s.verdict == FAIL:
                bound = {"side": "upper", "value": hi, "level": 1 - b, "against": p["threshold"] + p["margin"]}
            else:
                bound = {"side": "lower", "value": lo, "level": 1 - a, "against": p["threshold"]}
            rec["design"] = dict(d)
        elif p["method"] == "sprt":
            lo, hi = pass_bound(kp, tp, p["margin"], a), fail_bound(kf, tf, p["margin"], b)
            levels = [1 - a, 1 - b]
            how = (f"SPRT bounds (anytime-valid; lower {1 - a:.0%}: PASS when it clears min; upper {1 - b:.0%}: "
                   "FAIL when it is below min + margin)")
            test = Sprt(p["threshold"], p["threshold"] + p["margin"], a, b)
            detail = (f"SPRT log-LR {test.llr(kp, tp):.2f} vs [{test.lower:.2f}, {test.upper:.2f}]" if tp
                      else "no trials")
            if s.verdict == FAIL:
                bound = {"side": "upper", "value": hi, "level": 1 - b, "against": p["threshold"] + p["margin"]}
            else:
                bound = {"side": "lower", "value": lo, "level": 1 - a, "against": p["threshold"]}
        else:
            lo = proportion.interval(kp, tp, 1 - 2 * a, "exact")[0]
            hi = proportion.interval(kf, tf, 1 - 2 * a, "exact")[1]
            levels = [1 - a, 1 - a]
            how = f"Clopper-Pearson exact; each end a one-sided {1 - a:.0%} bound (PASS when the lower clears min)"
            detail = f"exact binomial p = {proportion.pvalue_greater(kp, tp, p['threshold']):.3g}"
            bound = {"side": "lower", "value": lo, "level": 1 - a, "against": p["threshold"]}
        rec.update(estimate=est, interval=[lo, hi], interval_method=how, interval_levels=levels, bound=bound,
                   successes=k, trials=t)
        shown = f"{est:.4f}" if est is not None else "n/a"
        rec["message"] = (f"{name} {shown} {p['direction']} {p['threshold']} -> {s.verdict} after {s.used} samples "
                          f"({k}/{t}); {bound['side']} bound {bound['value']:.4f} ({bound['level']:.0%}); {detail}; "
                          f"{risk}; exact fixed n {p['fixed_n']}"
                          + (f"; {p['fallback']}" if p.get("fallback") else "") + (f"; {s.note}" if s.note else ""))

    def _record_betting(self, rec: dict[str, Any], s: GateState, name: str, risk: str) -> None:
        """Estimate on the metric's scale, the gate's own anytime-valid bounds (PASS side at 1 - alpha, FAIL side
        at 1 - beta/2) and the p-values of its two tests."""
        i = self.states.index(s)
        p, gate = s.plan, self._betting[i]
        n = s.used or len(self.labels)
        views = {v: np.asarray(x[:n] if v != "excl" else x, dtype=float) for v, x in self._bounded[i].items()}
        if s.used and self.on_error == "exclude":  # left-out samples up to the stop
            kept = [e is None for e in self.errors[:n]]
            views["excl"] = views["excl"][:sum(kept)]
        scale = p.get("bound") or 1.0
        rep = views[self.report_view]
        est = float(rep.mean()) * scale if rep.size else None
        ivp, ivf = gate.interval(views[self.pass_view]), gate.interval(views[self.fail_view])
        a, b = p["alpha"], gate.fail_level
        higher = p["direction"] == ">="
        lo, hi = (ivp[0], ivf[1]) if higher else (ivf[0], ivp[1])
        levels = [1 - a, 1 - b] if higher else [1 - b, 1 - a]
        pass_p = gate.pvalues(views[self.pass_view])[0]
        fail_p = gate.pvalues(views[self.fail_view])[1]
        if s.verdict == FAIL:
            alt = p["threshold"] + p["margin"] if higher else p["threshold"] - p["margin"]
            bound = {"side": "upper" if higher else "lower", "value": (hi if higher else lo) * scale,
                     "level": 1 - b, "against": alt}
        else:
            bound = {"side": "lower" if higher else "upper", "value": (lo if higher else hi) * scale, "level": 1 - a,
                     "against": p["threshold"]}
        what = (f"mean of the custom score {p['score']} per sample" if p["metric"] == "score"
                else f"mae with each absolute error clipped at the declared bound {p['bound']:g}")
        rec.update(estimate=est, interval=[lo * scale, hi * scale],
                   interval_method=(f"betting confidence sequence (Waudby-Smith & Ramdas; anytime-valid; "
                                    f"{'lower' if higher else 'upper'} {1 - a:.0%}: PASS side, "
                                    f"{'upper' if higher else 'lower'} {1 - b:.0%}: FAIL side)"),
                   interval_levels=levels, bound=bound, pvalues={"pass": pass_p, "fail": fail_p},
                   test="betting test (Waudby-Smith & Ramdas 2024), anytime-valid", gated=what,
                   planned_n=p["needed"], planned_law=p.get("planned_law"), fail_level=b)
        if p.get("score"):
            rec["score"], rec["score_name"] = p["score"], p["score_name"]
        if p["metric"] == "mae":
            rec["error_bound"], rec["clipped"] = p["bound"], self.clipped[i]  # "bound" is the verdict's
        clipped = f"; {self.clipped[i]} errors above the bound counted at it" if p["metric"] == "mae" else ""
        rec["message"] = (f"{name} {_f(est)} {p['direction']} {p['threshold']} -> {s.verdict} after {s.used} samples; "
                          f"{bound['side']} bound {bound['value']:.4g} ({bound['level']:.0%}); betting test, "
                          f"anytime-valid (p PASS {pass_p:.3g}, p FAIL {fail_p:.3g}); planned n {p['needed']} "
                          f"({p.get('planned_law')} law); {risk}{clipped}" + (f"; {s.note}" if s.note else ""))

    def _record_paired(self, rec: dict[str, Any], s: GateState, name: str, risk: str) -> None:
        """Difference candidate - baseline with its one-sided bounds (lower at 1 - alpha, upper at 1 - beta, on the
        metric's scale), the values of both, and the n the observed standard error says the margin needs."""
        p = s.plan
        r: paired.ChangeResult | None = s.extra.get("result")
        a, b = p["alpha"], p["beta"]
        rel = p.get("relative_margin")
        margins = f"margin {p['margin']:g}" + (f" and {rel:.0%} of the baseline" if rel is not None else "")
        rec.update(relative_margin=rel, min_samples=p.get("min_samples"),
                   test=f"paired BCa bootstrap (fixed look): PASS when the candidate is within {margins} of the "
                   f"baseline at one-sided {1 - a:.0%}", interval_levels=[1 - a, 1 - b], bound=None,
                   interval_method=(f"paired BCa bootstrap (fixed look; lower {1 - a:.0%}, upper {1 - b:.0%}; "
                                    "approximate at small n)"))
        if r is None:
            rec.update(estimate=None, interval=[None, None])
            rec["message"] = f"{name} change vs baseline -> {s.verdict} after {s.used} samples; {risk}" + (
                f"; {s.note}" if s.note else "")
            return
        sign = 1.0 if p["direction"] == ">=" else -1.0
        low = r.lower[0] - p["margin"]  # the absolute contrast's bound, back on the signed-difference scale
        lo, hi = sorted((sign * low, sign * r.diff_upper))
        rec.update(estimate=_finite(r.difference), interval=[_finite(lo), _finite(hi)],
                   candidate_value=_finite(r.candidate), baseline_value=_finite(r.baseline),
                   contrast_lower=[_finite(x) for x in r.lower], difference_se=_finite(r.diff_se), planned_n=r.planned_n)
        rec["message"] = (f"{name} change vs baseline {r.candidate:.4g} vs {r.baseline:.4g} ({r.difference:+.4g}; "
                          f"non-inferior by {margins}) -> {s.verdict} after {s.used} samples; paired BCa bootstrap at "
                          f"one look, not anytime-valid; difference bounds [{lo:+.4g}, {hi:+.4g}]; n for this margin "
                          f"at the observed spread: {r.planned_n if r.planned_n is not None else 'n/a'}; {risk}"
                          + (f"; {s.note}" if s.note else ""))

    def _record_change(self, rec: dict[str, Any], s: GateState, name: str, risk: str) -> None:
        p = s.plan
        n = s.used or len(self.labels)
        view = self.pass_view if s.verdict != FAIL else self.fail_view
        cand, base = self._paired(0, n, view) if n else (np.array([], bool), np.array([], bool))
        nn, wins, losses = mcnemar.discordant_counts(cand, base)
        anytime = p["method"] == "mcnemar-sprt"
        interval = mcnemar.difference_interval(nn, wins, losses, p["alpha"], anytime)
        est = (wins - losses) / nn if nn else None
        rec.update(estimate=est, interval=list(interval),
                   interval_method=("anytime-valid" if anytime else "exact") + " (discordance x McNemar bounds); "
                   f"at least {1 - p['alpha']:.0%} per end",
                   interval_levels=[1 - p["alpha"], 1 - p["alpha"]],
                   # the verdict is the paired McNemar test's, not a comparison of this interval with -margin
                   bound=None, test="paired McNemar non-inferiority test" + (" (sequential)" if anytime else ""),
                   candidate_wins=wins, candidate_losses=losses,
                   observed_discordance=(wins + losses) / nn if nn else None,
                   baseline_accuracy=float(base.mean()) if nn else None)
        rec.update(s.extra)
        shown = f"{est:+.4f}" if est is not None else "n/a"
        rec["message"] = (f"{name} change vs baseline {shown} (non-inferior by margin {p['margin']}) -> {s.verdict} "
                          f"after {s.used} samples; discordant pairs: {wins} candidate wins, {losses} losses; "
                          f"interval [{interval[0]:+.4f}, {interval[1]:+.4f}]; {risk}; fixed n {p['fixed_n']} "
                          f"planned at discordance {p.get('discordance', 0.1):g}" + (f"; {s.note}" if s.note else ""))


def auc_inputs(output: Output, labels: list[str], scores: list[Any], errors: list[str | None],
               view: str) -> tuple[np.ndarray, np.ndarray]:
    """(column of each sample's label in output.classes, scores) for AUC, errored samples per the view:
    counted wrong (lo: ranked last for its class), right (hi: ranked first) or left out (excl)."""
    col = {c: j for j, c in enumerate(output.classes)}
    rows = [i for i in range(len(labels)) if view != "excl" or errors[i] is None]
    y = np.asarray([col.get(labels[i], -1) for i in rows], dtype=np.int64)
    s = [scores[i] if errors[i] is None else imputed_score(output, labels[i], right=view == "hi") for i in rows]
    return y, np.asarray(s, dtype=float)


def auc_estimate(y: np.ndarray, s: np.ndarray) -> float:
    """Binary AUC of the positive class (column 1), or one-vs-rest macro AUC over the classes present."""
    if len(y) == 0:
        return math.nan
    if s.ndim == 1:
        return float(metrics.auc(y == 1, s))
    return float(metrics.auc_ovr(y, s, sorted(set(y.tolist()) - {-1})))


def _name(plan: dict[str, Any], output: Output | None = None) -> str:
    cls = plan.get("class")
    if plan.get("score_name"):
        return str(plan["score_name"])
    if cls is None:
        return plan["metric"]
    shown = output.name(cls) if output is not None else cls
    return f"{plan['metric']}[{shown}]"


def _beta_text(p: dict[str, Any]) -> str:
    """beta as configured, and the per-gate share when the suite splits it."""
    gates = p.get("gates", 1)
    if gates > 1:
        return f"{_g(p['beta_configured'])} ({_g(p['beta'])} per gate over {gates} gates)"
    return _g(p.get("beta_configured", p["beta"]))


def _number(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _finite(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _f(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4f}"

