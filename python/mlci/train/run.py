"""`mlci train`: produce a model, judge it against the current one, publish it only on PASS.

Steps: produce (inputs pulled verified -> run cache or training image run) -> evaluate (the configured accuracy
suite inside the service image that will ship -- built from this tree, the new model files mounted over its models
directory -- its change gates paired on the same samples against the model the image holds, i.e. the one the
dependency file pins now; mlci's own Python never imports the service's code) -> on PASS
publish (models add: content-addressed upload + lock update; the training data's drift reference, content-
addressed next to the models; training record; git branch + tag; PR). On FAIL or
INCONCLUSIVE nothing is published and <out>/train.json + the log say which gate said no.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import gitinfo
from ..artifacts import api as artifacts
from ..config.loader import Config
from ..errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, StageFailed, UserError
from ..fsutil import read_json, write_json_atomic
from ..paths import accuracy_dir
from ..progress import Progress
from . import drift_reference, gitops, record
from .produce import Produced, produce
from .settings import TrainSettings

RESULT_FILE = "train.json"
RESULT_SCHEMA = "mlci.train-result/1"


def current_models(cfg: Config, s: TrainSettings) -> dict[str, str]:
    """The model files the dependency file pins now (the baseline, held by the service image); {} without a lock."""
    if not s.lock.exists():
        return {}
    return artifacts.lock_files(cfg) or {}


def evaluate(cfg: Config, s: TrainSettings, candidate: Path, has_current: bool, out: Path) -> dict[str, Any]:
    """Judge the candidate like every test stage judges: inside the service image. The image is built from this
    tree (the code and requirements that will ship; its models are the ones the dependency file pins now), the
    candidate's files are mounted over its models directory, and a change gate's baseline is the same image with
    its own models, predicted in a container of its own. Returns accuracy.json."""
    assert s.evaluate
    from ..build.image import build
    from ..stages.accuracy import run_accuracy
    from ..stages.accuracy_inputs import BaselineSource

    suite_out = out / "eval"
    shutil.rmtree(suite_out, ignore_errors=True)
    sys.stdout.flush()
    stdout = sys.stdout
    sys.stdout = sys.stderr  # the build's and the suite's output go to the log; stdout is the one-line result
    try:
        built = build(cfg, suite_out)
        image = built["image"]
        baseline = None
        if has_current:
            baseline = BaselineSource(label="the current model (the dependency file's, in the image)",
                                      image=image["id"],
                                      identity={"image": image["digest"], "model_files": built["models"]["files"]})
        try:
            run_accuracy(cfg, suite_out, s.evaluate, force=True, candidate_models=candidate, baseline=baseline)
        except StageFailed as exc:
            if not (accuracy_dir(suite_out, s.evaluate) / "accuracy.json").is_file():
                raise StageFailed(f"evaluating the new model with suite '{s.evaluate}' produced no result: {exc}",
                                  exit_code=exc.exit_code) from None
    finally:
        sys.stdout = stdout
    return read_json(accuracy_dir(suite_out, s.evaluate) / "accuracy.json")


def why(accuracy: dict[str, Any]) -> str:
    """One line per gate that did not pass (the report's 'why nothing was published')."""
    lines = [g.get("message") or f"{g.get('metric')} {g.get('kind')}: {g.get('verdict')}"
             for g in accuracy.get("gates", []) if g.get("verdict") != "PASS"]
    return "; ".join(lines) or f"verdict {accuracy.get('verdict')}"


def _candidate_dir(s: TrainSettings, produced: Produced, dest: Path) -> Path:
    """Only the declared outputs, laid out as under artifacts.models.dest: what the evaluation loads and hashes."""
    shutil.rmtree(dest, ignore_errors=True)
    for name in s.outputs:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(produced.outputs_dir / name, target)
    return dest


def _stage_model_files(s: TrainSettings, produced: Produced) -> list[Path]:
    """Place the outputs where the dependency file expects model files (artifacts.models.dest)."""
    placed = []
    for name in s.outputs:
        target = s.root / s.model_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(produced.outputs_dir / name, target)
        placed.append(target)
    return placed


def publish(cfg: Config, s: TrainSettings, produced: Produced, rec: dict[str, Any], report_md: Path | None,
            progress: Progress) -> dict[str, Any]:
    """models add (upload + lock), record next to the lock, commit on a branch + tag (+ push, + PR)."""
    files = _stage_model_files(s, produced)
    artifacts.add_models(cfg, [str(f) for f in files])
    write_json_atomic(s.record_path, rec)
    progress.log(f"lock {s.lock.name} updated; record {s.record_path.name} written")
    repo = gitops.repo_root(s.root)
    pub = s.publish
    message = (f"{s.service}: new model {{tag}} from training\n\n"
               f"code {rec['code'].get('commit')}, data "
               + ", ".join(f"{n}={d['sha256']}" for n, d in rec["data"].items())
               + f", params {rec['params']['sha256']}, evaluation {rec['evaluation'].get('verdict')}")
    published = gitops.publish(repo, [s.lock, s.record_path], service=s.service, tag_pattern=pub["tag"],
                               branch_prefix=pub["branch_prefix"], message=message,
                               remote=pub["remote"], push=pub["push"])
    progress.log(f"committed {published.commit[:12]} on {published.branch}, tagged {published.tag}"
                 + (f", pushed to {pub['remote']}" if published.pushed else " (not pushed: no remote)"))
    result: dict[str, Any] = {"branch": published.branch, "tag": published.tag, "commit": published.commit,
                              "pushed": published.pushed, "pull_request": None}
    if pub["pull_request"]:
        result["pull_request"] = open_pull_request(s, published, report_md, rec, progress)
    return result


def open_pull_request(s: TrainSettings, published: gitops.Published, report_md: Path | None,
                      rec: dict[str, Any], progress: Progress) -> dict[str, Any] | None:
    """Through the report package's poster, when report.post names a provider and a token is in the env."""
    from . import pr

    target = pr.target(s.report_post)
    if target is None:
        progress.log("no pull request: report.post.provider or its token (MLCI_REPORT_TOKEN) "
                     "is not set")
        return None
    if not published.pushed:
        progress.log("no pull request: the branch was not pushed (train.publish.push / no remote)")
        return None
    base = s.publish["base_branch"] or gitinfo.branch(s.root) or "main"
    body = pr_body(published, rec, report_md)
    opened = pr.open_pull_request(target, head=published.branch, base=base, title=f"{s.service}: {published.tag}",
                                  body=body)
    progress.log(f"pull request opened: {opened.get('url') or opened.get('number')}")
    return opened


def pr_body(published: gitops.Published, rec: dict[str, Any], report_md: Path | None) -> str:
    """The accuracy report, preceded by what made the model (the training record in brief)."""
    data = "\n".join(f"- `{n}` {d['uri']} `{d['sha256']}`" for n, d in rec["data"].items()) or "- (none)"
    head = (f"New model **{published.tag}**, trained by mlci and accepted by suite "
            f"`{rec['evaluation']['suite']}` ({rec['evaluation']['verdict']}).\n\n"
            f"- code: `{rec['code'].get('commit')}` (training code digest `{rec['code']['digest']}`)\n"
            f"- params: `{rec['params']['file']}` `{rec['params']['sha256']}`\n"
            f"- image: `{rec['image'].get('digest')}`\n- trigger: {rec['trigger']}\n\nData:\n{data}\n\n")
    report = report_md.read_text(encoding="utf-8") if report_md and report_md.is_file() else "(no report rendered)"
    return head + report


def render_report(cfg: Config, results: Path) -> Path | None:
    """report.md of the evaluation (the PR body) through `mlci report render` (offline: no history lookups)."""
    out = results / "report"
    proc = subprocess.run([sys.executable, "-m", "mlci", "report", "render", "-c", str(cfg.path), "--results",
                           str(results), "--out", str(out), "--no-history"], cwd=cfg.root, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(f"[train] report render failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}\n")
        return None
    return out / "report.md"


def train(cfg: Config, *, out: Path, force: bool, trigger_name: str | None, progress: Progress) -> int:
    s = _settings(cfg)
    started = time.monotonic()
    work = out / "train"
    work.mkdir(parents=True, exist_ok=True)
    _check_baseline(cfg, s)
    drift_reference.choose_input(cfg, s)
    try:
        produced = produce(cfg, s, work=work, force=force, progress=progress)
    except StageFailed as exc:
        write_json_atomic(out / RESULT_FILE, {"schema": RESULT_SCHEMA, "service": s.service, "status": "failed",
                                              "reason": str(exc).splitlines()[0], "published": None,
                                              "exit_code": exc.exit_code})
        raise
    progress.log("outputs: " + ", ".join(f"{n} sha256:{d[:12]}" for n, d in sorted(produced.files.items())))
    result: dict[str, Any] = {"schema": RESULT_SCHEMA, "service": s.service, "run_key": produced.key,
                              "cache_hit": produced.cache_hit, "outputs": produced.files, "published": None}
    if not s.evaluate:
        result.update(status="not-evaluated", reason="train.evaluate is not set: a model is only published after "
                                                     "an accuracy suite passed", exit_code=EXIT_OK)
        progress.log(result["reason"])
        return _finish(out, result)
    current = current_models(cfg, s)
    new_paths = {s.model_path(n): f"sha256:{d}" for n, d in produced.files.items()}
    if current and all(current.get(p) == d for p, d in new_paths.items()):
        result.update(status="unchanged", reason="the new model files are identical to the current ones",
                      exit_code=EXIT_OK)
        progress.log(f"nothing to publish: {result['reason']}")
        return _finish(out, result)
    reference = drift_reference.compute(cfg, s, work, progress)  # inputs verified; published only on PASS
    progress.log(f"evaluating with suite '{s.evaluate}' against "
                 + ("the current model" if current else "no current model (first model: absolute gates only)"))
    candidate = _candidate_dir(s, produced, work / "candidate")
    accuracy = evaluate(cfg, s, candidate, bool(current), work)
    verdict = accuracy.get("verdict")
    result["evaluation"] = {"suite": s.evaluate, "verdict": verdict, "gates": accuracy.get("gates", [])}
    if verdict != "PASS":
        code = EXIT_INCONCLUSIVE if verdict == "INCONCLUSIVE" else EXIT_FAIL
        report_md = render_report(cfg, work / "eval")
        result.update(status="rejected", reason=why(accuracy), exit_code=code,
                      report=str(report_md) if report_md else None)
        progress.log(f"{verdict}: nothing published: {result['reason']}")
        return _finish(out, result)
    git = {"commit": gitinfo.commit(s.root), "branch": gitinfo.branch(s.root), "dirty": gitinfo.tree_dirty(s.root)}
    rec = record.build(
        service=s.service, model_files=new_paths, git=git, code_digest=produced.code_digest, data=produced.data,
        params_file=str(s.params.relative_to(s.root)) if s.params else None, params_digest=produced.params_digest,
        params=record.read_params(s.params), image=produced.image,
        evaluation={"suite": s.evaluate, "verdict": verdict, "gates": accuracy.get("gates", []),
                    "metrics": accuracy.get("metrics", {}), "seed": accuracy.get("seed"),
                    "dataset": accuracy.get("dataset"), "baseline": accuracy.get("baseline")},
        durations={"train": produced.train_s, "total": time.monotonic() - started}, run_key=produced.key,
        cache_hit=produced.cache_hit, trigger_name=record.trigger(trigger_name), runner=produced.runner,
        drift_reference=drift_reference.publish(cfg["artifacts"]["remote"], *reference) if reference else None)
    if reference:
        progress.log(f"drift reference published: {rec['drift_reference']['uri']}")
    report_md = render_report(cfg, work / "eval")
    result["published"] = publish(cfg, s, produced, rec, report_md, progress)
    result.update(status="published", reason=f"suite '{s.evaluate}' passed", exit_code=EXIT_OK, record=rec)
    return _finish(out, result)


def _finish(out: Path, result: dict[str, Any]) -> int:
    """Write train.json and say in one stdout line what happened (the log above has the details)."""
    write_json_atomic(out / RESULT_FILE, result)
    tag = (result.get("published") or {}).get("tag")
    print(f"train: {result['status']}{' ' + tag if tag else ''}: {result['reason']}  ({out / RESULT_FILE})")
    return int(result["exit_code"])


def _check_baseline(cfg: Config, s: TrainSettings) -> None:
    """Before any training: the evaluation builds the service image (from the dependency file), and a change
    gate needs a current model to compare against."""
    if not s.evaluate:
        return
    if not (s.lock.exists() and artifacts.lock_files(cfg)) and any(
            g["kind"] == "change" for g in cfg["accuracy"]["suites"][s.evaluate]["gates"]):
        raise UserError(f"suite '{s.evaluate}' has a change gate but {s.lock.name} pins no current model to compare "
                        "against", where="train.evaluate",
                        hint="publish the first model with `mlci models add`, or evaluate the first one with a suite "
                        "of absolute gates")
    if not s.lock.exists():
        raise UserError(f"train.evaluate judges the new model inside the service image, which is built from the "
                        f"dependency file {s.lock.name}, and there is none", where="train.evaluate",
                        hint="publish the first model with `mlci models add`, then train")


def _settings(cfg: Config) -> TrainSettings:
    """Resolve and fail fast: publishing needs a git repository, so say so before an hour of training."""
    from .settings import resolve

    s = resolve(cfg)
    if s.evaluate:
        gitops.repo_root(s.root)
    return s
