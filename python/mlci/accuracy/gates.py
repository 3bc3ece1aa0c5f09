"""Gate planning and evaluation on the prefix of the pre-drawn sample order.

`plan_gates` turns the suite's gates into test plans (method, split beta, exact fixed n, samples needed)
before anything runs, so impossible requests fail fast with the n they would need. `Evaluator` is fed
batches strictly in pre-drawn order -- by the engine's controller as the prefix grows, or by `merge` over
the recombined shards -- and decides each gate at the same looks either way, which is why a merged run
reproduces an unsharded one exactly.
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
from .stats import bootstrap, fixed_n, mcnemar, proportion
from .stats.sprt import Sprt

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


def task_for(gates: list[dict[str, Any]]) -> str:
    """classification (labels), regression (numbers: mae/rmse) or scores (binary scores: auc)."""
    names = {g["metric"] for g in gates}
    if names & {"mae", "rmse"}:
        return "regression"
    if "auc" in names:
        return "scores"
    return "classification"


def plan_gates(gates: list[dict[str, Any]], *, sequential: bool, available: int, cap: int,
               prevalence: dict[str, float], where: str) -> list[dict[str, Any]]:
    """One plan per gate; raises UserError for thresholds or margins the data cannot support."""
    k = len(gates)
    plans = []
    for i, g in enumerate(gates):
        metric, kind = g["metric"], g["kind"]
        gw = f"{where}.gates[{i}]"
        higher = metric in HIGHER_BETTER
        threshold = g["min"] if higher else g["max"]
        beta = g["beta"] / k
        cls = None if g.get("class") is None else label_key(g["class"])
        if cls is not None and cls not in prevalence:
            raise UserError(f"class '{cls}' does not occur in the dataset's labels", where=gw,
                            hint=f"labels present: {', '.join(sorted(prevalence)[:20])}")
        share = prevalence[cls] if (cls is not None and metric in ("precision", "recall")) else 1.0
        plan: dict[str, Any] = {
            "metric": metric, "kind": kind, "class": cls, "threshold": threshold,
            "direction": ">=" if higher else "<=", "margin": g["margin"], "alpha": g["alpha"], "beta": beta,
            "beta_configured": g["beta"], "fixed_n": None, "needed": None,
        }
        if kind == "change":
            plan["method"] = "mcnemar-sprt" if sequential else "mcnemar-exact"
            plan["needed"] = cap  # the discordance rate is unknown until the run: use every drawn sample
        elif metric in PROPORTION_METRICS:
            if threshold is None or not 0 < threshold < 1 or threshold + g["margin"] >= 1:
                raise UserError(f"{metric} threshold {threshold!r} with margin {g['margin']} is outside (0, 1)",
                                where=gw, hint="a proportion gate needs 0 < min and min + margin < 1")
            fx = fixed_n.exact_n(threshold, threshold + g["margin"], g["alpha"], beta)
            plan["fixed_n"] = math.ceil(fx.n / share)
            plan["critical"] = fx.critical
            plan["method"] = "sprt" if sequential else "binomial-exact"
            plan["needed"] = cap if sequential else plan["fixed_n"]
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
        if plan["fixed_n"] is not None and plan["fixed_n"] > available:
            raise UserError(
                f"gate {metric} (min {threshold}, margin {g['margin']}, alpha {g['alpha']}, beta {beta:g}) needs "
                f"n = {plan['fixed_n']} samples for an exact fixed-n test but the dataset has {available}",
                where=gw, hint="widen the margin, raise alpha/beta, or use a larger test set")
        if plan["needed"] is not None and plan["needed"] > cap:
            raise UserError(f"gate {metric} needs {plan['needed']} samples but max_samples allows {cap}", where=gw,
                            hint=f"raise max_samples to >= {plan['needed']} (the dataset has {available})")
        plans.append(plan)
    return plans


@dataclass
class GateState:
    plan: dict[str, Any]
    verdict: str | None = None
    used: int = 0  # samples in the prefix when decided
    k: int = 0
    n: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluator:
    """Accumulates outcomes in pre-drawn order and decides the gates after each batch (look)."""

    plans: list[dict[str, Any]]
    task: str
    on_error: str
    drawn: int
    seed: int = 0
    labels: list[Any] = field(default_factory=list)
    preds: list[Any] = field(default_factory=list)
    base: list[Any] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    verdict: str | None = None
    reason: str = ""
    stopped_at: int | None = None

    def __post_init__(self) -> None:
        self._ok: list[float] = []
        self._base_ok: list[float] = []
        self.states = [GateState(p) for p in self.plans]
        self.seq_mcnemar = {i: mcnemar.SequentialMcNemar(p["margin"], p["alpha"], p["beta"])
                            for i, p in enumerate(self.plans) if p["method"] == "mcnemar-sprt"}

    # ---- feeding -------------------------------------------------------------------------------------
    def feed(self, labels: list[Any], preds: list[Any], errors: list[str | None], latency: list[float],
             base: list[Any] | None = None) -> str | None:
        """Add one batch; return the overall verdict once reached (further batches are then ignored)."""
        if self.verdict is not None:
            return self.verdict
        start = len(self.labels)
        self.labels += labels
        self.preds += preds
        self.errors += errors
        self.latency += latency
        self.base += base if base is not None else [None] * len(labels)
        self._ok += [self._score(p, y, e) for p, y, e in zip(preds, labels, errors, strict=True)]
        self._base_ok += [self._score(b, y, None) if b is not None else math.nan
                          for b, y in zip(self.base[start:], labels, strict=True)]
        n = len(self.labels)
        if self.on_error == "fail" and any(e is not None for e in errors):
            bad = sum(e is not None for e in self.errors)
            self._close_undecided(n)
            self._stop(FAIL, f"{bad} prediction error(s) (accuracy.on_error: fail)", n)
            return self.verdict
        self._look(start, n)
        decided = [s.verdict for s in self.states]
        if FAIL in decided:
            self._stop(FAIL, "a gate failed", n)
        elif all(v == PASS for v in decided):
            self._stop(PASS, "every gate passed", n)
        elif n >= self.drawn:
            self._close_undecided(n)
            self._stop(INCONCLUSIVE, f"no verdict within the {self.drawn} drawn samples", n)
        return self.verdict

    def _stop(self, verdict: str, reason: str, n: int) -> None:
        self.verdict, self.reason, self.stopped_at = verdict, reason, n

    def _close_undecided(self, n: int) -> None:
        for s in self.states:
            if s.verdict is None:
                s.verdict, s.used = INCONCLUSIVE, n
                if s.plan["method"] in ("sprt", "binomial-exact"):
                    s.k, s.n = self._trials(s.plan, n)

    def finish(self) -> str:
        """Close a run whose samples ran out before the cap (shard, or fewer batches than drawn)."""
        if self.verdict is None:
            n = len(self.labels)
            self._close_undecided(n)
            self._stop(INCONCLUSIVE, f"no verdict after {n} samples", n)
        return self.verdict or INCONCLUSIVE

    # ---- per-sample views ------------------------------------------------------------------------------
    def _score(self, pred: Any, label: Any, err: str | None) -> float:
        if err is not None or pred is None:
            return 0.0 if self.on_error == "count_wrong" else math.nan
        if self.task == "scores":
            return float((float(pred) >= 0.5) == bool(int(float(label))))
        if self.task == "regression":
            return math.nan
        return float(label_key(pred) == label_key(label))

    def correct(self, upto: int, which: str = "cand") -> np.ndarray:
        """Per-sample correctness (1/0) with prediction errors handled by the policy (nan = excluded)."""
        cache = self._ok if which == "cand" else self._base_ok
        return np.asarray(cache[:upto], dtype=float)

    def _trials(self, plan: dict[str, Any], upto: int) -> tuple[int, int]:
        """(successes, trials) for a proportion gate over the first `upto` samples."""
        ok = self.correct(upto)
        mask = ~np.isnan(ok)
        cls, metric = plan.get("class"), plan["metric"]
        if cls is not None and metric == "recall":
            mask &= np.array([label_key(v) == cls for v in self.labels[:upto]], dtype=bool)
        elif cls is not None and metric == "precision":
            mask &= np.array([p is not None and label_key(p) == cls for p in self.preds[:upto]], dtype=bool)
        return int(np.nansum(ok[mask])), int(mask.sum())

    # ---- one look ------------------------------------------------------------------------------------
    def _look(self, start: int, n: int) -> None:
        for i, s in enumerate(self.states):
            if s.verdict is not None:
                continue
            p, method = s.plan, s.plan["method"]
            if method == "sprt":
                k, t = self._trials(p, n)
                v = Sprt(p["threshold"], p["threshold"] + p["margin"], p["alpha"], p["beta"]).decide(k, t)
                if v:
                    s.verdict, s.used, s.k, s.n = v, n, k, t
            elif method == "binomial-exact" and n >= p["needed"]:
                k, t = self._trials(p, p["needed"])
                s.verdict, s.used, s.k, s.n = fixed_n.decide(k, t, p["threshold"], p["alpha"]), p["needed"], k, t
            elif method == "mcnemar-sprt":
                cand, base = self._paired(start, n)
                v = self.seq_mcnemar[i].update(cand, base)
                if v:
                    s.verdict, s.used = v, n
            elif method == "mcnemar-exact" and n >= min(p["needed"], self.drawn):
                cand, base = self._paired(0, n)
                cnt = mcnemar.discordant_counts(cand, base)
                res = mcnemar.fixed_test(*cnt, p["margin"], p["alpha"])
                s.verdict, s.used = res.verdict, n
                s.extra = {"pvalue": res.pvalue, "theta0": res.theta0, "psi_upper": res.psi_upper}
            elif method == "bootstrap-bca" and n >= min(p["needed"], self.drawn):
                est, (lo, hi) = self._bootstrap(p, n)
                passed = (lo >= p["threshold"]) if p["direction"] == ">=" else (hi <= p["threshold"])
                s.verdict, s.used = (PASS if passed else FAIL), n
                s.extra = {"estimate": est, "interval": [lo, hi]}

    def _paired(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        if any(b is None for b in self.base[start:end]):
            raise UserError("a change gate needs baseline predictions for every sample",
                            hint="pass --baseline FILE or --baseline-models DIR")
        cand = np.nan_to_num(self.correct(end)[start:end], nan=0.0).astype(bool)
        base = self.correct(end, "base")[start:end].astype(bool)
        return cand, base

    def _bootstrap(self, p: dict[str, Any], n: int) -> tuple[float, tuple[float, float]]:
        keep = [i for i in range(n) if self.errors[i] is None and self.preds[i] is not None]
        metric, seed = p["metric"], self.seed
        if metric in ("latency_p50", "latency_p95"):
            lat = np.asarray([self.latency[i] for i in range(n)], dtype=float)
            q = 50 if metric == "latency_p50" else 95
            est = float(np.percentile(lat, q))
            return est, bootstrap.bca_interval((lat,), lambda x, axis=-1: metrics.percentile(x, q, axis),
                                               alpha=p["alpha"], seed=seed)
        if metric in ("mae", "rmse"):
            y = np.asarray([float(self.labels[i]) for i in keep])
            pr = np.asarray([float(self.preds[i]) for i in keep])
            fn = metrics.mae if metric == "mae" else metrics.rmse
            return float(fn(y, pr)), bootstrap.bca_interval((y, pr), fn, alpha=p["alpha"], seed=seed)
        if metric == "auc":
            y = np.asarray([int(float(self.labels[i])) for i in keep])
            sc = np.asarray([float(self.preds[i]) for i in keep])
            return metrics.auc(y, sc), bootstrap.bca_interval((y, sc), metrics.auc, alpha=p["alpha"], seed=seed,
                                                               vectorized=False, n_resamples=1000)
        labels = [label_key(self.labels[i]) for i in keep]
        preds = [label_key(self.preds[i]) for i in keep]
        classes, y, pr = metrics.encode(labels, preds)
        cls = p.get("class")
        if cls is not None:  # f1 of one class
            c = classes.index(cls)

            def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
                return metrics.class_f1(a, b, c, axis)
        else:
            present = sorted(set(y.tolist()))

            def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
                return metrics.macro_f1(a, b, axis, classes=present)
        return float(stat(y, pr)), bootstrap.bca_interval((y, pr), stat, alpha=p["alpha"], seed=seed)

    # ---- results -------------------------------------------------------------------------------------
    def gate_records(self) -> list[dict[str, Any]]:
        return [self._record(i, s) for i, s in enumerate(self.states)]

    def _record(self, i: int, s: GateState) -> dict[str, Any]:
        p = s.plan
        rec = {k: p[k] for k in ("metric", "kind", "class", "threshold", "direction", "margin", "alpha", "beta",
                                 "beta_configured", "method")}
        rec.update(verdict=s.verdict, samples_used=s.used, fixed_n=p["fixed_n"],
                   samples_saved=(p["fixed_n"] - s.used) if p["fixed_n"] is not None and s.used else None)
        method = p["method"]
        name = p["metric"] + (f"[{p['class']}]" if p["class"] is not None else "")
        if method in ("sprt", "binomial-exact") or (method == "sprt" and s.verdict == INCONCLUSIVE):
            est = s.k / s.n if s.n else None
            if method == "sprt":
                interval = sprt_interval(s.k, s.n, p)
                how = (f"anytime-valid {1 - p['alpha']:.0%} confidence sequence (beta-binomial mixture, prior "
                       "centred between min and min + margin); the verdict is the SPRT's")
                test = Sprt(p["threshold"], p["threshold"] + p["margin"], p["alpha"], p["beta"])
                detail = (f"SPRT log-LR {test.llr(s.k, s.n):.2f} vs [{test.lower:.2f}, {test.upper:.2f}]"
                          if s.n else "no trials")
            else:
                interval = proportion.interval(s.k, s.n, 1 - 2 * p["alpha"], "exact")
                how = f"Clopper-Pearson exact {1 - 2 * p['alpha']:.0%} (one-sided {1 - p['alpha']:.0%} bounds)"
                detail = f"exact binomial p = {proportion.pvalue_greater(s.k, s.n, p['threshold']):.3g}"
            rec.update(estimate=est, interval=list(interval), interval_method=how, successes=s.k, trials=s.n)
            shown = f"{est:.4f}" if est is not None else "n/a"
            rec["message"] = (f"{name} {shown} {p['direction']} {p['threshold']} -> {s.verdict} after {s.used} samples "
                              f"({s.k}/{s.n}); interval [{interval[0]:.4f}, {interval[1]:.4f}]; {detail}; "
                              f"alpha {p['alpha']}, beta {p['beta']:g}; exact fixed n {p['fixed_n']}")
        elif method.startswith("mcnemar"):
            n = s.used or len(self.labels)
            cand, base = self._paired(0, n) if n else (np.array([], bool), np.array([], bool))
            nn, wins, losses = mcnemar.discordant_counts(cand, base)
            anytime = method == "mcnemar-sprt"
            interval = mcnemar.difference_interval(nn, wins, losses, p["alpha"], anytime)
            est = (wins - losses) / nn if nn else None
            psi = (wins + losses) / nn if nn else 0.0
            rec["fixed_n"] = mcnemar.planned_n(psi, p["margin"], p["alpha"], p["beta"]) if nn else None
            rec["samples_saved"] = (rec["fixed_n"] - s.used) if rec["fixed_n"] and s.used else None
            rec.update(estimate=est, interval=list(interval),
                       interval_method=("anytime-valid" if anytime else "exact") + " (discordance x McNemar bounds)",
                       candidate_wins=wins, candidate_losses=losses, baseline_accuracy=float(base.mean()) if nn else None)
            rec.update(s.extra)
            shown = f"{est:+.4f}" if est is not None else "n/a"
            rec["message"] = (f"{name} change vs baseline {shown} (non-inferior by margin {p['margin']}) -> {s.verdict} "
                              f"after {s.used} samples; discordant pairs: {wins} candidate wins, {losses} losses; "
                              f"interval [{interval[0]:+.4f}, {interval[1]:+.4f}]; alpha {p['alpha']}, beta {p['beta']:g}")
        else:
            est = s.extra.get("estimate")
            interval = s.extra.get("interval", [None, None])
            rec.update(estimate=est, interval=interval,
                       interval_method=f"BCa bootstrap {1 - 2 * p['alpha']:.0%} (one-sided {1 - p['alpha']:.0%} bound)")
            shown = f"{est:.4f}" if est is not None else "n/a"
            rec["message"] = (f"{name} {shown} {p['direction']} {p['threshold']} -> {s.verdict} after {s.used} samples; "
                              f"BCa interval [{_f(interval[0])}, {_f(interval[1])}]; alpha {p['alpha']}")
        return rec


def sprt_interval(k: int, n: int, plan: dict[str, Any]) -> tuple[float, float]:
    """Anytime-valid interval shown with an SPRT verdict.

    The mixing prior is fixed before the data (mean halfway between min and min + margin, sd = margin), which
    concentrates the mixture where the decision is made; any fixed prior keeps the sequence valid.
    """
    m = plan["threshold"] + plan["margin"] / 2
    strength = max(m * (1 - m) / plan["margin"] ** 2 - 1, 2.0)
    return proportion.confidence_sequence(k, n, plan["alpha"], m * strength, (1 - m) * strength)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
