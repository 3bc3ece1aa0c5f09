"""`mlci pipeline run`: the Jenkins stages, in the same order and with the same names, on a laptop or an agent.

Each stage calls the same function its `mlci build` / `mlci test ...` command calls, so there is one code path.
It prints a header per stage, times it, stops at the first failing stage and exits with that stage's code,
and always ends with a summary table and where the results are.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..config.loader import Config, load_config
from ..errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, StageFailed, UserError
from ..paths import out_dir

LOCAL_STAGES = ("build", "unit", "acceptance", "accuracy")


@dataclass
class StageOutcome:
    name: str
    status: str  # ok | FAILED | INCONCLUSIVE | skipped | not run | interrupted
    exit_code: int | None
    seconds: float | None
    note: str = ""


def parse_stages(value: str | None, configured: list[str]) -> list[str]:
    """--stages a,b (in pipeline order) or the configured stages that run locally (deploy does not)."""
    if not value:
        return [s for s in configured if s in LOCAL_STAGES]
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in LOCAL_STAGES]
    if unknown:
        hint = "deploy runs through `mlci deploy --env NAME`" if "deploy" in unknown else None
        raise UserError(f"unknown stage(s) {', '.join(unknown)} for a local run",
                        hint=hint or f"choose from {', '.join(LOCAL_STAGES)}")
    return [s for s in LOCAL_STAGES if s in wanted]


def default_suites(cfg: Config) -> list[str]:
    """The every-build suites (what Jenkins runs on each push)."""
    return [name for name, s in cfg["accuracy"]["suites"].items() if s["every_build"]]


def stage_functions(cfg: Config, out: Path, suites: list[str], image: str | None,
                    force: bool = False) -> dict[str, Callable[[], tuple[int, str]]]:
    """name -> callable returning (exit code, note); failures raise StageFailed / UserError."""
    from ..build.image import build
    from ..stages.acceptance import run_acceptance
    from ..stages.accuracy import run_accuracy
    from ..stages.unit import run_unit

    def do_build() -> tuple[int, str]:
        rec = build(cfg, out)
        return EXIT_OK, rec["image"]["tags"][0]

    def do_unit() -> tuple[int, str]:
        return EXIT_OK, str(run_unit(cfg, out, image=image).relative_to(out))

    def do_acceptance() -> tuple[int, str]:
        res = run_acceptance(cfg, out, image=image)
        return EXIT_OK, f"healthy after {res.healthy_after_s:.2f}s"

    def do_accuracy() -> tuple[int, str]:
        worst = EXIT_OK
        notes = []
        for suite in suites:
            code = run_accuracy(cfg, out, suite, image=image, force=force)
            notes.append(f"{suite}: {'PASS' if code == EXIT_OK else 'INCONCLUSIVE'}")
            worst = max(worst, code)
        return worst, ", ".join(notes)

    return {"build": do_build, "unit": do_unit, "acceptance": do_acceptance, "accuracy": do_accuracy}


def skip_reason(cfg: Config, stage: str, suites: list[str]) -> str | None:
    if stage in ("unit", "acceptance") and not cfg["tests"][stage]:
        return f"tests.{stage} not configured"
    if stage == "accuracy" and not suites:
        return "no every_build suite (use --suite NAME)"
    return None


def header(index: int, total: int, stage: str, stream: TextIO) -> None:
    line = f"=== [{index}/{total}] {stage} "
    stream.write(f"\n{line}{'=' * max(0, 78 - len(line))}\n")
    stream.flush()


def summary_table(outcomes: list[StageOutcome]) -> str:
    rows = [("stage", "result", "exit", "time", "")]
    for o in outcomes:
        rows.append((o.name, o.status, "" if o.exit_code is None else str(o.exit_code),
                     "" if o.seconds is None else f"{o.seconds:.1f}s", o.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(4)) + ("  " + r[4] if r[4] else ""))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def publish_report(cfg: Config, out: Path, *, record: bool, stream: TextIO) -> None:
    """What Jenkins' accuracyTests does in its `finally`: record to the history store (branch builds), then
    render report.html/.md. Information, not a gate: a failure here is printed and never changes the exit code."""
    if not (out / "accuracy").is_dir():
        return
    from ..report.cli import record_results, render_reports

    try:
        if record and cfg["report"]["history"]:
            for line in record_results(cfg, out):
                stream.write(f"[report] {line}\n")
        v, directory, _ = render_reports(out, cfg)
        stream.write(f"[report] {v['verdict']}: {directory / 'report.html'}\n")
    except (UserError, OSError) as exc:
        stream.write(f"[report] not written: {exc}\n")
    stream.flush()


def run_pipeline(cfg: Config, out: Path, stages: list[str], suites: list[str], *, image: str | None = None,
                 stream: TextIO | None = None, record: bool = False,
                 force: bool = False) -> tuple[int, list[StageOutcome]]:
    """Run the stages in order; return (exit code, outcomes). The exit code is the first failing stage's,
    else 3 when an accuracy suite was inconclusive, else 0."""
    stream = stream or sys.stdout
    fns = stage_functions(cfg, out, suites, image, force=force)
    outcomes: list[StageOutcome] = []
    final = EXIT_OK
    failed = False
    for i, stage in enumerate(stages, 1):
        if failed:
            outcomes.append(StageOutcome(stage, "not run", None, None))
            continue
        reason = skip_reason(cfg, stage, suites)
        if reason:
            outcomes.append(StageOutcome(stage, "skipped", None, None, reason))
            continue
        header(i, len(stages), stage, stream)
        t0 = time.monotonic()
        try:
            code, note = fns[stage]()
            status = "ok" if code == EXIT_OK else "INCONCLUSIVE"
            final = max(final, code)
        except (StageFailed, UserError) as exc:
            code = exc.exit_code
            status, note, failed, final = "FAILED", str(exc).splitlines()[0][:100], True, code
            stream.flush()
            print(f"mlci: stage {stage} failed: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            outcomes.append(StageOutcome(stage, "interrupted", 130, time.monotonic() - t0))
            outcomes.extend(StageOutcome(s, "not run", None, None) for s in stages[i:])
            _finish(outcomes, out, stream, 130)
            raise
        outcomes.append(StageOutcome(stage, status, code, time.monotonic() - t0, note))
    if "accuracy" in stages:
        publish_report(cfg, out, record=record, stream=stream)
    _finish(outcomes, out, stream, final)
    return final, outcomes


def _finish(outcomes: list[StageOutcome], out: Path, stream: TextIO, code: int) -> None:
    verdict = {EXIT_OK: "PASSED", EXIT_INCONCLUSIVE: "INCONCLUSIVE"}.get(code, "FAILED")
    total = sum(o.seconds or 0 for o in outcomes)
    stream.write(f"\n=== pipeline {verdict} (exit {code}) in {total:.1f}s {'=' * 50}\n")
    stream.write(summary_table(outcomes) + "\n")
    stream.write(f"\nresults: {out}\n")
    for rel, what in (("build.json", "build record"), ("logs/build.log", "build log"),
                      ("junit", "JUnit XML (unit, acceptance)"), ("accuracy", "accuracy records per suite"),
                      ("report/report.html", "report (open in a browser)"), ("report/report.md", "PR comment")):
        if (out / rel).exists():
            stream.write(f"  {out / rel}  ({what})\n")
    stream.flush()


def register(cmds: argparse._SubParsersAction) -> None:
    p = cmds.add_parser("run", help="run build, unit, acceptance, accuracy locally, as Jenkins does")
    p.add_argument("-c", "--config", default=None, help="ml-ci.yaml (default $MLCI_CONFIG or ./ml-ci.yaml)")
    p.add_argument("--out", default=None, help="output directory (default $MLCI_OUT, else <repo>/.mlci)")
    p.add_argument("--stages", default=None,
                   help=f"comma-separated subset of {','.join(LOCAL_STAGES)} (default: pipeline.stages)")
    p.add_argument("--suite", action="append", default=None,
                   help="accuracy suite to run (repeatable; default the every_build suites)")
    p.add_argument("--image", default=None, help="test this image instead of the one `build` made")
    p.add_argument("--record", action="store_true",
                   help="append accuracy records to report.history, as Jenkins does for branch builds")
    p.add_argument("--force", action="store_true", help="run accuracy suites even when a stored PASS matches")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from ..build.cli import config_path

    cfg = load_config(config_path(args.config))
    out = out_dir(args.out, cfg.root)
    stages = parse_stages(args.stages, cfg["pipeline"]["stages"])
    suites = args.suite or default_suites(cfg)
    for s in suites:
        if s not in cfg["accuracy"]["suites"]:
            raise UserError(f"no accuracy suite '{s}'", where=str(cfg.path),
                            hint=f"defined: {', '.join(sorted(cfg['accuracy']['suites'])) or '(none)'}")
    code, _ = run_pipeline(cfg, out, stages, suites, image=args.image, record=args.record, force=args.force)
    return code if code in (EXIT_OK, EXIT_INCONCLUSIVE) else (code or EXIT_FAIL)
