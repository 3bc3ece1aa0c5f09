"""`mlci report render|post|baseline|record`.

render   report.html + report.md from a results directory (baselines and trend from the history store)
post     create or update the pull request's report comment (GitHub, GitLab, Bitbucket)
baseline write the baseline accuracy.json of a suite (history store, else the last successful Jenkins build)
record   append the results' accuracy records to the history store
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from .. import gitinfo, paths
from ..config import load_config
from ..config.loader import DEFAULT_FILE, Config
from ..errors import UserError
from ..fsutil import read_json, write_json_atomic, write_text_atomic
from . import history, post, render, view
from .baseline import baseline_branch, find_baseline
from .history import RECORD_SCHEMA, warn
from .results import Results, load_results

CONFIG_HELP = "ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="reports, baselines, history and pull-request comments",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="report_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    r = sub.add_parser("render", help="write report.html and report.md")
    _common(r)
    r.add_argument("--baseline", metavar="FILE", help="baseline accuracy.json (default: looked up, see `report baseline`)")
    r.add_argument("--out", metavar="DIR", help="where report.html/report.md go (default <results>/report)")
    r.add_argument("--flavour", "--flavor", choices=render.FLAVOURS,
                   help="Markdown flavour of report.md (default report.post.provider, else github)")
    r.set_defaults(func=cmd_render)

    po = sub.add_parser("post", help="create or update the pull request's report comment")
    _common(po)
    po.add_argument("--body", metavar="FILE", help="post this Markdown instead of rendering --results")
    po.add_argument("--provider", choices=tuple(post.DEFAULT_API), help="default report.post.provider")
    po.add_argument("--repo", help="owner/name or GitLab project path (default report.post.repo, else CHANGE_URL)")
    po.add_argument("--pr", help="pull/merge request number (default $CHANGE_ID)")
    po.add_argument("--api", help="API base URL (default report.post.url, else the provider's public API)")
    po.add_argument("--marker", help="key of the hidden marker (default the service name): one comment per key")
    po.set_defaults(func=cmd_post)

    b = sub.add_parser("baseline", help="write the baseline accuracy.json of a suite")
    b.add_argument("-c", "--config", help=CONFIG_HELP)
    b.add_argument("--suite", required=True, help="accuracy suite")
    b.add_argument("--out", required=True, metavar="FILE", help="where to write the baseline accuracy.json")
    b.add_argument("--branch", help="baseline branch (default report.baseline_branch)")
    b.add_argument("--commit", help="this build's commit, never its own baseline (default git / $GIT_COMMIT)")
    b.set_defaults(func=cmd_baseline)

    rc = sub.add_parser("record", help="append accuracy records to the history store")
    rc.add_argument("-c", "--config", help=CONFIG_HELP)
    rc.add_argument("--results", metavar="DIR", help="results directory (default $MLCI_OUT or .mlci)")
    rc.set_defaults(func=cmd_record)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help=CONFIG_HELP)
    p.add_argument("--results", metavar="DIR", help="results directory (default $MLCI_OUT or .mlci)")
    p.add_argument("--no-history", action="store_true", help="no baseline or trend lookups (offline rendering)")
    p.add_argument("--report-url", help="link to the full report (default $MLCI_REPORT_URL, else $BUILD_URL)")


# ---------------------------------------------------------------- helpers


def _config(path: str | None, *, required: bool) -> Config | None:
    """The config; when not required and the default file is absent, None (render works without it)."""
    if path or required:
        return load_config(path)
    default = Path(os.environ.get("MLCI_CONFIG") or DEFAULT_FILE)
    if not default.exists():
        warn(f"no {default}: rendering without history (no baseline lookup, no trend)")
        return None
    return load_config(default)


def _results_dir(value: str | None) -> Path:
    return Path(value).resolve() if value else paths.out_dir(None)


def _report_url(value: str | None) -> str | None:
    url = value or os.environ.get("MLCI_REPORT_URL") or os.environ.get("BUILD_URL")
    return url if url and re.match(r"https?://", url) else None


def _baseline_file(path: str) -> dict[str, Any]:
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise UserError(f"baseline file {path} does not exist", hint="write it with `mlci report baseline`") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read baseline {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != RECORD_SCHEMA:
        raise UserError(f"{path} is not an accuracy record", hint="pass an accuracy.json as --baseline")
    return data


def build_inputs(res: Results, cfg: Config | None, *, baseline_path: str | None, no_history: bool,
                 report_url: str | None) -> view.Inputs:
    """Gather baselines and trends for every suite in the results (the only lookups the report makes)."""
    inputs = view.Inputs(records=res.records, build=res.build, junit=res.junit, report_url=report_url)
    if res.stale:
        inputs.notes.append(f"{len(res.stale)} record(s) of other runs in {res.directory} were left out: this report "
                            "shows only this run's records.")
    for record in res.records:
        if record.get("provisional"):
            inputs.notes.append(f"Suite {record['suite']}: this is one shard's provisional record; the verdict "
                                "belongs to the merged record (mlci accuracy merge).")
    given = _baseline_file(baseline_path) if baseline_path else None
    branch = baseline_branch(cfg) if cfg is not None else "main"
    inputs.trend_branch = branch
    for record in res.records:
        suite = record["suite"]
        commit = (record.get("git") or {}).get("commit")
        if given is not None:
            if given.get("suite") == suite or len(res.records) == 1:
                inputs.baselines[suite] = given
                inputs.baseline_sources[suite] = f"file {Path(baseline_path or '').name}"
            continue
        if no_history or cfg is None:
            inputs.baseline_sources[suite] = "lookups disabled" if no_history else "no ml-ci.yaml"
            continue
        found = find_baseline(cfg, suite=suite, branch=branch, exclude_commit=commit)
        inputs.baselines[suite] = found.record
        inputs.baseline_sources[suite] = found.source
    if cfg is not None and not no_history and history.store_for(cfg) is not None:
        for record in res.records:
            inputs.trends[record["suite"]] = history.recent(cfg, branch=branch, suite=record["suite"], limit=20)
    return inputs


def compact(v: dict[str, Any]) -> dict[str, Any]:
    """The view without the big tables, for forges with a comment size limit."""
    suites = [{**s, "per_class": [], "errors": s["errors"][:3],
               "confusion": {**s["confusion"], "small": False}} for s in v["suites"]]
    return {**v, "suites": suites}


# ---------------------------------------------------------------- commands


def render_reports(results: Path, cfg: Config | None, *, baseline_path: str | None = None, no_history: bool = False,
                   report_url: str | None = None, flavour: str | None = None, out: Path | None = None,
                   ) -> tuple[dict[str, Any], Path, str]:
    """Write report.html and report.md for a results directory; (view, directory, flavour)."""
    res = load_results(results)
    inputs = build_inputs(res, cfg, baseline_path=baseline_path, no_history=no_history, report_url=report_url)
    v = view.build_view(inputs)
    flavour = flavour or ((cfg["report"]["post"].get("provider") if cfg else None) or "github")
    out = out or res.directory / "report"
    write_text_atomic(out / "report.html", render.render_html(v))
    write_text_atomic(out / "report.md", render.render_markdown(v, flavour))
    return v, out, flavour


def cmd_render(args: argparse.Namespace) -> int:
    cfg = _config(args.config, required=False)
    v, out, flavour = render_reports(_results_dir(args.results), cfg, baseline_path=args.baseline,
                                     no_history=args.no_history, report_url=_report_url(args.report_url),
                                     flavour=args.flavour, out=Path(args.out).resolve() if args.out else None)
    print(f"report: {v['verdict']} ({v['headline']})")
    print(f"  {out / 'report.html'}")
    print(f"  {out / 'report.md'} ({flavour})")
    return 0


def cmd_post(args: argparse.Namespace) -> int:
    cfg = _config(args.config, required=False)
    cfg_post = dict(cfg["report"]["post"]) if cfg is not None else {}
    target = post.target_from(cfg_post, os.environ, provider=args.provider, repo=args.repo, number=args.pr,
                              api=args.api)
    service = cfg["service"] if cfg is not None else None
    if args.body:
        try:
            body = Path(args.body).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read {args.body}: {exc}") from None
        key = args.marker or service or "report"
        marker = render.marker(target.provider, key)
        if marker not in body:
            body = f"{marker}\n{body}"
    else:
        res = load_results(_results_dir(args.results))
        v = view.build_view(build_inputs(res, cfg, baseline_path=None, no_history=args.no_history,
                                         report_url=_report_url(args.report_url)))
        key = args.marker or v["service"]
        marker = render.marker(target.provider, key)
        body = render.render_markdown(v, target.provider, marker_key=key)
        if len(body) > post.BODY_LIMIT[target.provider]:
            body = render.render_markdown(compact(v), target.provider, marker_key=key)
    result = post.upsert(target, post.fit(body, target.provider), marker)
    print(f"report comment {result.action} on {target.provider} {target.repo}#{target.number}"
          f" (comment {result.comment_id}){' ' + result.url if result.url else ''}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    cfg = _config(args.config, required=True)
    assert cfg is not None
    suites = cfg["accuracy"]["suites"]
    if suites and args.suite not in suites:
        raise UserError(f"suite '{args.suite}' is not in accuracy.suites", hint=f"one of: {', '.join(suites)}")
    commit = args.commit or gitinfo.commit(cfg.root)
    found = find_baseline(cfg, suite=args.suite, branch=args.branch, exclude_commit=commit)
    out = Path(args.out)
    if found.record is None:
        if out.is_file():  # a stale baseline from an earlier run must not be mistaken for this one
            out.unlink()
        print(f"no baseline for suite {args.suite}: {found.source}")
        return 0
    write_json_atomic(out, found.record)
    git = found.record.get("git") or {}
    print(f"baseline for suite {args.suite}: {git.get('branch')}@{str(git.get('commit'))[:7]} "
          f"from {found.source} -> {out}")
    return 0


def record_results(cfg: Config, results: Path) -> list[str]:
    """Append this run's final (non-shard, committed-tree) accuracy records under `results` to the history store;
    the lines to print. Records of a tree with uncommitted changes are left out, loudly: they are not the commit
    they name, and must never become a baseline or a reusable result."""
    res = load_results(results)
    lines = []
    provisional = 0
    for path, record in zip(res.record_paths, res.records, strict=True):
        if record.get("provisional"):
            warn(f"{path} is a shard's provisional record: not recorded (record the merged one)")
            provisional += 1
            continue
        if history.is_dirty(record):
            lines.append(f"not recorded: {record['suite']} {record['verdict']} ({path}) was made from a working tree "
                         "with uncommitted changes; commit, rebuild and run again to record it")
            continue
        rid = history.append_record(cfg, record)
        lines.append(f"recorded {record['suite']} {record['verdict']} ({path}) as {rid}")
    if provisional == len(res.records):
        raise UserError(f"nothing to record under {res.directory}: only provisional shard records",
                        hint="run `mlci accuracy merge` and record its output")
    return lines


def cmd_record(args: argparse.Namespace) -> int:
    cfg = _config(args.config, required=True)
    assert cfg is not None
    for line in record_results(cfg, _results_dir(args.results)):
        print(line)
    sys.stdout.flush()
    return 0
