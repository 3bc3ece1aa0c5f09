"""The accuracy stage: `mlci accuracy run --suite NAME` inside the built image.

The engine runs where the model and the predict code are (the image). The dataset comes through the artifacts
cache: the host's cache directory is mounted at the image's $MLCI_CACHE, so a dataset fetched once on an agent
is reused by every later run, and the container reaches S3 with the same secret files as the build (host
network, for an endpoint on the agent itself). Results land in <out>/accuracy/<suite>/; the exit code is the
engine's (0 PASS, 1 FAIL, 3 INCONCLUSIVE).

Before running: the result cache (accuracy_inputs: a stored PASS with this image's result key is re-issued for
this build). A change gate compares two real artifacts on the same samples: the candidate image writes its sample
(`mlci accuracy plan`), the baseline predicts exactly those samples in a container of its own -- in its own image
when that is here, else the candidate's image with the baseline's model files mounted over its models directory
(and $MLCI_MODELS_DIR pointing there) -- and the candidate is judged against those predictions
(`--baseline-predictions`). Every record names this run, the image and the image's commit.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from ..accuracy import endpoint as endpoint_mode
from ..accuracy.results import write as write_record
from ..build.record import new_run_id
from ..build.secrets import aws_secrets
from ..config.loader import Config
from ..errors import EXIT_INCONCLUSIVE, EXIT_USAGE, StageFailed, UserError
from ..fsutil import read_json, write_json_atomic
from ..paths import accuracy_dir, cache_dir
from ..progress import Progress
from .acceptance import serving
from .accuracy_inputs import (
    BaselineSource,
    baseline_from_record,
    find_baseline_record,
    image_identity,
    result_key,
    reusable_record,
    reused_copy,
)
from .containers import bind, cleanup_always, client, host_user, leases_dir, state_summary, tail_logs
from .docker_run import UMASK_ENV, aws_by_reference, run_line, shell_line, umask_text
from .image import Image, resolve
from .run import OUT_IN_CONTAINER, CommandResult, git_env, remove_staging, run_command

CACHE_IN_IMAGE = "/var/cache/mlci"  # ENV MLCI_CACHE of docker/service.Dockerfile
BASELINE_IN_IMAGE = "/mlci-baseline/predictions.json"
PLAN_IN_IMAGE = "/mlci-plan"


def accuracy_command(suite: str, workers: str | None, seed: int | None, shard: str | None,
                     baseline: str | None = None, sub: str = "run", out: str = OUT_IN_CONTAINER) -> str:
    parts = ["mlci", "accuracy", sub, "--suite", suite, "--out", out]
    if baseline:
        parts += ["--baseline-predictions", baseline]
    if workers:
        parts += ["-n", str(workers)]
    if seed is not None:
        parts += ["--seed", str(seed)]
    if shard:
        parts += ["--shard", shard]
    return shlex.join(parts)


def models_path(image: Image | dict[str, Any], cfg: Config) -> str:
    """The models directory inside an image: its WORKDIR + artifacts.models.dest."""
    attrs = image.attrs if isinstance(image, Image) else image
    workdir = ((attrs.get("Config") or {}).get("WorkingDir")) or "/"
    return posixpath.join(workdir, cfg["artifacts"]["models"]["dest"].strip("/") or "models")


def run_accuracy(cfg: Config, out: Path, suite: str, *, image: str | None = None, workers: str | None = None,
                 seed: int | None = None, shard: str | None = None, force: bool = False,
                 candidate_models: Path | None = None, baseline: BaselineSource | None = None,
                 print_only: bool = False) -> int:
    """Run one suite in the image; return the engine's exit code (0 pass, 3 inconclusive); raise on FAIL.

    `candidate_models` (training) mounts those model files over the image's models directory for the candidate;
    `baseline` replaces the history lookup of a change gate's baseline (training: the image's own models).
    `print_only`: print the equivalent `docker run` line (docker_run.py) and run nothing."""
    suites = cfg["accuracy"]["suites"]
    if suite not in suites:
        raise UserError(f"no accuracy suite '{suite}'", where=str(cfg.path),
                        hint=f"defined: {', '.join(sorted(suites)) or '(none)'}")
    dc = client()
    img = resolve(out, image, dc, root=cfg.root)
    progress = Progress(0, f"accuracy {suite}")
    run_id = img.run_id or new_run_id()
    if not img.run_id:
        progress.log(f"image {img.ref[:19]} is not the one {out / 'build.json'} names: its records belong to run "
                     f"{run_id}, not to that build")
    change = any(g["kind"] == "change" for g in suites[suite]["gates"])
    ep = endpoint_mode.settings(cfg["accuracy"], suites[suite])
    if ep:
        _check_endpoint_suite(cfg, suite, change=change, candidate_models=candidate_models)
        if print_only:
            raise UserError(f"suite '{suite}' runs in endpoint mode: a plan step, the service on a private network "
                            "and the engine next to it are not one `docker run` line",
                            where=f"accuracy.suites.{suite}.endpoint",
                            hint="run `mlci test accuracy`; `mlci test acceptance --print-docker-run` shows how the "
                                 "service is started")
    if print_only and change:
        raise UserError(f"suite '{suite}' has a change gate: its baseline predicts the same samples in a second "
                        "image first, which one `docker run` line cannot do",
                        where=f"accuracy.suites.{suite}.gates",
                        hint="run `mlci test accuracy` once: it prints the `docker run` line of the candidate's run, "
                             f"with the baseline's predictions it wrote under {out / 'baselines' / suite}")
    if change and baseline is None and shard is None and not print_only:
        rec, where = find_baseline_record(cfg, out, suite)
        baseline = baseline_from_record(cfg, rec, where, dc)
    cand_files = _hash_dir(cfg, candidate_models) if candidate_models else None
    key = result_key(cfg, suite, image_identity(img.attrs), baseline=baseline.identity if baseline else None,
                     candidate_models=cand_files, seed=seed)
    if shard is None and not force and seed is None and candidate_models is None and not print_only:
        stored = reusable_record(cfg, suite, key)
        if stored is not None:
            rec = reused_copy(stored, img, run_id)
            target = write_record(out, rec)
            origin = rec["reused_from"]
            git = origin.get("git") or {}
            progress.log(f"unchanged: this image, dataset, suite and baseline match record {origin['record']} "
                         f"({git.get('branch')}@{str(git.get('commit'))[:7]}): reused its PASS ({target}); "
                         "--force to run again")
            return 0

    host_cache = cache_dir(cfg["artifacts"]["cache"])
    env = {**git_env(cfg.root), "MLCI_CACHE": CACHE_IN_IMAGE, **img.provenance_env(run_id)}
    if key:
        env["MLCI_RESULT_KEY"] = key
    volumes = bind(host_cache, CACHE_IN_IMAGE)
    if print_only:
        print(docker_run_line(img, accuracy_command(suite, workers, seed, shard), env, volumes, out, host_cache),
              flush=True)
        return 0
    host_cache.mkdir(parents=True, exist_ok=True)
    timeout_s = suites[suite]["timeout"] * 60
    if candidate_models is not None:
        target_dir = models_path(img, cfg)
        volumes.update(bind(candidate_models.resolve(), target_dir, "ro"))
        env["MLCI_MODELS_DIR"] = target_dir
        progress.log(f"candidate model files {candidate_models} mounted at {target_dir}")
    predictions = None
    aws = aws_secrets()
    with cleanup_always(dc, leases=leases_dir(host_cache), log=progress.log) as tracker:
        def run(image_ref: str, command: str, stage: str, extra_env: dict[str, str],
                extra_volumes: dict[str, dict[str, str]]) -> CommandResult:
            progress.log(f"running `{command}` in {image_ref[:19]}")
            return run_command(dc, tracker, image=image_ref, command=command, stage=stage, out=out,
                               env={**extra_env, **aws.container_env()}, timeout_s=timeout_s,
                               name=f"mlci-{cfg['service']}-{stage}-{tracker.run_id}", network_mode="host",
                               volumes=extra_volumes, files=aws.archive())

        if ep:
            result, command = _run_endpoint(cfg, out, suite, img, dc, tracker, run, env, volumes, workers=workers,
                                            seed=seed, shard=shard, timeout_s=timeout_s, progress=progress)
            return _finish(result, out, suite, command, suites[suite]["timeout"], progress)
        if change and baseline is not None:
            predictions = _baseline_predictions(cfg, out, suite, img, baseline, run, env, volumes,
                                                workers=workers, seed=seed, shard=shard, progress=progress)
        command = accuracy_command(suite, workers, seed, shard, baseline=BASELINE_IN_IMAGE if predictions else None)
        extra = bind(predictions, BASELINE_IN_IMAGE, "ro") if predictions else {}
        progress.log("the same run with plain docker (results in " f"{accuracy_dir(out, suite)}):\n  "
                     + docker_run_line(img, command, env, {**volumes, **extra}, out, host_cache))
        progress.log(f"running `{command}` in {img.name} ({img.ref[:19]})")
        result = run(img.ref, command, "accuracy", env, {**volumes, **extra})
    return _finish(result, out, suite, command, suites[suite]["timeout"], progress)


def _check_endpoint_suite(cfg: Config, suite: str, *, change: bool, candidate_models: Path | None) -> None:
    """What endpoint mode cannot do yet, refused before any container starts."""
    where = f"accuracy.suites.{suite}"
    if change:
        raise UserError(f"suite {suite} has a change gate, which endpoint mode does not support yet", where=where,
                        hint="run change gates in callable mode (accuracy.predict): give this suite its own "
                        "predict, or leave accuracy.endpoint to the suites without change gates")
    if candidate_models is not None:
        raise UserError(f"suite {suite} runs in endpoint mode; a training run's candidate model files cannot be "
                        "served from the image yet", where=where, hint="evaluate training runs with a callable suite")
    name = cfg["accuracy"]["suites"][suite]["dataset"]
    entry = cfg["artifacts"]["data"].get(name)
    if entry and entry["uri"].startswith("s3://") and (not entry["sha256"] or entry.get("format") == "folder"):
        raise UserError(f"dataset '{name}' in S3 must be one file pinned by sha256 in endpoint mode: the engine "
                        "runs on the service's private network and reads it from the cache the stage fills first",
                        where=f"artifacts.data.{name}",
                        hint="pin it (`mlci data add NAME FILE` writes uri and sha256), or use a local copy")


def _run_endpoint(cfg: Config, out: Path, suite: str, img: Image, dc: Any, tracker: Any, run: Any,
                  env: dict[str, str], volumes: dict[str, dict[str, str]], *, workers: str | None, seed: int | None,
                  shard: str | None, timeout_s: float, progress: Progress) -> tuple[CommandResult, str]:
    """Endpoint mode: plan the sample on the host network (it fetches the dataset into the shared cache and
    checks the request template), start the service exactly as the acceptance stage does, then run the engine
    on the service's private network, where it reaches the service by name and nothing else."""
    plan_cmd = accuracy_command(suite, workers, seed, shard, sub="plan", out=f"{OUT_IN_CONTAINER}/plan")
    planned = run(img.ref, plan_cmd, "accuracy-plan", env, volumes)
    try:
        if planned.exit_code != 0 or not (planned.staging / "plan" / "plan.json").is_file():
            _fail(f"accuracy suite {suite}: planning the sample (`{plan_cmd}`)", planned)
    finally:
        remove_staging(planned)
    ep_cfg = cfg["accuracy"]["endpoint"] or {}
    acceptance = cfg["tests"]["acceptance"]
    serve = ep_cfg.get("serve") or (acceptance["serve"] if acceptance else _default_serve())
    key = "accuracy.endpoint.serve" if ep_cfg.get("serve") else "tests.acceptance.serve"
    command = accuracy_command(suite, workers, seed, shard)
    with serving(cfg, dc, tracker, img, serve, stage="accuracy", key=key, lifetime_s=timeout_s,
                 progress=progress) as served:
        progress.log(f"service healthy after {served.healthy_after_s:.2f}s; running `{command}` against {served.url}")
        result = run_command(dc, tracker, image=img.ref, command=command, stage="accuracy", out=out,
                             env={**env, endpoint_mode.URL_ENV: served.url}, timeout_s=timeout_s,
                             name=f"mlci-{cfg['service']}-accuracy-{tracker.run_id}", network=served.network,
                             volumes=volumes)
        if result.exit_code not in (0, EXIT_INCONCLUSIVE):
            logs = tail_logs(served.container, 30).rstrip() or "(no output)"
            progress.log(f"service {served.container.name}: {state_summary(served.container)}; last service logs:\n"
                         "    " + logs.replace("\n", "\n    "))
    return result, command


