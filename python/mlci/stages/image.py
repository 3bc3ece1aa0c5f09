"""Which image the test stages run in, and whether its mlci can talk to this one.

The image comes from --image, else $MLCI_IMAGE, else the build record (<out>/build.json) of the last
`mlci build`: Jenkins' stages pass the record along, a laptop just runs `mlci build` first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import docker.errors

from .. import __version__
from ..build import record
from ..errors import UserError
from ..fsutil import read_json
from ..paths import BUILD_RECORD


@dataclass(frozen=True)
class Image:
    ref: str  # what to run (image id or tag)
    name: str
    digest: str
    labels: dict[str, str]


def resolve(out: Path, flag: str | None, docker_client: docker.DockerClient) -> Image:
    ref = flag or os.environ.get("MLCI_IMAGE")
    name = None
    digest = None
    if not ref:
        rec_path = out / BUILD_RECORD
        if not rec_path.is_file():
            raise UserError(f"no image to test: {rec_path} does not exist",
                            hint="run `mlci build` first, or pass --image REF / set MLCI_IMAGE")
        rec = read_json(rec_path)
        ref = rec["image"]["id"]
        name, digest = rec["image"]["name"], rec["image"]["digest"]
    try:
        img = docker_client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise UserError(f"image {ref} is not in the local Docker engine",
                        hint="run `mlci build` (or docker pull it) first") from None
    labels = img.labels or {}
    check_version(ref, labels.get(record.LABEL_VERSION))
    return Image(ref=img.id, name=name or ref.split("@")[0], digest=digest or img.id, labels=labels)


def check_version(ref: str, inner: str | None, outer: str = __version__) -> None:
    """The stages run `mlci ...` inside the image: refuse an image whose mlci speaks another contract."""
    if not inner:
        raise UserError(f"image {ref} has no {record.LABEL_VERSION} label, so its mlci version is unknown",
                        hint="build it with `mlci build` (from docker/service.Dockerfile)")
    if not record.compatible(outer, inner):
        raise UserError(f"image {ref} contains mlci {inner}, but this is mlci {outer}; they are not compatible "
                        "(major.minor must match)",
                        hint=f"rebuild the image with this mlci (`mlci build`), or run mlci {inner} outside")
