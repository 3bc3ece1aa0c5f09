"""The report's content, computed once from the records and rendered twice (HTML and Markdown).

Pure: records, build.json, JUnit summaries, baselines and history pointers in; a plain dict out. Strings in the
view are unescaped data: each renderer escapes for its own format (jinja2 autoescape, the Markdown escaper).
Charts for HTML are already-escaped SVG Markup.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import fmt, svg
from .junit import JUnitSummary

VERDICT_ORDER = {"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2}
VERDICT_WORDS = {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "inconclusive"}
MAX_ERRORS = 20
MD_MATRIX_MAX = 12


@dataclass
class Inputs:
    """Everything a report is made of (loaded at the edges by the CLI)."""

    records: list[dict[str, Any]]
    build: dict[str, Any] | None = None
    junit: list[JUnitSummary] = field(default_factory=list)
    baselines: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # suite -> baseline record
    baseline_sources: dict[str, str] = field(default_factory=dict)  # suite -> where it came from
    trends: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # suite -> pointers, oldest first
    trend_branch: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "history store unavailable"
    report_url: str | None = None
    generated: str | None = None


def overall_verdict(verdicts: Sequence[str]) -> str:
    if not verdicts:
        return "INCONCLUSIVE"
    return min(verdicts, key=lambda v: VERDICT_ORDER.get(v, 1))


def gate_label(g: Mapping[str, Any]) -> str:
    label = str(g.get("score_name") or g.get("metric") or "?")
    if g.get("class") is not None:
        label += f" [{g.get('class_name') or g['class']}]"
    if g.get("kind") == "change":
        label += " vs baseline"
    if g.get("slice") is not None:  # a sliced suite's gate (accuracy/slicing.py)
        label = f"[{g['slice']}] {label}"
    return label


def threshold_text(g: Mapping[str, Any]) -> str:
    metric = str(g.get("metric") or "")
    direction = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}.get(str(g.get("direction") or ""), str(g.get("direction") or ""))
    if g.get("kind") == "change":
        margin = g.get("margin")
        if not fmt.is_number(margin):
            return "non-inferior"
        rel = g.get("relative_margin")
        also = f", {rel * 100:g}% of baseline" if fmt.is_number(rel) else ""
        if g.get("direction") == "<=":
            return f"≤ {fmt.delta(metric, margin)}{also} vs baseline"
        return f"≥ {fmt.delta(metric, -margin)}{also} vs baseline"
    return f"{direction} {fmt.value(metric, g.get('threshold'))}".strip()


def _saved(g: Mapping[str, Any]) -> str:
    saved, fixed = g.get("samples_saved"), g.get("fixed_n")
    if not fmt.is_number(saved) or saved <= 0:
        return "–" if not fmt.is_number(saved) else "0"
    if fmt.is_number(fixed) and fixed > 0:
        return f"{fmt.count(int(saved))} ({saved / fixed * 100:.0f}%)"
    return fmt.count(int(saved))


def _baseline_value(baseline: Mapping[str, Any], g: Mapping[str, Any]) -> Any:
    """The baseline's estimate for the same gate, else the same metric from its metrics block."""
    for bg in baseline.get("gates") or []:
        if isinstance(bg, dict) and bg.get("metric") == g.get("metric") and _same_class(bg.get("class"), g.get("class")) \
                and bg.get("kind", "absolute") == g.get("kind", "absolute"):
            return bg.get("estimate")
    if g.get("class") is None:
        return metric_value(baseline.get("metrics") or {}, str(g.get("metric")))
    pc = ((baseline.get("metrics") or {}).get("per_class") or {}).get(str(g.get("class"))) or {}
    return pc.get(str(g.get("metric")))


def metric_value(metrics: Mapping[str, Any], metric: str) -> Any:
    if metric.startswith("latency_"):
        return (metrics.get("latency_ms") or {}).get(metric.split("_", 1)[1])
    return metrics.get(metric)


def _short_method(method: Any) -> str:
    """The interval method's name without its explanation (kept for the tooltip)."""
    text = str(method or "")
    return re.split(r"[(;]", text, maxsplit=1)[0].strip() or text


