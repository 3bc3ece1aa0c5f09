"""What the accuracy stage decides before it runs: the result-cache key, a reusable PASS, the change gates' baseline.

The result-cache key is the identity of the verdict: everything that can change a prediction or the judgement of
it. Its core is the built image itself -- the ordered content digests of its filesystem layers (`RootFS.Layers`,
the diff IDs: base image, mlci, models, requirements, code, ml-ci.yaml, anything a Dockerfile adds) and the parts
of its config a container sees (platform, Env, User, WorkingDir, Entrypoint). What provably cannot matter is left
out: labels (commit, branch, build time: not visible to the process), the image's Cmd (the stage replaces it) and
the image/creation ids. A hand-kept list of inputs ("the predict package, the model files") missed whatever it did
not name -- requirements.txt, a helper module, the base image -- so the key takes the whole image instead. Added on
top: the suite and accuracy config, the dataset digest, an explicit --seed, the change gates' baseline, and the
outer mlci version. A layer rebuilt without BuildKit's cache gets a new digest even when its bytes are the same
apart from timestamps: then the suite runs again (when in doubt, run).

Lookups go through the report package's history store (and Jenkins, for baselines), so Jenkins' `mlci test
accuracy` and a laptop's `mlci pipeline run` decide the same way. Neither lookup is a gate: a missing or broken
history store means "run the suite" / "no baseline", never a crash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, gitinfo
from ..artifacts.hashing import hash_file
from ..build import record as build_record
from ..config.loader import Config
from ..errors import UserError
from ..fsutil import write_json_atomic
from .image import Image

KEY_SCHEMA = "mlci.result-key/1"


def _dataset_sha256(cfg: Config, suite: str) -> str | None:
    """The dataset digest known without downloading it: the configured sha256, or a local file's (folder's) digest."""
    name = cfg["accuracy"]["suites"][suite]["dataset"]
    entry = cfg["artifacts"]["data"].get(name)
    if entry and entry["sha256"]:
        return str(entry["sha256"])
    uri = entry["uri"] if entry else name
    if uri.startswith("s3://"):
        return None
    path = cfg.resolve(uri)
    if path.is_dir():
        from ..accuracy.engine import local_digest

        return local_digest(cfg, path)
    return hash_file(path) if path.is_file() else None


def image_identity(attrs: dict[str, Any]) -> dict[str, Any]:
    """What a container of this image sees: platform, runtime config, and the content digests of its layers."""
    conf = attrs.get("Config") or {}
    return {"os": attrs.get("Os"), "architecture": attrs.get("Architecture"), "variant": attrs.get("Variant"),
            "env": list(conf.get("Env") or []), "user": conf.get("User") or "",
            "workdir": conf.get("WorkingDir") or "", "entrypoint": conf.get("Entrypoint"),
            "layers": list((attrs.get("RootFS") or {}).get("Layers") or [])}


def result_key(cfg: Config, suite: str, image: dict[str, Any], *, baseline: dict[str, Any] | None = None,
               candidate_models: dict[str, str] | None = None, seed: int | None = None) -> str | None:
    """The result-cache key (hex), or None when the dataset's bytes are not pinned (then nothing is reused)."""
    dataset = _dataset_sha256(cfg, suite)
    if dataset is None or not image.get("layers"):
        return None
    acc = cfg["accuracy"]
    doc = {"schema": KEY_SCHEMA, "image": image, "suite": suite, "suite_config": acc["suites"][suite],
           "accuracy": {k: v for k, v in acc.items() if k != "suites"}, "dataset_sha256": dataset,
           "baseline": baseline, "candidate_models": candidate_models, "seed": seed, "mlci": __version__}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def reusable_record(cfg: Config, suite: str, key: str | None) -> dict[str, Any] | None:
    """A stored PASS of `suite` with this result key (the result cache), unless the cache is off or a non-PASS
    record with the same key exists (then identical inputs gave another verdict too: run again)."""
    if not key or not cfg["report"]["history"] or not cfg["report"]["reuse"]:
        return None
    from ..report.history import find_reusable

    return find_reusable(cfg, suite=suite, key=key)


