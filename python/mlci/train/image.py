"""Build the training image with the build package's machinery: host wheelhouse bound from an image (no package
index, no wheels in layers), the docker CLI with BuildKit, provenance labels. No secrets are passed to the build:
the training data is pulled on the host and mounted at run time, so nothing secret can land in a layer.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from .. import __version__
from ..build import dockercli, wheelhouse
from ..build import record as build_record
from ..errors import StageFailed, UserError
from ..progress import Progress
from .settings import TrainSettings


@dataclass(frozen=True)
class TrainImage:
    ref: str
    id: str


def build(s: TrainSettings, *, code_digest: str, commit: str | None, branch: str | None,
          requirements: str, progress: Progress) -> TrainImage:
    """docker build the training Dockerfile; the tag is the code digest, so equal code gives an equal tag."""
    if not s.dockerfile.is_file():
        raise UserError(f"training Dockerfile {s.dockerfile} not found", where="train.dockerfile",
                        hint="add one (see examples/digits/training/Dockerfile) or fix train.dockerfile")
    dockercli.ensure_context_dir(s.context)
    wh = wheelhouse.requirements_wheelhouse(s.root / requirements if requirements else None, progress)
    wheels_image = wheelhouse.ensure_image(wh, progress)
    ref = f"{s.image}:{code_digest.removeprefix('sha256:')[:16]}"
    base = os.environ.get("MLCI_BASE_IMAGE") or s.base  # an agent's mirror / offline base wins, as in `mlci build`
    labels = build_record.labels(service=s.service, version=__version__, commit=commit, branch=branch, lock=None,
                                 lock_sha256=None, model_files={})
    labels["org.mlci.train.code_digest"] = code_digest
    args = ["--tag", ref, "--file", str(s.dockerfile), "--build-arg", f"BASE_IMAGE={base}",
            "--build-arg", f"SERVICE_WHEELS={wheels_image}"]
    for key, value in sorted(s.build_args.items()):
        args += ["--build-arg", f"{key}={value}"]
    args += build_record.label_args(labels)
    progress.log(f"building training image {ref} (base {base})")
    result = dockercli.run_build([*args, str(s.context)])
    if result.returncode != 0:
        raise StageFailed(f"building the training image failed:\n{dockercli.last_error_lines(result.output)}")
    out = subprocess.run([dockercli.docker_bin(), "image", "inspect", "--format", "{{.Id}}", ref],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise StageFailed(f"built {ref} but cannot inspect it: {out.stderr.strip()}")
    return TrainImage(ref, out.stdout.strip())