def _default_serve() -> dict[str, Any]:
    from ..config.schema import serve

    return serve.default_value()
def docker_run_line(img: Image, command: str, env: dict[str, str], volumes: dict[str, dict[str, str]], out: Path,
                    host_cache: Path) -> str:
    """The stage's container as one `docker run` line (docker_run.py): the same image, command, environment and
    mounts; the image's own commit and branch; this caller's credentials by reference; results written straight
    into `out` (mounted at the container's --out) as the caller, with the caller's umask."""
    keep = {k: v for k, v in env.items() if k not in ("GIT_COMMIT", "BRANCH_NAME", "MLCI_RUN_ID")}
    env_line = {"HOME": "/tmp", UMASK_ENV: umask_text(), **keep}
    out_abs = out.resolve()
    line = run_line(image=img.ref, attrs=img.attrs, argv=shlex.split(command), env=env_line,
                    volumes={**volumes, **bind(out_abs, OUT_IN_CONTAINER)}, network="host", user=host_user(),
                    extra=aws_by_reference())
    return shell_line(line, mkdirs=[out_abs, host_cache.resolve()])


def _finish(result: CommandResult, out: Path, suite: str, command: str, timeout_min: int, progress: Progress) -> int:
    """Move the suite's results into place; the engine's exit code, or StageFailed."""
    target = accuracy_dir(out, suite)
    try:
        produced = accuracy_dir(result.staging, suite)
        if produced.is_dir():
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(produced, target)
        elif target.exists():
            shutil.rmtree(target)  # an earlier run's record must not pass as this one's
    finally:
        remove_staging(result)
    if result.exit_code is None:
        raise StageFailed(f"accuracy suite {suite} timed out after {timeout_min} min "
                          f"(accuracy.suites.{suite}.timeout)")
    record = target / "accuracy.json"
    if result.exit_code in (0, EXIT_INCONCLUSIVE) and record.is_file():
        verdict = "PASS" if result.exit_code == 0 else "INCONCLUSIVE"
        progress.close(f"{verdict} in {result.duration_s:.1f}s; results in {target}")
        return result.exit_code
    if not record.is_file():
        if result.exit_code == EXIT_USAGE:
            raise UserError(f"accuracy suite {suite}: `{command}` refused its input (exit 2); last output:\n"
                            f"{result.logs[-3000:]}")
        raise StageFailed(f"accuracy suite {suite}: `{command}` exited {result.exit_code} without writing "
                          f"{record}; last output:\n{result.logs[-3000:]}", exit_code=result.exit_code or 1)
    raise StageFailed(f"accuracy suite {suite} failed (exit {result.exit_code}); results in {target}",
                      exit_code=result.exit_code)