def reused_copy(stored: dict[str, Any], image: Image, run_id: str) -> dict[str, Any]:
    """The stored record re-issued for this build: this run, this image and its git (so reports and the deploy gate
    find it), the original run's numbers, and where they came from."""
    origin = stored.get("history") or {}
    copy = {k: v for k, v in stored.items() if k != "history"}
    copy["id"] = uuid.uuid4().hex
    copy["run"] = {"id": run_id}
    copy["git"] = {"commit": image.commit, "branch": image.branch, "dirty": image.dirty}
    copy["image"] = {"name": image.name, "digest": image.digest}
    copy["reused_from"] = {"record": origin.get("id"), "git": stored.get("git"), "image": stored.get("image"),
                           "run": stored.get("run"),
                           "reused_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return copy


@dataclass
class BaselineSource:
    """Where a change gate's baseline predictions come from: an image to run `mlci accuracy predict` in, and/or
    model files to swap into the candidate's image (mounted over its models directory)."""

    label: str
    image: str | None = None  # image ref whose own code and models predict the baseline
    model_files: dict[str, str] = field(default_factory=dict)  # a swap's files (fetched by digest when needed)
    models_dir: Path | None = None  # a swap's files, already on this host
    identity: dict[str, Any] = field(default_factory=dict)  # goes into the result key

    @property
    def can_swap(self) -> bool:
        return bool(self.model_files) or self.models_dir is not None


def find_baseline_record(cfg: Config, out: Path, suite: str) -> tuple[dict[str, Any], str]:
    """The baseline branch's current record for a change-gated suite: (record, where from); also written to
    <out>/baselines/<suite>.json.

    The latest PASS of this suite is preferred and any other suite's PASS on the baseline branch will do: a new
    change-gated suite must not need a PASS of itself before it can ever pass. No baseline at all is an input
    error: the change gate cannot be judged, and silently skipping it would pass an unchecked model."""
    from ..report.baseline import find_baseline

    suites = cfg["accuracy"]["suites"]
    commit = gitinfo.commit(cfg.root)
    sources = []
    for name in [suite, *sorted(n for n in suites if n != suite)]:
        found = find_baseline(cfg, suite=name, exclude_commit=commit)
        rec = found.record
        if rec is not None and ((rec.get("model") or {}).get("files") or (rec.get("image") or {}).get("digest")):
            write_json_atomic(out / "baselines" / f"{suite}.json", rec)
            return rec, f"suite {name}'s record from {found.source}"
        sources.append(found.source)
    raise UserError(f"suite '{suite}' has a change gate but there is no baseline model: {sources[0]}",
                    where=f"accuracy.suites.{suite}.gates",
                    hint="record a PASS on the baseline branch first (report.history, or a Jenkins build), e.g. "
                         "of an every-build suite with absolute gates")


def baseline_from_record(cfg: Config, rec: dict[str, Any], where: str, docker_client: Any) -> BaselineSource:
    """Prefer the baseline's own image (its digest is in the record); its model files are the fallback swap."""
    image = rec.get("image") or {}
    files = dict((rec.get("model") or {}).get("files") or {})
    git = rec.get("git") or {}
    label = f"{where}: {git.get('branch')}@{str(git.get('commit'))[:7]}"
    identity = {"record": (rec.get("history") or {}).get("id"), "image": image.get("digest"), "model_files": files}
    ref = local_image(docker_client, image.get("name"), image.get("digest"), pull=bool(cfg["image"]["push"]))
    return BaselineSource(label=label, image=ref, model_files=files, identity=identity)


def local_image(docker_client: Any, name: str | None, digest: str | None, *, pull: bool) -> str | None:
    """The baseline image's id in this engine (pulled by digest when images are pushed), or None; an image whose
    mlci cannot run `accuracy predict` with this one is None too (the model swap is used instead)."""
    import docker.errors

    if not digest:
        return None
    refs = [digest] if digest.startswith("sha256:") and not name else [digest, f"{name}@{digest}"]
    for ref in refs:
        try:
            img = docker_client.images.get(ref)
            break
        except (docker.errors.ImageNotFound, docker.errors.APIError):
            continue
    else:
        if not (pull and name):
            return None
        try:
            img = docker_client.images.pull(f"{name}@{digest}")
        except docker.errors.DockerException:
            return None
    inner = (img.labels or {}).get(build_record.LABEL_VERSION)
    return img.id if inner and build_record.compatible(__version__, inner) else None
