"""`mlci models add|pull|verify|status`, `mlci data pull [NAME...]|add NAME PATH` and `mlci cache gc`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..config import load_config
from ..errors import EXIT_FAIL, EXIT_OK
from ..paths import cache_dir
from ..progress import human_bytes
from ..units import parse_duration, parse_size
from . import api


def _abs(value: str | None) -> str | None:
    """Flags are relative to the working directory (the API resolves relative paths against the repo)."""
    return os.path.abspath(os.path.expanduser(value)) if value else None


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="model files from S3 through a dependency file (mlci lock or DVC)")
    mcmds = models.add_subparsers(dest="models_cmd", required=True)

    add = mcmds.add_parser("add", help="upload files content-addressed and record them in the dependency file")
    add.add_argument("files", nargs="+", metavar="FILE")
    add.add_argument("--remote", help="s3://bucket/prefix (default artifacts.remote)")
    add.add_argument("--lock", help="dependency file to write (default artifacts.models.lock)")
    add.add_argument("--jobs", type=int, help="parallel uploads (default artifacts.jobs)")
    add.add_argument("-c", "--config", help="path to ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")
    add.set_defaults(func=cmd_add)

    pull = mcmds.add_parser("pull", help="fetch every file the dependency file names into DEST, verified")
    _common(pull)
    pull.add_argument("--jobs", type=int, help="parallel downloads (default artifacts.jobs)")
    pull.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    pull.set_defaults(func=cmd_pull)

    for name, full, text in (("verify", True, "hash every file in DEST against the dependency file"),
                             ("status", False, "missing / modified / ok per file (hashes only changed files)")):
        p = mcmds.add_parser(name, help=text + "; exit 1 unless all ok")
        _common(p)
        p.add_argument("--jobs", type=int, help="parallel hashing (default artifacts.jobs)")
        p.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
        p.set_defaults(func=cmd_status, full=full)

    data = sub.add_parser("data", help="test datasets named in ml-ci.yaml (artifacts.data)")
    dcmds = data.add_subparsers(dest="data_cmd", required=True)
    dpull = dcmds.add_parser("pull", help="fetch datasets into the cache (all when none is named)")
    dpull.add_argument("names", nargs="*", metavar="NAME")
    dpull.add_argument("--dest", help="also place the files in this directory")
    dpull.add_argument("--json", action="store_true")
    dpull.add_argument("-c", "--config", help="path to ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")
    dpull.set_defaults(func=cmd_data_pull)
    dadd = dcmds.add_parser("add", help="upload a dataset file or folder content-addressed and record its uri and "
                            "sha256 under artifacts.data.NAME in ml-ci.yaml (comments and layout kept)")
    dadd.add_argument("name", metavar="NAME")
    dadd.add_argument("path", metavar="PATH", help="a .npz/.csv/.jsonl/.parquet file, or a folder with a labels table")
    dadd.add_argument("--remote", help="s3://bucket/prefix (default artifacts.remote)")
    dadd.add_argument("--format", choices=("npz", "csv", "jsonl", "parquet", "folder"),
                      help="default from the file extension (a directory is a folder)")
    dadd.add_argument("--labels", help="folder: the labels table inside it (default labels.csv/.jsonl/.parquet)")
    dadd.add_argument("--jobs", type=int, help="parallel uploads (default artifacts.jobs)")
    dadd.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    dadd.add_argument("-c", "--config", help="path to ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")
    dadd.set_defaults(func=cmd_data_add)

    cache = sub.add_parser("cache", help="the local artifact cache shared by the builds on an agent")
    ccmds = cache.add_subparsers(dest="cache_cmd", required=True)
    gc = ccmds.add_parser("gc", help="evict least recently used objects (never ones used within --keep-recent), "
                          "drop abandoned partial downloads and old quarantine entries")
    gc.add_argument("--max-size", help="evict least recently used objects until the cache fits, e.g. 50G")
    gc.add_argument("--older-than", help="evict objects not used for this long, e.g. 30d")
    gc.add_argument("--keep-recent", default="1d",
                    help="never evict objects used this recently: a build may still read them (default 1d)")
    gc.add_argument("--stale", default="7d",
                    help="remove partial downloads and quarantine entries older than this (default 7d)")
    gc.add_argument("--cache", help="cache directory (default $MLCI_CACHE, else artifacts.cache of -c, "
                    "else ~/.cache/mlci)")
    gc.add_argument("-c", "--config", help="take the cache directory from this ml-ci.yaml")
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    gc.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    gc.set_defaults(func=cmd_cache_gc)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock", help="dependency file: mlci lock, a .dvc file, dvc.lock or a glob "
                   "(default artifacts.models.lock)")
    p.add_argument("--dest", help="destination directory (default artifacts.models.dest)")
    p.add_argument("-c", "--config", help="path to ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")


def cmd_add(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    api.add_models(cfg, args.files, remote=args.remote, lock=_abs(args.lock), jobs=args.jobs)
    return EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    summary = api.pull_models(cfg, lock=_abs(args.lock), dest=_abs(args.dest), jobs=args.jobs)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    rows = api.status(cfg, lock=_abs(args.lock), dest=_abs(args.dest), full=args.full, jobs=args.jobs)
    bad = [r for r in rows if r["state"] != "ok"]
    if args.json:
        print(json.dumps(rows, sort_keys=True))
    else:
        width = max((len(r["path"]) for r in rows), default=4)
        for r in rows:
            detail = ""
            if r["state"] == "modified":
                detail = f"  expected {r['expected']}, got {r['actual']}"
            elif r["state"] == "missing":
                detail = f"  expected {r['expected']} (run `mlci models pull`)"
            print(f"{r['state']:<9} {r['path']:<{width}}{detail}")
        print(f"{len(rows) - len(bad)} ok, {sum(r['state'] == 'missing' for r in bad)} missing, "
              f"{sum(r['state'] == 'modified' for r in bad)} modified", file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK


def cmd_data_pull(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    rows = api.pull_data(cfg, args.names, dest=_abs(args.dest))
    if args.json:
        print(json.dumps(rows, sort_keys=True))
    else:
        for r in rows:
            print(f"{r['name']}\t{r['path']}")
    return EXIT_OK


def cmd_data_add(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    row = api.add_dataset(cfg, args.name, args.path, remote=args.remote, fmt=args.format, labels=args.labels,
                          jobs=args.jobs)
    print(json.dumps(row, sort_keys=True) if args.json else f"{row['name']}\t{row['uri']}\t{row['sha256']}")
    return EXIT_OK


def cmd_cache_gc(args: argparse.Namespace) -> int:
    from . import gc
    from .cache import Cache

    max_bytes = parse_size(args.max_size, "--max-size") if args.max_size else None
    older = parse_duration(args.older_than, "--older-than").total_seconds() if args.older_than else None
    keep = parse_duration(args.keep_recent, "--keep-recent").total_seconds()
    stale = parse_duration(args.stale, "--stale").total_seconds()
    if args.cache:
        root = _abs(args.cache)
    elif args.config:
        root = str(cache_dir(load_config(args.config)["artifacts"]["cache"]))
    else:
        root = str(cache_dir())
    now = time.time()
    summary = gc.collect(Cache(Path(root)), max_bytes=max_bytes, older_than=older, keep_recent=keep,
                         stale_after=stale, dry_run=args.dry_run, now=now)
    if older is not None:  # wheelhouses have no size budget: they go by age alone
        from ..build.wheelhouse import prune

        summary["wheelhouse"] = prune(Path(root) / "wheelhouse", older_than=older, keep_recent=keep, now=now,
                                      dry_run=args.dry_run)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return EXIT_OK
    verb = "would evict" if args.dry_run else "evicted"
    for key in summary["evicted_objects"]:
        print(f"[cache] {verb} {key}", file=sys.stderr)
    notes = []
    if summary["busy"]:
        notes.append(f"{summary['busy']} in use by a pull, skipped")
    if summary["recent_over_limit"]:
        notes.append(f"{summary['recent_over_limit']} used within {args.keep_recent} kept although over --max-size")
    removed, forgot = ("would remove", "would forget") if args.dry_run else ("removed", "forgot")
    wh = summary.get("wheelhouse")
    if wh:
        images = f"{wh['images_removed']} images" if wh["docker"] else "no images (no docker CLI here)"
        notes.append(f"{removed} {len(wh['wheelhouses'])} wheelhouses unused for {args.older_than} ({images})")
    print(f"[cache] {root}: {verb} {summary['evicted']} objects ({human_bytes(summary['evicted_bytes'])}), "
          f"kept {summary['kept']} ({human_bytes(summary['kept_bytes'])}); {removed} {summary['stale_partial']} "
          f"stale partial and {summary['stale_quarantine']} quarantine files, {forgot} "
          f"{summary['forgotten_dests']} missing DEST directories" + (f"; {'; '.join(notes)}" if notes else ""),
          file=sys.stderr)
    return EXIT_OK