def _hash_dir(cfg: Config, directory: Path) -> dict[str, str]:
    from ..accuracy.engine import hash_tree

    dest = cfg["artifacts"]["models"]["dest"].rstrip("/")
    return hash_tree({f"{dest}/{p.relative_to(directory).as_posix()}": p for p in directory.rglob("*") if p.is_file()})


def _baseline_predictions(cfg: Config, out: Path, suite: str, img: Image, baseline: BaselineSource, run: Any,
                          env: dict[str, str], volumes: dict[str, dict[str, str]], *, workers: str | None,
                          seed: int | None, shard: str | None, progress: Progress) -> Path:
    """The candidate image plans the sample; the baseline predicts it in a container of its own. Returns the
    host path of the predictions document (<out>/baselines/<suite>/predictions.json)."""
    work = out / "baselines" / suite
    if work.exists():
        shutil.rmtree(work)
    plan_cmd = accuracy_command(suite, workers, seed, shard, sub="plan", out=f"{OUT_IN_CONTAINER}/plan")
    planned = run(img.ref, plan_cmd, "accuracy-plan", env, volumes)
    try:
        if planned.exit_code != 0 or not (planned.staging / "plan" / "plan.json").is_file():
            _fail(f"planning the sample (`{plan_cmd}`)", planned)
        work.parent.mkdir(parents=True, exist_ok=True)
        os.replace(planned.staging / "plan", work)
    finally:
        remove_staging(planned)
    attempts = ([("image", baseline.image)] if baseline.image else []) + ([("model-swap", img.ref)]
                                                                          if baseline.can_swap else [])
    if not attempts:
        raise UserError(f"the change gate's baseline ({baseline.label}) has neither an image here nor model files",
                        hint="record the baseline branch's PASS from an image build (mlci pipeline run --record)")
    if not baseline.image:
        progress.log(f"baseline {baseline.label}: its image is not in this Docker engine; swapping its model files "
                     "into this image instead")
    for i, (method, ref) in enumerate(attempts):
        base_env = {"MLCI_CACHE": CACHE_IN_IMAGE}
        base_volumes = {**bind(work, PLAN_IN_IMAGE, "ro"), **bind(cache_dir(cfg["artifacts"]["cache"]), CACHE_IN_IMAGE)}
        if method == "model-swap":
            models_dir = baseline.models_dir or _fetch(cfg, baseline)
            target_dir = models_path(img, cfg)
            base_volumes.update(bind(models_dir.resolve(), target_dir, "ro"))
            base_env["MLCI_MODELS_DIR"] = target_dir
            what = f"this image with the baseline's model files mounted at {target_dir}"
        else:
            base_env["MLCI_IMAGE_DIGEST"] = (baseline.identity or {}).get("image") or ref
            what = f"the baseline's own image {ref[:19]}"
        cmd = shlex.join(["mlci", "accuracy", "predict", "--plan", f"{PLAN_IN_IMAGE}/plan.json",
                          "--out", f"{OUT_IN_CONTAINER}/predictions.json"])
        progress.log(f"baseline ({baseline.label}): predicting the planned samples in {what}")
        result = run(ref, cmd, "accuracy-baseline", base_env, base_volumes)
        try:
            produced = result.staging / "predictions.json"
            if result.exit_code == 0 and produced.is_file():
                doc = read_json(produced)
                doc.update(method=method, source=f"{baseline.label}; {what}")
                target = work / "predictions.json"
                write_json_atomic(target, doc)
                return target
            if i + 1 == len(attempts):
                _fail(f"the baseline's predictions (`{cmd}` in {what})", result)
            print(f"mlci: warning: the baseline's own image could not predict the planned samples (exit "
                  f"{result.exit_code}); swapping its model files into this image instead. Last output:\n"
                  f"{result.logs[-1500:]}", file=sys.stderr, flush=True)
        finally:
            remove_staging(result)
    raise AssertionError("unreachable")


def _fetch(cfg: Config, baseline: BaselineSource) -> Path:
    from ..accuracy.baseline import fetch_model_files

    return fetch_model_files(cfg, baseline.model_files, where=baseline.label)


def _fail(what: str, result: CommandResult) -> None:
    if result.exit_code is None:
        raise StageFailed(f"{what} timed out")
    if result.exit_code == EXIT_USAGE:
        raise UserError(f"{what} refused its input (exit 2); last output:\n{result.logs[-3000:]}")
    raise StageFailed(f"{what} exited {result.exit_code}; last output:\n{result.logs[-3000:]}",
                      exit_code=result.exit_code or 1)