def _gates(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for g in record.get("gates") or []:
        if not isinstance(g, dict):
            continue
        metric = str(g.get("metric") or "")
        verdict = str(g.get("verdict") or "INCONCLUSIVE")
        change = g.get("kind") == "change"
        margin = g.get("margin")
        # a change gate estimates candidate - baseline: shown as a difference, bounded below by -margin
        lower_better = g.get("direction") == "<="
        bound = (margin if lower_better else -margin) if change and fmt.is_number(margin) else g.get("threshold")
        iv = g.get("interval")
        if change:
            estimate = fmt.delta(metric, g.get("estimate")) if fmt.is_number(g.get("estimate")) else "–"
            interval = (f"[{fmt.delta(metric, iv[0])}, {fmt.delta(metric, iv[1])}]"
                        if isinstance(iv, (list, tuple)) and len(iv) == 2 and all(fmt.is_number(x) for x in iv)
                        else "–")
        else:
            estimate, interval = fmt.value(metric, g.get("estimate")), fmt.interval(metric, iv)
        alpha = g.get("alpha_configured", g.get("alpha"))
        rows.append({
            "label": gate_label(g),
            "metric": metric,
            "estimate": estimate,
            "interval": interval,
            "interval_method": _short_method(g.get("interval_method")),
            "interval_method_full": str(g.get("interval_method") or ""),
            "threshold": threshold_text(g),
            "used": fmt.count(g.get("samples_used")),
            "saved": _saved(g),
            "risk": _risk(g, metric, alpha, margin),
            "validity": str(g.get("validity") or ""),
            "rests_on": _rests_on(g, metric),
            "levels": _levels(g),
            "verdict": verdict,
            "vclass": verdict.lower(),
            "message": str(g.get("message") or ""),
            "bar": svg.interval_bar(metric=metric, estimate=g.get("estimate"), interval=iv, threshold=bound,
                                    verdict=verdict),
        })
    return rows


def _risk(g: Mapping[str, Any], metric: str, alpha: Any, margin: Any) -> str:
    """α, β as configured (and the per-gate share when the suite splits β), margin: one format everywhere."""
    beta, split, gates = g.get("beta_configured", g.get("beta")), g.get("beta"), g.get("gates")
    if not (fmt.is_number(alpha) and fmt.is_number(beta)):
        return ""
    text = f"α {fmt.risk(alpha)} · β {fmt.risk(beta)}"
    if fmt.is_number(split) and fmt.is_number(gates) and gates > 1:
        text += f" ({fmt.risk(split)} per gate, {gates} gates)"
    return text + f" · margin {fmt.delta(metric, margin).lstrip('+')}"


def _rests_on(g: Mapping[str, Any], metric: str) -> str:
    """The bound the verdict rests on, against what: 'lower 95% bound 92.1% ≥ 92.0%'."""
    b = g.get("bound")
    if isinstance(g.get("test"), str) and not isinstance(b, dict):
        return g["test"]  # the test decides (a paired test, a truncated design); its interval is shown for scale
    if not isinstance(b, dict) or not fmt.is_number(b.get("value")) or not fmt.is_number(b.get("against")):
        return ""
    change = g.get("kind") == "change"
    show = (lambda v: fmt.delta(metric, v)) if change else (lambda v: fmt.value(metric, v))
    value, against = b["value"], b["against"]
    op = ("≥" if value >= against else "<") if b.get("side") == "lower" else ("≤" if value <= against else ">")
    level = f" {b['level'] * 100:.0f}%" if fmt.is_number(b.get("level")) else ""
    return f"{b.get('side', '')}{level} bound {show(value)} {op} {show(against)}"


def _levels(g: Mapping[str, Any]) -> str:
    """Confidence of the interval's ends, e.g. '95% / 90%' (lower / upper)."""
    lv = g.get("interval_levels")
    if not isinstance(lv, (list, tuple)) or len(lv) != 2 or not all(fmt.is_number(x) for x in lv):
        return ""
    lo, hi = (f"{x * 100:.0f}%" for x in lv)
    return lo if lo == hi else f"{lo} / {hi}"


def _metrics(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every metric over the samples scored, whatever the verdict (a FAIL stops early but scored samples count)."""
    m = record.get("metrics") or {}
    rows = []
    names = {"accuracy": "accuracy", "macro_f1": "macro-F1", "auc": "AUC", "mae": "MAE", "rmse": "RMSE"}
    for metric, name in names.items():
        if fmt.is_number(m.get(metric)):
            rows.append({"label": name, "value": fmt.value(metric, m.get(metric))})
    for name, v in sorted((m.get("scores") or {}).items()):  # custom per-sample scores, by the callable's name
        if fmt.is_number(v):
            rows.append({"label": f"{name} (custom score, mean)", "value": fmt.value("score", v)})
    lat = m.get("latency_ms") or {}
    if fmt.is_number(lat.get("p95")):
        rows.append({"label": "latency p50 / p95 (per sample)",
                     "value": f"{fmt.value('latency_p50', lat.get('p50'))} / {fmt.value('latency_p95', lat['p95'])}"})
    elif fmt.is_number(lat.get("mean")):
        rows.append({"label": "latency (batch time per sample)", "value": fmt.value("latency_p50", lat["mean"])})
    if fmt.is_number(m.get("n")):
        errors = m.get("errors") or 0
        how = {"wrong": "counted wrong", "excluded": "left out"}.get(str(m.get("errors_counted")), "")
        rows.append({"label": "samples scored", "value": fmt.count(m.get("n")) + (
            f" ({fmt.count(errors)} prediction error{'s' if errors != 1 else ''}{', ' + how if how else ''})"
            if errors else "")})
    return rows


def class_names(record: Mapping[str, Any]) -> dict[str, str]:
    names = (((record.get("plan") or {}).get("output") or {}).get("names")) or {}
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}


def _named(label: Any, names: Mapping[str, str]) -> str:
    key = str(label)
    return f"{names[key]} ({key})" if key in names and names[key] != key else key


def _output_text(record: Mapping[str, Any]) -> str:
    out = (record.get("plan") or {}).get("output") or {}
    text = out.get("transformation") if isinstance(out, dict) else None
    return f"predictions: {text}" if isinstance(text, str) and text else ""


def _deltas(record: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not baseline:
        return []
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, Any]] = set()

    def add(label: str, metric: str, cur: Any, base: Any) -> None:
        if not fmt.is_number(cur) and not fmt.is_number(base):
            return
        d = cur - base if fmt.is_number(cur) and fmt.is_number(base) else None
        rows.append({"label": label, "metric": metric, "current": fmt.value(metric, cur),
                     "baseline": fmt.value(metric, base), "delta": fmt.delta(metric, d),
                     "direction": fmt.direction(metric, d)})

    for g in record.get("gates") or []:
        if isinstance(g, dict) and g.get("kind") != "change":
            seen.add((g.get("metric"), g.get("class")))
            add(gate_label(g), str(g.get("metric")), g.get("estimate"), _baseline_value(baseline, g))
    metrics, bmetrics = record.get("metrics") or {}, baseline.get("metrics") or {}
    for metric in ("accuracy", "macro_f1", "auc", "mae", "rmse", "latency_p50", "latency_p95"):
        if (metric, None) in seen:
            continue
        add(metric.replace("_", " "), metric, metric_value(metrics, metric), metric_value(bmetrics, metric))
    return rows


def _per_class(record: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    per_class = (record.get("metrics") or {}).get("per_class") or {}
    base_pc = ((baseline or {}).get("metrics") or {}).get("per_class") or {}
    names = class_names(record)
    rows = []
    for label, m in per_class.items():
        if not isinstance(m, dict):
            continue
        b = base_pc.get(label) or {}
        d = m.get("f1") - b["f1"] if fmt.is_number(m.get("f1")) and fmt.is_number(b.get("f1")) else None
        rows.append({
            "label": _named(label, names),
            "precision": fmt.value("precision", m.get("precision")),
            "recall": fmt.value("recall", m.get("recall")),
            "f1": fmt.value("f1", m.get("f1")),
            "p_pct": _pct(m.get("precision")), "r_pct": _pct(m.get("recall")), "f1_pct": _pct(m.get("f1")),
            "support": fmt.count(m.get("support")),
            "f1_delta": fmt.delta("f1", d) if baseline else "",
            "f1_direction": fmt.direction("f1", d),
            "weak": fmt.is_number(m.get("f1")) and m["f1"] < 0.8,
        })
    return rows


def _pct(v: Any) -> float:
    return round(min(max(v, 0.0), 1.0) * 100, 1) if fmt.is_number(v) else 0.0


def _confusion(record: Mapping[str, Any]) -> dict[str, Any]:
    conf = (record.get("metrics") or {}).get("confusion") or {}
    names = class_names(record)
    labels = [_named(x, names) for x in conf.get("labels") or []]
    matrix = conf.get("matrix") or []
    valid = bool(labels) and len(matrix) == len(labels) and all(
        isinstance(row, list) and len(row) == len(labels) and all(fmt.is_number(c) for c in row) for row in matrix)
    if not valid:
        return {"svg": "", "labels": [], "rows": [], "top": [], "small": False}
    top = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, c in enumerate(row):
            if i != j and c:
                top.append({"true": labels[i], "pred": labels[j], "count": int(c), "share": f"{c / total * 100:.1f}%"})
    top.sort(key=lambda t: -t["count"])
    return {
        "svg": svg.confusion_matrix(labels, matrix),
        "labels": labels,
        "rows": [{"label": labels[i], "cells": [int(c) for c in row]} for i, row in enumerate(matrix)],
        "top": top[:5],
        "small": len(labels) <= MD_MATRIX_MAX,
    }


def _primary_gate(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first absolute gate: its metric is what the trend draws (a change gate's estimate is a difference)."""
    gates = [g for g in record.get("gates") or [] if isinstance(g, dict)]
    return next((g for g in gates if g.get("kind", "absolute") != "change"), None)


def _pointer_value(pointer: Mapping[str, Any], metric: str, cls: Any) -> Any:
    for g in pointer.get("gates") or []:
        if isinstance(g, dict) and g.get("metric") == metric and _same_class(g.get("class"), cls) \
                and g.get("kind", "absolute") != "change":
            return g.get("estimate")
    return (pointer.get("metrics") or {}).get(metric) if cls is None else None


def _same_class(a: Any, b: Any) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and str(a) == str(b))


def _trend(record: Mapping[str, Any], pointers: Sequence[Mapping[str, Any]], branch: str | None) -> dict[str, Any]:
    gate = _primary_gate(record)
    metric = str(gate.get("metric")) if gate else "accuracy"
    cls = gate.get("class") if gate else None
    git = record.get("git") or {}
    points: list[svg.TrendPoint] = []
    for p in pointers:
        if p.get("commit") == git.get("commit") and p.get("started") == record.get("started"):
            continue  # this run itself, already recorded: it is drawn as "this build" below
        v = _pointer_value(p, metric, cls)
        if fmt.is_number(v):
            commit = str(p.get("commit") or "")[:7]
            when = str(p.get("started") or p.get("recorded") or "")[:16].replace("T", " ")
            points.append(svg.TrendPoint(commit, float(v), str(p.get("verdict")),
                                         f"{commit} {when} · {p.get('verdict')} · {fmt.value(metric, v)}"))
    cur = gate.get("estimate") if gate else metric_value(record.get("metrics") or {}, metric)
    if fmt.is_number(cur):
        points.append(svg.TrendPoint("this build", float(cur), str(record.get("verdict")),
                                     f"this build · {record.get('verdict')} · {fmt.value(metric, cur)}", current=True))
    label = metric + (f" [{cls}]" if cls is not None else "")
    threshold = gate.get("threshold") if gate and gate.get("kind") != "change" else None
    history_points = len(points) - (1 if fmt.is_number(cur) else 0)
    return {
        "metric": label,
        "branch": branch,
        "count": history_points,
        "svg": svg.trend(points, metric=metric, threshold=threshold,
                         threshold_label=f"gate {threshold_text(gate)}" if gate and threshold is not None else "")
        if history_points else "",
        "spark": svg.sparkline([p.value for p in points]) if history_points else "",
        "first": fmt.value(metric, points[0].value) if points else "",
        "last": fmt.value(metric, points[-1].value) if points else "",
    }


def _headline(record: Mapping[str, Any], gates: list[dict[str, Any]]) -> str:
    """One line for the banner, built from the numbers (the engine's messages are too long for a headline)."""
    verdict = str(record.get("verdict"))
    total = len(gates)
    plural = "s" if total != 1 else ""
    if not total:
        return f"{verdict.lower()}: no gates in this record"
    if verdict == "PASS":
        return f"all {total} gate{plural} passed"
    bad = [g for g in gates if g["verdict"] == verdict] or gates
    summary = "; ".join(f"{g['label']} {g['estimate']} (needs {g['threshold']})" for g in bad[:2])
    if verdict == "FAIL":
        return f"{len(bad)} of {total} gate{plural} failed: {summary}"
    reason = record.get("reason")
    why = f" ({reason})" if isinstance(reason, str) and 0 < len(reason) <= 120 else ""
    return f"not enough evidence yet{why}: {summary}"


def _samples(record: Mapping[str, Any]) -> str:
    sample = record.get("sample") or {}
    used, drawn = sample.get("used"), sample.get("drawn")
    text = f"{fmt.count(used)} samples used"
    if fmt.is_number(drawn):
        text += f" of {fmt.count(drawn)} drawn"
    if sample.get("shard"):
        text += f" (shard {sample['shard']})"
    groups = sample.get("groups")
    if isinstance(groups, dict):  # grouped samples: the verdict rests on the groups (accuracy/grouping.py)
        text += f" · {fmt.count(groups.get('used'))} groups by {groups.get('field')}"
        if fmt.is_number(groups.get("drawn")):
            text += f" of {fmt.count(groups.get('drawn'))} drawn"
        if fmt.is_number(groups.get("design_effect")):
            text += f" (design effect {float(groups['design_effect']):.1f})"
    return text


def _saved_text(gates: list[dict[str, Any]], record: Mapping[str, Any]) -> str:
    """What sequential testing bought: samples saved against the fixed-n design of the first gate."""
    drawn = (record.get("sample") or {}).get("drawn")
    first = gates[0]["saved"] if gates else "–"
    if first not in ("–", "0"):
        return f"{first} saved vs fixed n"
    return f"of {fmt.count(drawn)} drawn" if fmt.is_number(drawn) else ""


def _suite(record: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    suite = str(record.get("suite"))
    baseline = inputs.baselines.get(suite)
    gates = _gates(record)
    errors = [e for e in record.get("errors") or [] if isinstance(e, dict)]
    base_git = (baseline or {}).get("git") or {}
    return {
        "name": suite,
        "verdict": str(record.get("verdict")),
        "vclass": str(record.get("verdict")).lower(),
        "headline": _headline(record, gates),
        "samples": _samples(record),
        "output": _output_text(record),
        "metrics": _metrics(record),
        "sequential": bool((record.get("sample") or {}).get("sequential")),
        "used": fmt.count((record.get("sample") or {}).get("used")),
        "saved_text": _saved_text(gates, record),
        "gates": gates,
        "slices": _slices(record),
        "deltas": _deltas(record, baseline),
        "baseline": {
            "present": bool(baseline),
            "branch": str(base_git.get("branch") or ""),
            "commit": str(base_git.get("commit") or "")[:7],
            "id": str(((baseline or {}).get("history") or {}).get("id") or ""),
            "source": inputs.baseline_sources.get(suite, ""),
        },
        "per_class": _per_class(record, baseline),
        "confusion": _confusion(record),
        "trend": _trend(record, inputs.trends.get(suite, []), inputs.trend_branch),
        "errors": [{"id": str(e.get("id")), "error": str(e.get("error"))[:500]} for e in errors[:MAX_ERRORS]],
        "errors_total": len(errors),
        "provenance": _record_provenance(record),
        "duration": fmt.duration(record.get("duration_s")),
    }


def _slices(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The slice table of a sliced suite, worst first as the record orders it (FAIL, INCONCLUSIVE, PASS)."""
    rows = []
    for r in record.get("slices") or []:
        if not isinstance(r, dict):
            continue
        metric = str(r.get("metric") or "")
        verdict = str(r.get("verdict") or "INCONCLUSIVE")
        change = any(isinstance(g, dict) and g.get("kind") == "change" for g in r.get("gates") or [])
        shown = fmt.delta if change else fmt.value
        p = [r.get("pvalue_pass"), r.get("pvalue_fail")]
        rows.append({
            "name": str(r.get("name")), "verdict": verdict, "vclass": verdict.lower(),
            "n": fmt.count(r.get("n")), "size": fmt.count(r.get("size")), "metric": metric,
            "estimate": shown(metric, r.get("estimate")) if fmt.is_number(r.get("estimate")) else "–",
            "bound": shown(metric, r.get("bound")) if fmt.is_number(r.get("bound")) else "–",
            "threshold": ("vs baseline" if change else
                          f"{'≤' if r.get('direction') == '<=' else '≥'} {fmt.value(metric, r.get('threshold'))}"
                          if fmt.is_number(r.get("threshold")) else "–"),
            "pvalues": " / ".join("–" if not fmt.is_number(x) else f"{x:.2g}" for x in p),
            "decided_by": str(r.get("decided_by") or ""),
            "reason": str(r.get("reason") or ""),
        })
    return rows


def _record_provenance(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    ds = record.get("dataset") or {}
    model = record.get("model") or {}
    rows = [
        {"label": "dataset", "value": f"{ds.get('name') or '–'} ({fmt.count(ds.get('size'))} samples)", "code": False},
        {"label": "dataset uri", "value": str(ds.get("uri") or "–"), "code": True},
        {"label": "dataset sha256", "value": str(ds.get("sha256") or "–"), "code": True},
    ]
    for path, digest in sorted((model.get("files") or {}).items()):
        rows.append({"label": f"model {path}", "value": str(digest), "code": True})
    rows.append({"label": "inference code", "value": str(model.get("code_digest") or "–"), "code": True})
    seed = record.get("seed")
    rows.append({"label": "seed", "value": f"{seed} (from {record.get('seed_source') or '?'})", "code": False})
    return rows


def _tests(junit: Sequence[JUnitSummary]) -> list[dict[str, Any]]:
    return [{
        "name": j.name, "tests": j.tests, "passed": j.passed, "failed": j.failures + j.errors, "skipped": j.skipped,
        "time": fmt.duration(j.time_s), "ok": j.ok, "problem": j.problem or "",
        "failures": [{"test": t, "message": m} for t, m in j.failed],
    } for j in junit]


def _provenance(records: Sequence[Mapping[str, Any]], build: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    first = records[0] if records else {}
    git = (build or {}).get("git") or first.get("git") or {}
    image = (build or {}).get("image") or first.get("image") or {}
    rows = [
        {"label": "commit", "value": str(git.get("commit") or "–"), "code": True},
        {"label": "branch", "value": str(git.get("branch") or "–"), "code": False},
        {"label": "image", "value": str(image.get("name") or "– (run outside an image build)"), "code": False},
        {"label": "image digest", "value": str(image.get("digest") or "–"), "code": True},
    ]
    if build:
        tags = (build.get("image") or {}).get("tags") or []
        if tags:
            rows.append({"label": "image tags", "value": ", ".join(str(t) for t in tags), "code": False})
        models = build.get("models") or {}
        if models.get("lock"):
            rows.append({"label": "model lock", "value": f"{models.get('lock')} sha256:{models.get('lock_sha256') or '?'}",
                         "code": True})
        rows.append({"label": "built", "value": f"{build.get('created') or '–'} in {fmt.duration(build.get('duration_s'))}",
                     "code": False})
    version = (build or {}).get("mlci_version") or first.get("mlci_version")
    rows.append({"label": "mlci", "value": str(version or "–"), "code": False})
    return rows


def build_view(inputs: Inputs) -> dict[str, Any]:
    records = sorted(inputs.records, key=lambda r: (VERDICT_ORDER.get(str(r.get("verdict")), 1), str(r.get("suite"))))
    suites = [_suite(r, inputs) for r in records]
    verdict = overall_verdict([s["verdict"] for s in suites])
    tests = _tests(inputs.junit)
    failing_tests = sum(t["failed"] for t in tests)
    service = str((records[0] if records else {}).get("service") or (inputs.build or {}).get("service") or "service")
    git = (inputs.build or {}).get("git") or (records[0].get("git") if records else None) or {}
    if len(suites) == 1:
        headline = suites[0]["headline"]
    else:
        counts = {v: sum(s["verdict"] == v for s in suites) for v in ("PASS", "FAIL", "INCONCLUSIVE")}
        headline = ", ".join(f"{n} suite{'s' if n != 1 else ''} {VERDICT_WORDS[v]}" for v, n in counts.items() if n)
    generated = inputs.generated or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {
        "service": service,
        "verdict": verdict,
        "vclass": verdict.lower(),
        "headline": headline,
        "suite_names": ", ".join(s["name"] for s in suites),
        "branch": str(git.get("branch") or ""),
        "commit": str(git.get("commit") or "")[:7],
        "suites": suites,
        "tests": tests,
        "failing_tests": failing_tests,
        "provenance": _provenance(records, inputs.build),
        "notes": list(inputs.notes),
        "report_url": inputs.report_url or "",
        "generated": generated,
    }
