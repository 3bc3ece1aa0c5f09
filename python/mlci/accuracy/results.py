"""accuracy.json (schema mlci.accuracy/1) and junit-accuracy.xml, built from a finished evaluation.

Pure builders (`build_record`, `junit_xml`) plus one writer; the record carries the compact per-sample
outcomes (positions in the pre-drawn order, ids, labels, predictions, errors, latencies) that merge,
baselines and reports read back.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK
from ..fsutil import write_json_atomic, write_text_atomic
from ..paths import accuracy_dir
from . import metrics
from .data import label_key
from .gates import FAIL, INCONCLUSIVE, PASS, Evaluator, auc_estimate, auc_inputs
from .outputs import ERROR_LABEL, Output, transform

SCHEMA = "mlci.accuracy/1"
EXIT_FOR = {PASS: EXIT_OK, FAIL: EXIT_FAIL, INCONCLUSIVE: EXIT_INCONCLUSIVE}


def compute_metrics(output: Output | str, on_error: str, labels: list[Any], preds: list[Any],
                    errors: list[str | None], latency: list[float], timing: str = "batch") -> dict[str, Any]:
    """The record's metrics block, from the same transformation and error view the gates decide on: under
    `count_wrong` an errored sample is a wrong prediction here too (so metrics.accuracy equals the accuracy
    gate's estimate); otherwise errored samples are left out and counted in `errors`."""
    out_spec = Output.from_dict(None, task=output) if isinstance(output, str) else output
    t = transform(out_spec, preds, errors)
    n_err = sum(e is not None for e in t.errors)
    out: dict[str, Any] = {"mae": None, "rmse": None, "auc": None}
    if out_spec.kind == "numbers":
        keep = [i for i, e in enumerate(t.errors) if e is None]
        y = np.asarray([float(labels[i]) for i in keep])
        p = np.asarray([float(preds[i]) for i in keep])
        out.update(accuracy=None, macro_f1=None, n=len(keep), per_class={}, confusion={"labels": [], "matrix": []},
                   mae=float(metrics.mae(y, p)) if keep else None, rmse=float(metrics.rmse(y, p)) if keep else None)
    else:
        keys = [label_key(v) for v in labels]
        view = "lo" if on_error == "count_wrong" else "excl"
        rows = [i for i in range(len(keys)) if view == "lo" or t.errors[i] is None]
        p_lab = [t.labels[i] if t.errors[i] is None else ERROR_LABEL for i in rows]
        out.update(metrics.classification_summary([keys[i] for i in rows], p_lab))
        out["per_class"].pop(ERROR_LABEL, None)
        if out_spec.has_scores and rows:
            auc = auc_estimate(*auc_inputs(out_spec, keys, t.scores, t.errors, view))
            out["auc"] = auc if np.isfinite(auc) else None
        predicted = set(p_lab)
        # a class the model never emitted on the sample: often a label-mapping bug, shown in the report
        out["labels_never_predicted"] = sorted(c for c, v in out["per_class"].items() if v["support"] and c not in predicted)
    out["latency_ms"] = metrics.latency_summary(np.asarray(latency, dtype=float), timing)
    out["errors"] = n_err
    out["errors_counted"] = "wrong" if on_error == "count_wrong" else "excluded"
    return out


def overall(ev: Evaluator, checks: list[dict[str, Any]]) -> tuple[str, str]:
    verdict, reason = ev.verdict or INCONCLUSIVE, ev.reason
    failed = [c["nodeid"] for c in checks if c["outcome"] == "failed"]
    if failed and verdict != FAIL:
        verdict, reason = FAIL, f"team check(s) failed: {', '.join(failed)}"
    return verdict, reason


def build_record(*, meta: dict[str, Any], ev: Evaluator, checks: list[dict[str, Any]], positions: list[int],
                 ids: list[str], labels: list[Any], preds: list[Any], errors: list[str | None], latency: list[float],
                 baseline_preds: list[Any] | None, provisional: bool,
                 scores: dict[str, list[float | None]] | None = None) -> dict[str, Any]:
    """The accuracy.json record; `meta` holds provenance (service, suite, seed, git, image, dataset, model...)."""
    verdict, reason = overall(ev, checks)
    rec: dict[str, Any] = {"schema": SCHEMA, **meta}
    rec["verdict"] = verdict
    rec["reason"] = reason
    rec["exit_code"] = EXIT_OK if provisional else EXIT_FOR[verdict]
    rec["provisional"] = provisional
    rec["gates"] = ev.gate_records()
    rec["metrics"] = compute_metrics(ev.out, ev.on_error, labels, preds, errors, latency,
                                     (meta.get("plan") or {}).get("timing", "batch"))
    rec["errors"] = [{"id": ids[i], "position": positions[i], "error": e} for i, e in enumerate(errors) if e is not None]
    rec["checks"] = checks
    rec["outcomes"] = {"positions": positions, "ids": ids, "labels": labels, "predictions": preds,
                       "errors": errors, "latency_ms": [round(x, 4) for x in latency]}
    if baseline_preds is not None:
        rec["outcomes"]["baseline_predictions"] = baseline_preds
    if hasattr(ev, "slice_records"):  # a sliced suite (accuracy/slicing.py): the slice table, worst first
        rec["slices"] = ev.slice_records()
        rec["outcomes"]["slice"] = ev.slice_of[:len(positions)].tolist()
    if scores:  # custom per-sample scores, by reference: what merge re-feeds, and their means over these samples
        rec["outcomes"]["scores"] = scores
        rec["metrics"]["scores"] = {ref.rpartition(":")[2]: _mean([v for v in vals if v is not None])
                                    for ref, vals in scores.items()}
    return rec


def junit_xml(rec: dict[str, Any]) -> str:
    """A testcase per gate (numbers in the failure message), one for prediction errors, one per team check."""
    suite = rec["suite"]
    cases = []
    for g in rec["gates"]:
        name = f"{g.get('score_name') or g['metric']}{'[' + str(g['class']) + ']' if g['class'] is not None else ''} {g['kind']} " \
               f"{g['direction']} {g['threshold'] if g['kind'] == 'absolute' else '-' + str(g['margin'])}"
        if g.get("slice") is not None:
            name = f"[slice {g['slice']}] {name}"
        cases.append((name, g["verdict"], g["message"]))
    if rec["errors"]:
        sample = "; ".join(f"{e['id']}: {e['error']}" for e in rec["errors"][:5])
        cases.append(("prediction errors", FAIL if rec.get("on_error", "fail") == "fail" else PASS,
                      f"{len(rec['errors'])} sample(s) raised in predict: {sample}"))
    for c in rec.get("checks", []):
        cases.append((c["nodeid"], {"passed": PASS, "failed": FAIL}.get(c["outcome"], INCONCLUSIVE), c["message"]))
    root = ET.Element("testsuite", name=f"accuracy.{suite}", tests=str(len(cases)),
                      failures=str(sum(v == FAIL for _, v, _ in cases)),
                      skipped=str(sum(v not in (PASS, FAIL) for _, v, _ in cases)), errors="0",
                      time=f"{rec.get('duration_s', 0):.3f}")
    props = ET.SubElement(root, "properties")
    for key in ("verdict", "seed", "seed_source"):
        ET.SubElement(props, "property", name=key, value=str(rec.get(key)))
    for name, verdict, message in cases:
        tc = ET.SubElement(root, "testcase", classname=f"accuracy.{suite}", name=name)
        if verdict == FAIL:
            ET.SubElement(tc, "failure", message=message.splitlines()[0] if message else "failed").text = message
        elif verdict != PASS:
            ET.SubElement(tc, "skipped", message=f"{verdict}: {message.splitlines()[0] if message else ''}")
        else:
            ET.SubElement(tc, "system-out").text = message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(out: Path, rec: dict[str, Any]) -> Path:
    directory = accuracy_dir(out, rec["suite"])
    write_json_atomic(directory / "accuracy.json", rec)
    write_text_atomic(directory / "junit-accuracy.xml", junit_xml(rec))
    return directory


def summary_lines(rec: dict[str, Any]) -> list[str]:
    lines = [f"{rec['suite']}: {rec['verdict']} ({rec['reason']}); seed {rec['seed']} ({rec['seed_source']}); "
             f"{rec['sample']['used']} of {rec['sample']['drawn']} drawn samples used"]
    groups = rec["sample"].get("groups")
    if groups:  # grouped samples (accuracy/grouping.py): the evidence is the groups
        lines.append(f"  judged on {groups['used']} of {groups['drawn']} drawn groups by '{groups['field']}' "
                     f"({groups['samples']} samples; design effect {groups['design_effect']})")
    lines += [f"  {g['message']}" for g in rec["gates"]]
    if rec.get("slices"):
        lines.append("  slices (worst first): " + "; ".join(
            f"{r['name']} {r['verdict']} n={r['n']} {r['metric']} {_num(r['estimate'])}" for r in rec["slices"]))
    never = rec["metrics"].get("labels_never_predicted")
    if never:
        lines.append(f"  note: the model never predicted label(s) {', '.join(never[:10])} on this sample")
    if rec["errors"]:
        lines.append(f"  {len(rec['errors'])} prediction error(s), e.g. {rec['errors'][0]['id']}: {rec['errors'][0]['error']}")
    return lines


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
