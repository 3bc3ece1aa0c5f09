"""`mlci build`: the service image, built by the docker CLI with BuildKit, labelled, tagged, recorded.

The build runs with `--network host` so the models-pull step reaches an S3 endpoint on the agent itself
(127.0.0.1 in tests and laptops); credentials and the endpoint go in as secret files (see secrets.py).
The build log is kept under <out>/logs/build.log: which steps were CACHED is the evidence that a code-only
change reused the model layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .. import __version__, gitinfo
from ..config.loader import Config
from ..errors import StageFailed, UserError
from ..fsutil import atomic_writer, write_json_atomic
from ..paths import BUILD_RECORD
from ..progress import Progress
from . import record
from .dockercli import docker_bin, ensure_context_dir, last_error_lines, push, run_build
from .secrets import aws_files
from .wheelhouse import ensure_image, mlci_wheelhouses, requirements_wheelhouse


@dataclass(frozen=True)
class Models:
    lock: str | None
    lock_sha256: str | None
    files: dict[str, str]


def models_provenance(cfg: Config) -> Models:
    """The dependency file, its digest and the model digests it pins (read by the artifacts engine)."""
    from ..artifacts import api

    lock_rel = cfg["artifacts"]["models"]["lock"]
    files, _ = api.dependency_files(cfg)  # a glob (models/*.dvc) must match at least one file
    if not all(f.is_file() for f in files):
        raise UserError(f"model dependency file {lock_rel} does not exist", where=str(cfg.path),
                        hint="create it with `mlci models add FILE` (or `dvc add` + `dvc push` with "
                        "artifacts.models.lock: models/*.dvc), or set artifacts.models.lock")
    return Models(lock_rel, api.lock_digest(cfg), api.lock_files(cfg))


def image_name(cfg: Config) -> str:
    return cfg["image"]["name"] or f"mlci/{cfg['service']}"


def base_image(cfg: Config, flag: str | None) -> str:
    """--base, then $MLCI_BASE_IMAGE (an agent's mirror or an offline base), then image.base."""
    return flag or os.environ.get("MLCI_BASE_IMAGE") or cfg["image"]["base"]


def inspect_image(ref: str) -> dict[str, Any]:
    out = subprocess.run([docker_bin(), "image", "inspect", ref], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise UserError(f"image {ref} not found in the local Docker engine", hint="run `mlci build` first")
    return json.loads(out.stdout)[0]


def build(cfg: Config, out: Path, *, base: str | None = None, no_cache: bool = False, push_images: bool | None = None,
          echo: TextIO | None = None) -> dict[str, Any]:
    """Build, tag, label, optionally push; write <out>/build.json; return the record."""
    started = record.utcnow()
    t0 = time.monotonic()
    progress = Progress(0, "build")
    context = ensure_context_dir(cfg.resolve(cfg["image"]["context"]))
    dockerfile = cfg.resolve(cfg["image"]["dockerfile"])
    if not dockerfile.is_file():
        raise UserError(f"Dockerfile {dockerfile} not found", where="image.dockerfile",
                        hint="copy docker/service.Dockerfile from mlci to your repository")
    models = models_provenance(cfg)
    deps_wh, mlci_wh = mlci_wheelhouses(progress)
    req_wh = requirements_wheelhouse(context / "requirements.txt", progress)
    deps_image, wheels_image = ensure_image(deps_wh, progress), ensure_image(mlci_wh, progress)
    req_image = ensure_image(req_wh, progress)

    commit, branch = gitinfo.commit(cfg.root), gitinfo.branch(cfg.root)
    dirty = gitinfo.tree_dirty(cfg.root)
    name = image_name(cfg)
    tags = record.image_tags(name, commit, branch, dirty)
    labels = record.labels(service=cfg["service"], version=mlci_version(mlci_wh.wheels()), commit=commit,
                           branch=branch, lock=models.lock, lock_sha256=models.lock_sha256, model_files=models.files,
                           source=gitinfo.url(cfg.root), dirty=dirty)
    if dirty:
        progress.log(f"the working tree has uncommitted changes: tagged {tags[0]} only (no branch tag); its "
                     "records are never recorded to the history store nor used as a baseline")
    build_args = {"BASE_IMAGE": base_image(cfg, base), "MLCI_DEPS_WHEELS": deps_image, "MLCI_WHEELS": wheels_image,
                  "SERVICE_WHEELS": req_image,
                  **(cfg["image"]["build_args"] or {})}

    progress.log(f"building {', '.join(tags)} from {dockerfile.relative_to(cfg.root)} (base {build_args['BASE_IMAGE']})")
    with tempfile.TemporaryDirectory(prefix="mlci-build-") as tmp, aws_files() as aws:
        iidfile = Path(tmp) / "iid"
        args = ["--network", "host", "--file", str(dockerfile), "--iidfile", str(iidfile), *aws.build_args()]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        args += record.label_args(labels)
        for tag in tags:
            args += ["--tag", tag]
        if no_cache:
            args.append("--no-cache")
        args.append(str(context))
        with atomic_writer(out / "logs" / "build.log", "w", encoding="utf-8") as log:
            result = run_build(args, log=log, echo=echo)
        if result.returncode != 0:
            raise StageFailed(f"docker build failed (exit {result.returncode}); last lines:\n"
                              f"{last_error_lines(result.output)}  full log: {out / 'logs' / 'build.log'}",
                              exit_code=1)
        image_id = iidfile.read_text().strip()

    digest = None
    if cfg["image"]["push"] if push_images is None else push_images:
        for tag in tags:
            progress.log(f"pushing {tag}")
            push(tag)
        repo_digests = inspect_image(image_id).get("RepoDigests") or []
        digest = next((d.split("@", 1)[1] for d in repo_digests if d.startswith(name + "@")), None)
    rec = record.build_record(service=cfg["service"], name=name, tags=tags, image_id=image_id, repo_digest=digest,
                              commit=commit, branch=branch, lock=models.lock, lock_sha256=models.lock_sha256,
                              model_files=models.files, version=labels[record.LABEL_VERSION], started=started,
                              duration_s=time.monotonic() - t0, run_id=record.new_run_id(), dirty=dirty)
    write_json_atomic(out / BUILD_RECORD, rec)
    progress.close(f"built {image_id[:19]} in {rec['duration_s']:.1f}s -> {out / BUILD_RECORD}")
    return rec


def mlci_version(wheels: list[str]) -> str:
    """The mlci version going into the image: from its wheel's file name (mlci-0.1.0-py3-none-any.whl)."""
    for w in wheels:
        if w.startswith("mlci-"):
            return w.split("-")[1]
    return __version__


def cached_steps(build_log: str) -> dict[str, bool]:
    """BuildKit plain progress -> {step title: cached?}. Used by tests and the benchmark to prove layer reuse."""
    titles: dict[str, str] = {}
    cached: dict[str, bool] = {}
    for line in build_log.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("#"):
            continue
        num = parts[0]
        rest = line[len(num) + 1:]
        if rest.startswith("[") and num not in titles:
            titles[num] = rest
            cached.setdefault(rest, False)
        elif rest.strip() == "CACHED" and num in titles:
            cached[titles[num]] = True
    return cached
