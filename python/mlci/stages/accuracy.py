"""The accuracy stage: `mlci accuracy run --suite NAME` inside the built image.

The engine runs where the model and the predict code are (the image). The dataset comes through the artifacts
cache: the host's cache directory is mounted at the image's $MLCI_CACHE, so a dataset fetched once on an agent
is reused by every later run, and the container reaches S3 with the same secret files as the build (host
network, for an endpoint on the agent itself). Results land in <out>/accuracy/<suite>/; the exit code is the
engine's (0 PASS, 1 FAIL, 3 INCONCLUSIVE).
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from ..accuracy.results import write as write_record
from ..build.secrets import aws_files
from ..config.loader import Config
from ..errors import EXIT_INCONCLUSIVE, StageFailed, UserError
from ..paths import accuracy_dir, cache_dir
from ..progress import Progress
from .accuracy_inputs import baseline_file, reusable_record, reused_copy
from .containers import bind, cleanup_always, client, new_run_id
from .image import resolve
from .run import OUT_IN_CONTAINER, git_env, remove_staging, run_command

CACHE_IN_IMAGE = "/var/cache/mlci"  # ENV MLCI_CACHE of docker/service.Dockerfile
BASELINE_IN_IMAGE = "/mlci-baseline/accuracy.json"


def accuracy_command(suite: str, workers: str | None, seed: int | None, shard: str | None,
                     baseline: str | None = None) -> str:
    parts = ["mlci", "accuracy", "run", "--suite", suite, "--out", OUT_IN_CONTAINER]
    if baseline:
        parts += ["--baseline", baseline]
    if workers:
        parts += ["-n", str(workers)]
    if seed is not None:
        parts += ["--seed", str(seed)]
    if shard:
        parts += ["--shard", shard]
    return shlex.join(parts)


def run_accuracy(cfg: Config, out: Path, suite: str, *, image: str | None = None, workers: str | None = None,
                 seed: int | None = None, shard: str | None = None, force: bool = False) -> int:
    """Run one suite in the image; return the engine's exit code (0 pass, 3 inconclusive); raise on FAIL.

    Before running: the result cache (a stored PASS on the same model, data and inference code is re-issued for
    this build instead of running again, unless `force`), and the change gates' baseline."""
    suites = cfg["accuracy"]["suites"]
    if suite not in suites:
        raise UserError(f"no accuracy suite '{suite}'", where=str(cfg.path),
                        hint=f"defined: {', '.join(sorted(suites)) or '(none)'}")
    if shard is None and not force and seed is None:
        stored = reusable_record(cfg, out, suite)
        if stored is not None:
            rec = reused_copy(stored, cfg, out)
            target = write_record(out, rec)
            origin = rec["reused_from"]
            print(f"[accuracy {suite}] unchanged: model, dataset and inference code match record {origin['record']} "
                  f"({(origin.get('git') or {}).get('branch')}@{str((origin.get('git') or {}).get('commit'))[:7]}); "
                  f"reused its PASS ({target}); --force to run again", flush=True)
            return 0
    baseline = baseline_file(cfg, out, suite) if shard is None else None
    dc = client()
    img = resolve(out, image, dc)
    progress = Progress(0, f"accuracy {suite}")
    run_id = new_run_id()
    host_cache = cache_dir(cfg["artifacts"]["cache"])
    host_cache.mkdir(parents=True, exist_ok=True)
    command = accuracy_command(suite, workers, seed, shard, baseline=BASELINE_IN_IMAGE if baseline else None)
    baseline_mount = bind(baseline, BASELINE_IN_IMAGE, "ro") if baseline else {}
    timeout_s = suites[suite]["timeout"] * 60
    env = {**git_env(cfg.root), "MLCI_CACHE": CACHE_IN_IMAGE, "MLCI_IMAGE_NAME": img.name,
           "MLCI_IMAGE_DIGEST": img.digest}
    progress.log(f"running `{command}` in {img.name} ({img.ref[:19]})")
    with aws_files(shared=out) as aws, cleanup_always(dc) as tracker:
        result = run_command(dc, tracker, image=img.ref, command=command, stage="accuracy", run_id=run_id, out=out,
                             env={**env, **aws.container_env()}, timeout_s=timeout_s,
                             name=f"mlci-{cfg['service']}-accuracy-{run_id}", network_mode="host",
                             volumes={**bind(host_cache, CACHE_IN_IMAGE), **aws.container_volumes(), **baseline_mount})
    try:
        target = accuracy_dir(out, suite)
        produced = accuracy_dir(result.staging, suite)
        if produced.is_dir():
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(produced, target)
    finally:
        remove_staging(result)
    if result.exit_code is None:
        raise StageFailed(f"accuracy suite {suite} timed out after {suites[suite]['timeout']} min "
                          f"(accuracy.suites.{suite}.timeout)")
    record = target / "accuracy.json"
    if result.exit_code in (0, EXIT_INCONCLUSIVE) and record.is_file():
        verdict = "PASS" if result.exit_code == 0 else "INCONCLUSIVE"
        progress.close(f"{verdict} in {result.duration_s:.1f}s; results in {target}")
        return result.exit_code
    if not record.is_file():
        raise StageFailed(f"accuracy suite {suite}: `{command}` exited {result.exit_code} without writing "
                          f"{record}; last output:\n{result.logs[-3000:]}", exit_code=result.exit_code or 1)
    raise StageFailed(f"accuracy suite {suite} failed (exit {result.exit_code}); results in {target}",
                      exit_code=result.exit_code)
