"""`mlci accuracy merge`: recombine shard records by position in the pre-drawn order and re-evaluate.

The merged outcomes are fed to the same Evaluator in the same batch-sized looks an unsharded run uses, so
the merged verdict, estimates, intervals and metrics are exactly those of an unsharded run on the same
sample (only latencies and durations differ).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fsutil import read_json
from .gates import Evaluator
from .outputs import Output, error_budget
from .results import SCHEMA, build_record

SAME = ("service", "suite", "seed", "dataset", "plan", "model", "run", "image", "cache_key")


def find_records(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(p.rglob("accuracy.json"))
        else:
            raise UserError(f"{p} does not exist", hint="pass shard output directories or accuracy.json files")
    if not found:
        raise UserError(f"no accuracy.json under {', '.join(paths)}", hint="pass the shards' --out directories")
    return found


def load_shards(paths: list[str]) -> list[dict[str, Any]]:
    recs = []
    for f in find_records(paths):
        try:
            rec = read_json(f)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {f}: {exc}") from None
        if rec.get("schema") != SCHEMA or "outcomes" not in rec or "plan" not in rec:
            raise UserError(f"{f} is not an {SCHEMA} record with outcomes", hint="merge records of `mlci accuracy run`")
        rec["_path"] = str(f)
        recs.append(rec)
    first = recs[0]
    for rec in recs[1:]:
        for key in SAME:
            if rec.get(key) != first.get(key):
                raise UserError(f"{rec['_path']} differs from {first['_path']} in '{key}'",
                                hint="merge shards of one run (same suite, seed, dataset, plan, models and image)")
    shards = [r["sample"]["shard"] for r in recs]
    if None in shards:
        if len(recs) == 1:
            return recs
        raise UserError("an unsharded record cannot be merged with others", hint="merge only --shard K/N outputs")
    total = {s.split("/")[1] for s in shards}
    if len(total) != 1:
        raise UserError(f"shards of different splits: {', '.join(shards)}")
    n = int(total.pop())
    have = sorted(int(s.split("/")[0]) for s in shards)
    if have != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(have))
        dup = sorted({k for k in have if have.count(k) > 1})
        raise UserError(f"shards do not cover 1..{n}: missing {missing or 'none'}, duplicated {dup or 'none'}",
                        hint="pass the output of every shard exactly once")
    return recs


def merge(paths: list[str]) -> dict[str, Any]:
    started = time.time()
    recs = load_shards(paths)
    first = recs[0]
    rows: dict[int, tuple[Any, ...]] = {}
    base_any = any("baseline_predictions" in r["outcomes"] for r in recs)
    scores: dict[str, dict[int, float | None]] = {}
    groups: dict[int, str] = {}  # grouped samples: each position's group (accuracy/grouping.py)
    slice_at: dict[int, int] = {}  # sliced suites: each position's slice code (accuracy/slicing.py)
    for r in recs:
        o = r["outcomes"]
        slice_at.update(zip(o["positions"], o.get("slice") or [], strict=False))
        base = o.get("baseline_predictions") or [None] * len(o["positions"])
        for j, pos in enumerate(o["positions"]):
            rows[pos] = (o["ids"][j], o["labels"][j], o["predictions"][j], o["errors"][j], o["latency_ms"][j], base[j])
            if o.get("groups") is not None:
                groups[pos] = o["groups"][j]
            for ref, values in (o.get("scores") or {}).items():
                scores.setdefault(ref, {})[pos] = values[j]
    plan = first["plan"]
    drawn = plan["drawn"]
    if sorted(rows) != list(range(drawn)):
        raise UserError(f"the shards cover {len(rows)} of {drawn} drawn positions",
                        hint="every shard must have run all of its samples")
    output = Output.from_dict(plan.get("output"), plan["task"])
    budget = error_budget(plan.get("max_error_rate", 1.0), drawn)
    if plan.get("slices"):  # a sliced suite: the same family over the recombined order (accuracy/slicing.py)
        from .slicing import SliceFamily, SlicePlan

        codes = [slice_at[p] for p in range(drawn)]
        ev: Any = SliceFamily(SlicePlan.from_dict(plan["slices"], codes), output, plan["on_error"],
                              slice_of=codes, seed=first["seed"], max_errors=budget)
    else:
        ev = Evaluator(plan["gates"], output, plan["on_error"], drawn=drawn, seed=first["seed"], max_errors=budget,
                       groups=[groups[p] for p in range(drawn)] if groups else None)
    size = plan["batch_size"]
    for lo in range(0, drawn, size):
        chunk = [rows[p] for p in range(lo, min(lo + size, drawn))]
        span = range(lo, min(lo + size, drawn))
        if ev.feed([c[1] for c in chunk], [c[2] for c in chunk], [c[3] for c in chunk], [c[4] for c in chunk],
                   [c[5] for c in chunk] if base_any else None,
                   {ref: [v.get(p) for p in span] for ref, v in scores.items()}):
            break
    if ev.verdict is None:
        ev.finish()
    used = ev.stopped_at or drawn
    take = [rows[p] for p in range(used)]
    checks = [c for r in recs for c in r.get("checks", [])]
    meta = {k: first.get(k) for k in ("run", "service", "suite", "seed", "seed_source", "git", "image", "dataset",
                                      "model", "mlci_version", "plan", "on_error", "baseline", "cache_key")}
    meta["id"] = uuid.uuid4().hex
    meta["started"] = first["started"]
    meta["duration_s"] = round(sum(r["duration_s"] for r in recs), 3)
    meta["merge_duration_s"] = round(time.time() - started, 3)
    meta["sample"] = {**first["sample"], "used": used, "shard": None, "merged_from": sorted(r["sample"]["shard"] for r in recs)}
    rec = build_record(meta=meta, ev=ev, checks=checks, positions=list(range(used)), ids=[c[0] for c in take],
                       labels=[c[1] for c in take], preds=[c[2] for c in take], errors=[c[3] for c in take],
                       latency=[c[4] for c in take], baseline_preds=[c[5] for c in take] if base_any else None,
                       provisional=False, scores={ref: [v.get(p) for p in range(used)] for ref, v in scores.items()})
    if groups:
        from .grouping import correctness, summary

        labels = [groups[p] for p in range(drawn)]
        rec["outcomes"]["groups"] = labels[:used]
        rec["sample"]["groups"] = summary(first["sample"]["groups"], labels, used, correctness(ev, used)).to_dict()
    return rec
