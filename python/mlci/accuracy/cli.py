"""`mlci accuracy run` and `mlci accuracy merge`.

run: exit 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 2 bad input; a shard (--shard K/N) exits 0 after writing its
provisional record -- the verdict belongs to `merge`, which re-evaluates the recombined sample.
plan / predict: the two halves of a change gate's baseline in another process or image -- `plan` writes this
run's sample as data, `predict` runs this service's own predict/load and model files on a plan's samples.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__, gitinfo
from ..config import load_config
from ..paths import out_dir

# numpy/scipy/pytest are imported inside the commands: every `mlci` invocation imports this module.


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("accuracy", help="sample-based accuracy tests with statistical gates")
    sub = p.add_subparsers(dest="accuracy_command", metavar="SUBCOMMAND")
    sub.required = True
    run = sub.add_parser("run", help="run a suite (pytest-xdist), write accuracy.json and junit-accuracy.xml")
    _sample_args(run)
    run.add_argument("--out", help="output directory (default $MLCI_OUT or .mlci)")
    run.add_argument("--baseline", help="baseline accuracy.json for change gates (models fetched by digest)")
    run.add_argument("--baseline-models", help="directory of baseline model files for change gates")
    run.add_argument("--baseline-predictions", metavar="FILE",
                     help="the baseline's predictions on this run's sample (`mlci accuracy predict`), for change gates")
    run.set_defaults(func=cmd_run)
    pl = sub.add_parser("plan", help="write this run's sample as data (for a baseline in another process or image)")
    _sample_args(pl)
    pl.add_argument("--out", required=True, metavar="DIR", help="directory for plan.json (and the dataset, if "
                    "it is not in the artifacts cache)")
    pl.set_defaults(func=cmd_plan)
    pr = sub.add_parser("predict", help="this service's predictions on a plan's samples")
    pr.add_argument("--plan", required=True, metavar="FILE", help="plan.json from `mlci accuracy plan`")
    pr.add_argument("--out", required=True, metavar="FILE", help="where to write the predictions (JSON)")
    pr.add_argument("-c", "--config", help="ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)")
    pr.add_argument("-n", dest="workers", help="workers (default: the plan's)")
    pr.set_defaults(func=cmd_predict)
    mg = sub.add_parser("merge", help="merge shard results and compute the exact statistics")
    mg.add_argument("dirs", nargs="+", metavar="DIR", help="shard output directories or accuracy.json files")
    mg.add_argument("--out", required=True, help="output directory for the merged record")
    mg.set_defaults(func=cmd_merge)


def _sample_args(p: argparse.ArgumentParser) -> None:
    """What decides a run's sample (shared by run and plan, which must draw the same one)."""
    p.add_argument("--suite", required=True, help="suite name under accuracy.suites")
    p.add_argument("-c", "--config", help="ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)")
    p.add_argument("-n", dest="workers", help="workers: auto, 0 (in-process) or N (default accuracy.workers)")
    p.add_argument("--seed", type=int, help="sample seed (default: the suite's seed, else derived from the suite, "
                   "dataset, model and code digests)")
    p.add_argument("--shard", help="K/N: run the K-th of N deterministic parts of the sample")
    p.add_argument("--data", help="local dataset file to use instead of fetching the suite's dataset")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def cmd_run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from . import results
    from .baseline import baseline_predictions, check_swap, read_predictions
    from .data import label_key
    from .engine import choose_workers, execute, prepare
    from .outputs import judged_settings

    started, t0 = _now(), time.monotonic()
    cfg = load_config(args.config)
    prep = prepare(cfg, args.suite, seed=args.seed, shard=args.shard, data_override=args.data)
    if prep.duplicates is not None and prep.duplicates.many:
        grouped = (f" (this suite is judged on groups by '{prep.groups.field}': repeats inside one group are "
                   "accounted for, repeats across groups are not)") if prep.groups is not None else ""
        print(f"mlci: warning: {prep.duplicates.warning(prep.ref.name)}{grouped}", file=sys.stderr, flush=True)
    acc = cfg["accuracy"]
    change = any(p["kind"] == "change" for p in prep.plans)
    base_preds, base_info = None, None
    if change:
        if not (args.baseline or args.baseline_models or args.baseline_predictions):
            raise UserError(f"suite '{args.suite}' has a change gate but no baseline was given",
                            hint="pass --baseline BASELINE/accuracy.json, --baseline-models DIR or "
                                 "--baseline-predictions FILE")
        if args.baseline_predictions:
            base_preds, base_info = read_predictions(prep, Path(args.baseline_predictions))
        else:
            n_batches = -(-len(prep.positions) // prep.batch_size)
            base_preds, base_info = baseline_predictions(
                prep, record=args.baseline, models_dir=args.baseline_models,
                workers=choose_workers(args.workers, acc["workers"], n_batches))
    res = execute(prep, workers_flag=args.workers, baseline=base_preds, checks=_checks(cfg, prep.suite),
                  on_error=acc["on_error"])
    n = res.recorded
    positions = prep.positions[:n].tolist()
    idx = prep.indices[:n].tolist()
    col = res.collected
    if base_preds is not None and base_info is not None:
        check_swap(base_info, prep.models, col.preds[:n], base_preds[:n], col.errors[:n])
    meta = {
        "id": uuid.uuid4().hex, **provenance(cfg),
        "service": cfg["service"], "suite": args.suite, "seed": prep.seed, "seed_source": prep.seed_source,
        "dataset": {"name": prep.ref.name, "uri": prep.ref.uri, "sha256": prep.ref.sha256, "size": len(prep.dataset),
                    "format": prep.dataset.format,
                    "duplicates": prep.duplicates.to_dict() if prep.duplicates is not None else None},
        "model": {"files": prep.models, "code_digest": prep.code},
        "mlci_version": __version__, "started": started,
        "sample": {"drawn": prep.drawn, "used": (res.evaluator.stopped_at or n) if prep.shard is None else n,
                   "shard": f"{prep.shard[0]}/{prep.shard[1]}" if prep.shard else None,
                   "sequential": bool(prep.suite["sequential"]),
                   "available": len(prep.dataset), "batch_size": prep.batch_size, "workers": res.workers},
        "plan": {"gates": prep.plans, "task": prep.task, "output": prep.output.to_dict(), "on_error": acc["on_error"],
                 "max_error_rate": acc["max_error_rate"], "drawn": prep.drawn, "batch_size": prep.batch_size,
                 "timing": prep.spec()["timing"], "settings": judged_settings(acc, prep.suite),
                 **({"slices": prep.slices.to_dict()} if prep.slices is not None else {})},
        "on_error": acc["on_error"],
        "baseline": base_info,
    }
    labels = [_py(prep.dataset.labels[i]) for i in idx]
    preds = col.preds[:n]
    if prep.task == "classification":  # compact, comparable outcomes: canonical label strings
        labels = [label_key(v) for v in labels]
        if prep.output.kind == "labels":
            preds = [None if p is None else label_key(p) for p in preds]
    rec = results.build_record(
        meta=meta, ev=res.evaluator, checks=res.checks, positions=positions,
        ids=[prep.dataset.ids[i] for i in idx], labels=labels, preds=preds, errors=col.errors[:n], latency=col.latency[:n],
        baseline_preds=base_preds[:n] if base_preds is not None else None, provisional=prep.shard is not None,
        scores={ref: v[:n] for ref, v in col.scores.items()})
    if prep.groups is not None:  # grouped samples: how many groups the verdict rests on (accuracy/grouping.py)
        from . import grouping

        glabels = prep.group_labels() or []
        rec["outcomes"]["groups"] = glabels[:n]
        rec["sample"]["groups"] = grouping.summary(prep.groups.info(prep.drawn), glabels, rec["sample"]["used"],
                                                   grouping.correctness(res.evaluator, n)).to_dict()
    rec["duration_s"] = round(time.monotonic() - t0, 3)
    directory = results.write(out_dir(args.out, cfg.root), rec)
    for line in results.summary_lines(rec):
        print(line)
    print(f"wrote {directory / 'accuracy.json'}" + (" (provisional: shard; run `mlci accuracy merge`)" if prep.shard else ""))
    sys.stdout.flush()
    return int(rec["exit_code"])


def provenance(cfg: Any, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Which run, image and commit a record belongs to. Inside a stage's container the stage says so
    (MLCI_RUN_ID, MLCI_IMAGE_*: the image's own labels, not whatever the host's HEAD is); a run outside an image
    asks git, including whether the tree has uncommitted changes."""
    env = os.environ if env is None else env
    digest = env.get("MLCI_IMAGE_DIGEST")
    if env.get("MLCI_IMAGE_COMMIT") or env.get("MLCI_IMAGE_DIRTY"):
        git = {"commit": env.get("MLCI_IMAGE_COMMIT") or None, "branch": env.get("MLCI_IMAGE_BRANCH") or None,
               "dirty": env.get("MLCI_IMAGE_DIRTY") == "true"}
    else:
        git = {"commit": gitinfo.commit(cfg.root), "branch": gitinfo.branch(cfg.root),
               "dirty": gitinfo.tree_dirty(cfg.root)}
    return {"run": {"id": env.get("MLCI_RUN_ID") or None},
            "git": git,
            "image": ({"name": env.get("MLCI_IMAGE_NAME") or cfg["image"]["name"], "digest": digest}
                      if digest else None),
            "cache_key": env.get("MLCI_RESULT_KEY") or None}


def cmd_plan(args: argparse.Namespace) -> int:
    from .baseline import write_plan
    from .engine import choose_workers, prepare

    cfg = load_config(args.config)
    prep = prepare(cfg, args.suite, seed=args.seed, shard=args.shard, data_override=args.data)
    workers = choose_workers(args.workers, cfg["accuracy"]["workers"], -(-len(prep.positions) // prep.batch_size))
    path = write_plan(prep, Path(args.out), workers, copy_data=True)
    print(f"wrote {path}: {len(prep.positions)} samples of {prep.ref.name}, seed {prep.seed} ({prep.seed_source})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..fsutil import write_json_atomic
    from .baseline import predict_plan

    cfg = load_config(args.config)
    doc = predict_plan(cfg, Path(args.plan), args.workers)
    write_json_atomic(Path(args.out), doc)
    print(f"wrote {args.out}: {len(doc['predictions'])} predictions from models "
          + (", ".join(f"{k} {v.split(':')[-1][:12]}" for k, v in sorted(doc["model_files"].items())) or "(none)"))
    return 0


def _checks(cfg: Any, suite: dict[str, Any]) -> list[str]:
    return [str(cfg.resolve(p)) for p in suite.get("checks") or []]


def cmd_merge(args: argparse.Namespace) -> int:
    from . import results
    from .merge import merge

    rec = merge(args.dirs)
    directory = results.write(out_dir(args.out), rec)
    for line in results.summary_lines(rec):
        print(line)
    print(f"wrote {directory / 'accuracy.json'} (merged {', '.join(rec['sample']['merged_from'] or [])})")
    return int(rec["exit_code"])
