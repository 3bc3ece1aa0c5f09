"""Produce the model files of a training run: compute the run key from the pins (code, data digests, params),
then either reuse an earlier successful run (run cache) or build the training image and run it: locally (the
inputs pulled and verified by the artifacts engine, then mounted) or as a Kubernetes Job (the Job pulls and
verifies them itself).

The result is the same either way: a directory with exactly the files in `train.outputs`, their digests, and
the facts the training record needs (data digests, params digest, code digest, image, duration).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .. import gitinfo
from ..artifacts import api as artifacts
from ..build import dockercli
from ..build.image import inspect_image
from ..config.loader import Config
from ..errors import StageFailed, UserError
from ..fsutil import write_text_atomic
from ..paths import cache_dir
from ..progress import Progress
from ..stages.containers import leases_dir
from . import cache, digests, image, kube, local
from .settings import TrainSettings


@dataclass
class Produced:
    key: str
    cache_hit: bool
    outputs_dir: Path
    files: dict[str, str]  # output name -> sha256 hex
    code_digest: str
    params_digest: str | None
    data: dict[str, dict[str, str]]  # input name -> {uri, sha256}
    image: dict[str, Any] = field(default_factory=dict)
    train_s: float = 0.0
    runner: str = "local"


def pull_inputs(cfg: Config, s: TrainSettings, data_dir: Path) -> dict[str, Path]:
    """Each pinned input, fetched and sha256-verified by the artifacts engine, placed under `data_dir`."""
    if not s.inputs:
        return {}
    rows = artifacts.pull_data(cfg, [i.name for i in s.inputs], dest=str(data_dir))
    return {i.name: Path(r["path"]) for i, r in zip(s.inputs, rows, strict=True)}


def _fail(what: str, tail: list[str], reason: str = "") -> StageFailed:
    lines = "\n    ".join(tail[-local.TAIL_LINES:]) or "(no output)"
    return StageFailed(f"training {what}{': ' + reason if reason else ''}\n  last log lines:\n    {lines}")


def produce(cfg: Config, s: TrainSettings, *, work: Path, force: bool, progress: Progress,
            stream: TextIO | None = None) -> Produced:
    stream = stream or sys.stderr
    outputs_dir = work / "outputs"
    shutil.rmtree(outputs_dir, ignore_errors=True)
    outputs_dir.mkdir(parents=True)
    data_dir = work / "data"
    data = {i.name: {"uri": i.uri, "sha256": f"sha256:{i.sha256}"} for i in s.inputs}
    code = digests.code_digest(s, extra_exclude=[work])
    params = digests.params_digest(s)
    key = digests.run_key(code, {n: d["sha256"] for n, d in data.items()}, params, s.command, s.outputs)
    pins = ", ".join(f"{n}={d['sha256'][7:19]}" for n, d in data.items()) or "-"
    progress.log(f"run key {key[:16]} (code {code[7:19]}, params {params[7:19] if params else '-'}, data {pins})")
    if not s.cache_uri:
        raise UserError("no place for the run cache and training outputs", where=str(cfg.path),
                        hint="set artifacts.remote (or train.cache: s3://bucket/prefix)")
    hit = None if force else cache.lookup(s.cache_uri, key)
    if hit:
        progress.log(f"run cache hit: reusing the outputs of the run of {hit.get('finished', '?')} "
                     f"(--force retrains)")
        cache.download_outputs(s.cache_uri, key, hit["outputs"], outputs_dir)
        return Produced(key, True, outputs_dir, dict(hit["outputs"]), code, params, data,
                        image=hit.get("image", {}), train_s=0.0, runner=hit.get("runner", s.runner))
    if force:
        progress.log("--force: not looking in the run cache")
    commit, branch = gitinfo.commit(s.root), gitinfo.branch(s.root)
    built = image.build(s, code_digest=code, commit=commit, branch=branch, requirements=_requirements(cfg),
                        progress=progress)
    image_info: dict[str, Any] = {"name": s.image, "ref": built.ref, "id": built.id, "digest": built.id}
    t0 = time.monotonic()
    if s.runner == "local":
        inputs = pull_inputs(cfg, s, data_dir)  # only now: the key needs the pins, not the bytes
        files_map = {name: path.name for name, path in inputs.items()}
        result = local.run_container(built.ref, s.command, out_dir=outputs_dir, data_dir=data_dir if inputs else None,
                                     inputs=files_map, params=s.params, timeout_s=s.timeout_s,
                                     resources=s.resources, name_prefix=f"mlci-train-{s.service}", stream=stream,
                                     leases=leases_dir(cache_dir(cfg["artifacts"]["cache"])))
        if result.timed_out:
            raise _fail(f"stopped after the time limit of {s.timeout_s:g}s (train.timeout)", result.tail)
        if result.exit_code != 0:
            raise _fail(f"command exited {result.exit_code}", result.tail)
        missing = cache.missing_outputs(outputs_dir, s.outputs)
        if missing:
            raise _fail(f"did not write {', '.join(missing)} to $MLCI_TRAIN_OUT (train.outputs)", result.tail)
        files = cache.upload_outputs(s.cache_uri, key, outputs_dir, s.outputs)
    else:
        image_info.update(_push_for_cluster(s, built.ref))
        files = run_kubernetes(cfg, s, image_ref=image_info.get("pull_ref", built.ref), key=key, work=work,
                               outputs_dir=outputs_dir, progress=progress, stream=stream)
    train_s = time.monotonic() - t0
    cache.store(s.cache_uri, key, {"outputs": files, "image": image_info, "runner": s.runner, "code": code,
                                   "params": params, "data": data, "train_s": round(train_s, 3),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return Produced(key, False, outputs_dir, files, code, params, data, image=image_info, train_s=train_s,
                    runner=s.runner)


def _requirements(cfg: Config) -> str:
    return cfg["train"]["requirements"]


def _push_for_cluster(s: TrainSettings, ref: str) -> dict[str, Any]:
    """A cluster pulls from a registry: push, and run the Job by repo digest (immutable). With
    image_pull_policy: Never (kind/minikube with the image loaded) the local image is used as is."""
    if s.image_pull_policy == "Never":
        return {}
    dockercli.push(ref)
    repo_digests = inspect_image(ref).get("RepoDigests") or []
    if not repo_digests:
        raise StageFailed(f"pushed {ref} but the engine reports no repo digest")
    return {"digest": repo_digests[0].split("@", 1)[1], "pull_ref": repo_digests[0]}


def run_kubernetes(cfg: Config, s: TrainSettings, *, image_ref: str, key: str, work: Path, outputs_dir: Path,
                   progress: Progress, stream: TextIO) -> dict[str, str]:
    """Render + validate + apply the Job, follow it, then fetch its outputs from S3 (verified)."""
    from ..deploy.render import Manifest
    from ..deploy.validate import validate

    assert s.cache_uri is not None
    name = kube.job_name(s.service, key)
    outputs_uri = cache.outputs_prefix(s.cache_uri, key)
    runtime = kube.default_runtime_image(cfg["pipeline"].get("runner_image"))
    manifests = kube.render(s, name=name, image=image_ref, runtime_image=runtime, outputs_uri=outputs_uri)
    version = cfg["deploy"].get("kubernetes_version") or "1.30"
    validate([Manifest("train-job", m) for m in manifests], namespace=s.namespace, version=version)
    manifest_file = work / "job.yaml"
    write_text_atomic(manifest_file, kube.to_yaml(manifests))
    progress.log(f"Job {name} rendered and validated offline (Kubernetes {version}): {manifest_file}")
    kc, target = kube.kubectl_for(s.namespace, s.context_name, stream)
    result = kube.orchestrate(kc, target, manifest_file, name, timeout_s=s.timeout_s)
    if not result.succeeded:
        raise _fail(f"Job {name} failed", result.tail, result.reason)
    listed = _job_digests(outputs_uri)
    missing = [o for o in s.outputs if o not in listed]
    if missing:
        raise StageFailed(f"Job {name} completed but uploaded no {', '.join(missing)} to {outputs_uri}")
    files = {o: listed[o] for o in s.outputs}
    cache.download_outputs(s.cache_uri, key, files, outputs_dir)
    progress.log(f"Job {name} complete in {result.duration_s:.1f}s; outputs verified from {outputs_uri}")
    return files


def _job_digests(outputs_uri: str) -> dict[str, str]:
    """digests.json written by the Job's upload container (`mlci train-io put`)."""
    from .. import s3
    from .transfer import DIGESTS

    uri = f"{outputs_uri}/{DIGESTS}"
    bucket, key = s3.parse_uri(uri)
    try:
        body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - translated for the user
        raise s3.explain(exc, uri, what="Job outputs digest list") from None
    return dict(json.loads(body))
