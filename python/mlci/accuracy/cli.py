"""`mlci accuracy run` and `mlci accuracy merge`.

run: exit 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 2 bad input; a shard (--shard K/N) exits 0 after writing its
provisional record -- the verdict belongs to `merge`, which re-evaluates the recombined sample.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
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
    run.add_argument("--suite", required=True, help="suite name under accuracy.suites")
    run.add_argument("-c", "--config", help="ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)")
    run.add_argument("-n", dest="workers", help="workers: auto, 0 (in-process) or N (default accuracy.workers)")
    run.add_argument("--out", help="output directory (default $MLCI_OUT or .mlci)")
    run.add_argument("--seed", type=int, help="sample seed (default: the suite's seed, else derived from the commit)")
    run.add_argument("--shard", help="K/N: run the K-th of N deterministic parts of the sample")
    run.add_argument("--baseline", help="baseline accuracy.json for change gates (models fetched by digest)")
    run.add_argument("--baseline-models", help="directory of baseline model files for change gates")
    run.add_argument("--data", help="local dataset file to use instead of fetching the suite's dataset")
    run.set_defaults(func=cmd_run)
    mg = sub.add_parser("merge", help="merge shard results and compute the exact statistics")
    mg.add_argument("dirs", nargs="+", metavar="DIR", help="shard output directories or accuracy.json files")
    mg.add_argument("--out", required=True, help="output directory for the merged record")
    mg.set_defaults(func=cmd_merge)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def cmd_run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from . import results
    from .baseline import baseline_predictions
    from .data import label_key
    from .engine import choose_workers, code_digest, execute, model_files, prepare
    from .outputs import judged_settings

    started, t0 = _now(), time.monotonic()
    cfg = load_config(args.config)
    prep = prepare(cfg, args.suite, seed=args.seed, shard=args.shard, data_override=args.data)
    acc = cfg["accuracy"]
    change = any(p["kind"] == "change" for p in prep.plans)
    base_preds, base_info = None, None
    if change:
        if not (args.baseline or args.baseline_models):
            raise UserError(f"suite '{args.suite}' has a change gate but no baseline was given",
                            hint="pass --baseline BASELINE/accuracy.json or --baseline-models DIR")
        n_batches = -(-len(prep.positions) // prep.batch_size)
        all_preds, base_info = baseline_predictions(prep, record=args.baseline, models_dir=args.baseline_models,
                                                    workers=choose_workers(args.workers, acc["workers"], n_batches))
        base_preds = all_preds
    res = execute(prep, workers_flag=args.workers, baseline=base_preds, checks=_checks(cfg, prep.suite),
                  on_error=acc["on_error"])
    n = res.recorded
    positions = prep.positions[:n].tolist()
    idx = prep.indices[:n].tolist()
    col = res.collected
    image_digest = os.environ.get("MLCI_IMAGE_DIGEST")
    meta = {
        "service": cfg["service"], "suite": args.suite, "seed": prep.seed, "seed_source": prep.seed_source,
        "git": {"commit": gitinfo.commit(cfg.root), "branch": gitinfo.branch(cfg.root)},
        "image": ({"name": os.environ.get("MLCI_IMAGE_NAME") or cfg["image"]["name"], "digest": image_digest}
                  if image_digest else None),
        "dataset": {"name": prep.ref.name, "uri": prep.ref.uri, "sha256": prep.ref.sha256, "size": len(prep.dataset),
                    "format": prep.dataset.format},
        "model": {"files": model_files(cfg), "code_digest": code_digest(cfg)},
        "mlci_version": __version__, "started": started,
        "sample": {"drawn": prep.drawn, "used": (res.evaluator.stopped_at or n) if prep.shard is None else n,
                   "shard": f"{prep.shard[0]}/{prep.shard[1]}" if prep.shard else None,
                   "sequential": bool(prep.suite["sequential"]),
                   "available": len(prep.dataset), "batch_size": prep.batch_size, "workers": res.workers},
        "plan": {"gates": prep.plans, "task": prep.task, "output": prep.output.to_dict(), "on_error": acc["on_error"],
                 "max_error_rate": acc["max_error_rate"], "drawn": prep.drawn, "batch_size": prep.batch_size,
                 "timing": prep.spec()["timing"], "settings": judged_settings(acc, prep.suite)},
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
        baseline_preds=base_preds[:n] if base_preds is not None else None, provisional=prep.shard is not None)
    rec["duration_s"] = round(time.monotonic() - t0, 3)
    directory = results.write(out_dir(args.out, cfg.root), rec)
    for line in results.summary_lines(rec):
        print(line)
    print(f"wrote {directory / 'accuracy.json'}" + (" (provisional: shard; run `mlci accuracy merge`)" if prep.shard else ""))
    sys.stdout.flush()
    return int(rec["exit_code"])


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
