"""`mlci drift reference` and `mlci drift check`: the I/O edges (config, files, S3, Jenkins) around check.py.

Exit codes of `check`: 0 no drift, 1 drift, 2 bad input (config, missing logs, schema mismatch), 3 too few rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from .. import gitinfo, s3
from ..artifacts.hashing import hash_file
from ..config.loader import DEFAULT_FILE, Config, load_config
from ..config.schema import SCHEMA
from ..errors import StageFailed, UserError
from ..fsutil import write_json_atomic
from ..paths import out_dir
from .published import fetch as fetch_published
from .published import locate as locate_published
from .reference import dataset_reference, parse_reference, reference_from_file

# check/logs/report/trigger import scipy, boto3 paginators and python-jenkins: loaded in cmd_check only, so
# `mlci --help` and every other command do not pay for them.


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drift", help="production drift: reference statistics, checks, retraining trigger")
    cmds = p.add_subparsers(dest="drift_cmd", required=True)

    ref = cmds.add_parser("reference", help="compute reference statistics of a dataset (JSON)")
    ref.add_argument("-c", "--config", help="ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG; optional with --data)")
    src = ref.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a dataset under artifacts.data")
    src.add_argument("--data", help="a data file (.npz, .csv, .jsonl)")
    ref.add_argument("--label", help="field whose distribution is the prediction reference (default the dataset's label)")
    ref.add_argument("--out", required=True, help="output file or s3:// URI")
    ref.set_defaults(func=cmd_reference)

    chk = cmds.add_parser("check", help="compare a window of production logs with the reference (exit 0/1/2/3)")
    chk.add_argument("-c", "--config", help="ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG; optional)")
    chk.add_argument("--reference", help="reference file or s3:// URI (default drift.reference, else the one the "
                     "training record names)")
    chk.add_argument("--logs", help="s3://bucket/prefix of the logs (default drift.logs)")
    chk.add_argument("--window", help="e.g. 7d or 36h (default drift.window)")
    chk.add_argument("--until", help="last day of the window, YYYY-MM-DD (default today, UTC)")
    chk.add_argument("--format", choices=("auto", "jsonl", "csv"), help="log format (default drift.format)")
    chk.add_argument("--sample-cap", type=int, help="rows kept (default drift.sample_cap)")
    chk.add_argument("--seed", type=int, help="sampling seed (default derived from the window's last day)")
    chk.add_argument("--out", help="output directory (default $MLCI_OUT or .mlci); files go to OUT/drift/")
    trig = chk.add_mutually_exclusive_group()
    trig.add_argument("--trigger-job", metavar="NAME", help="on drift, start this Jenkins job via python-jenkins")
    trig.add_argument("--trigger", action="store_true", help="on drift, start drift.retrain.job via python-jenkins")
    chk.set_defaults(func=cmd_check)

    pl = cmds.add_parser("plan", help="what the driftCheck Jenkins step should do on this branch (JSON)")
    pl.add_argument("-c", "--config", help="ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")
    pl.add_argument("--branch", help="branch being built (default $BRANCH_NAME / git)")
    pl.add_argument("--json", action="store_true", help="machine-readable (the step reads this)")
    pl.set_defaults(func=cmd_plan)


def _config(path: str | None) -> tuple[Config | None, dict[str, Any]]:
    """The config when there is one; without a file the check still runs on flags and schema defaults."""
    if path or os.environ.get("MLCI_CONFIG") or Path(DEFAULT_FILE).exists():
        cfg = load_config(path)
        return cfg, cfg["drift"]
    return None, SCHEMA.fields["drift"].default_value()


def cmd_reference(args: argparse.Namespace) -> int:
    cfg, drift = _config(args.config)
    if args.dataset:
        if cfg is None:
            raise UserError(f"--dataset {args.dataset} needs ml-ci.yaml",
                            hint="pass -c PATH/ml-ci.yaml or use --data FILE")
        ref = dataset_reference(cfg, args.dataset, drift, label=args.label)
    else:
        path = Path(args.data)
        source = {"dataset": None, "uri": str(path), "sha256": hash_file(path) if path.is_file() else None}
        ref = reference_from_file(path, drift, label=args.label or drift["prediction"]["reference_field"],
                                  source=source)
    label = ref["prediction"]["source"] if ref["prediction"] else None
    _write_reference(ref, args.out)
    pred = f", prediction reference from '{label}'" if ref["prediction"] else ", no prediction reference"
    print(f"reference: {len(ref['features'])} feature(s) from {ref['source']['rows']} rows{pred} -> {args.out}")
    return 0


def _write_reference(ref: dict[str, Any], out: str) -> None:
    if out.startswith("s3://"):
        bucket, key = s3.parse_uri(out)
        try:
            s3.client().put_object(Bucket=bucket, Key=key, Body=json.dumps(ref, sort_keys=True).encode(),
                                   ContentType="application/json")
        except Exception as exc:
            raise s3.explain(exc, out, "reference") from None
    else:
        write_json_atomic(out, ref)


def load_reference(where: str, cfg: Config | None) -> dict[str, Any]:
    if where.startswith("s3://"):
        bucket, key = s3.parse_uri(where)
        try:
            text = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as exc:
            raise s3.explain(exc, where, "reference") from None
        return parse_reference(text, where)
    path = Path(where) if cfg is None or os.path.isabs(where) else cfg.resolve(where)
    if not path.is_file():
        raise UserError(f"reference {path} not found", hint="create it with `mlci drift reference` or fix --reference")
    return parse_reference(path.read_text(encoding="utf-8"), str(path))


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_check
    from .logs import read_window
    from .report import write_reports
    from .trigger import drift_parameters, trigger_build

    started = time.monotonic()
    cfg, drift = _config(args.config)
    where_ref = args.reference or drift["reference"]
    logs_uri = args.logs or drift["logs"]
    published = None if where_ref else locate_published(cfg)  # precedence: --reference, drift.reference, training
    if not logs_uri:
        raise UserError("no logs prefix given", hint="pass --logs s3://bucket/prefix or set drift.logs")
    if args.sample_cap is not None and args.sample_cap < 1:
        raise UserError(f"--sample-cap {args.sample_cap} must be >= 1")
    try:
        until_day = dt.date.fromisoformat(args.until) if args.until else dt.datetime.now(dt.timezone.utc).date()
    except ValueError:
        raise UserError(f"--until '{args.until}' is not a date", hint="write YYYY-MM-DD") from None
    until = dt.datetime.combine(until_day, dt.time(23, 59, 59), tzinfo=dt.timezone.utc)
    seed = args.seed if args.seed is not None else zlib.crc32(until_day.isoformat().encode())
    if published is not None:
        where_ref = published["uri"]
        ref = fetch_published(published)
        print(f"drift: reference published by mlci train: {where_ref}", file=sys.stderr)
    else:
        ref = load_reference(where_ref, cfg)
    sample = read_window(logs_uri, args.window or drift["window"], fmt=args.format or drift["format"],
                         cap=args.sample_cap or drift["sample_cap"], seed=seed, until=until)
    if not sample.columns:
        raise UserError(f"the logs under {logs_uri} for {sample.info['from']}..{sample.info['to']} hold no rows",
                        hint="check that the service writes one JSON object (or CSV row) per request")
    rec = run_check(ref, sample.columns, drift)
    rec.update({
        "service": cfg["service"] if cfg else None,
        "reference": {"uri": where_ref, "created": ref.get("created"), "rows": ref.get("source", {}).get("rows"),
                      "source": ref.get("source")},
        "logs": sample.info,
        "git": {"commit": gitinfo.commit(), "branch": gitinfo.branch()},
        "trigger": None,
    })
    job = args.trigger_job or (drift["retrain"]["job"] if args.trigger else None)
    if args.trigger and not job:
        raise UserError("--trigger needs drift.retrain.job", hint="set it in ml-ci.yaml or pass --trigger-job NAME")
    trigger_error = None
    if rec["verdict"] == "DRIFT" and job:
        try:
            rec["trigger"] = trigger_build(job, drift_parameters(rec, drift["retrain"]["parameters"]),
                                           url=drift["retrain"]["url"])
        except (UserError, StageFailed) as exc:
            trigger_error = str(exc)
            rec["trigger"] = {"job": job, "error": trigger_error}
    rec["duration_s"] = round(time.monotonic() - started, 3)
    out = out_dir(args.out) / "drift"
    paths = write_reports(rec, out)
    print(f"drift: {rec['verdict']}: {rec['summary']}")
    for f in rec["features"]:
        if f["drifted"]:
            print(f"  - {f['name']}: {'; '.join(f['reasons'])}")
    if rec["trigger"] and not trigger_error:
        print(f"drift: started {rec['trigger']['job']} (queue item {rec['trigger']['queue_item']})")
    if trigger_error:
        print(f"mlci: retraining NOT started: {trigger_error}", file=sys.stderr)
    print(f"drift: report {paths['html']}")
    return int(rec["exit_code"])


PLAN_SCHEMA = "mlci.drift.plan/1"


def drift_plan(drift: dict[str, Any], branch: str | None) -> dict[str, Any]:
    """The step's decisions as data: register the cron only on drift.branches (globs; default main), and which
    job to start on drift. Pure, so the branch policy is tested in Python and the Groovy stays thin."""
    scheduled = bool(branch) and any(fnmatch.fnmatchcase(branch, g) for g in drift["branches"])
    return {
        "schema": PLAN_SCHEMA,
        "branch": branch,
        "scheduled": scheduled,
        "cron": drift["schedule"] if scheduled else None,
        "reference": drift["reference"],
        "logs": drift["logs"],
        "window": drift["window"],
        "retrain": {"job": drift["retrain"]["job"], "parameters": dict(drift["retrain"]["parameters"])},
    }


def cmd_plan(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    plan = drift_plan(cfg["drift"], args.branch or gitinfo.branch(cfg.root))
    if args.json:
        print(json.dumps(plan, sort_keys=True))
    else:
        when = f"cron '{plan['cron']}'" if plan["cron"] else f"no cron (branch not in {cfg['drift']['branches']})"
        print(f"drift plan for {plan['branch'] or '(unknown branch)'}: {when}; "
              f"on drift start {plan['retrain']['job'] or '(no job: report only)'}")
    return 0
