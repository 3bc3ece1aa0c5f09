"""Which image the test stages run in, whether its mlci can talk to this one, and whether it is HEAD's.

The image comes from --image, else $MLCI_IMAGE, else the build record (<out>/build.json) of the last
`mlci build`: Jenkins' stages pass the record along, a laptop just runs `mlci build` first.

An image from the build record must have been built from the commit being tested (HEAD): after a `git checkout`
the record still names the other branch's image, and testing it would label its results with HEAD. An image
named explicitly (--image / $MLCI_IMAGE) is tested as asked, with a loud note, and its results carry the
image's own commit.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from .. import __version__, gitinfo
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
    attrs: dict[str, Any] = field(default_factory=dict)  # `docker image inspect` of the image
    run_id: str | None = None  # the build record's run, when the image is the one that record names
    from_record: bool = False

    @property
    def commit(self) -> str | None:
        return self.labels.get(record.LABEL_COMMIT) or None

    @property
    def branch(self) -> str | None:
        return self.labels.get(record.LABEL_BRANCH) or None

    @property
    def dirty(self) -> bool:
        return self.labels.get(record.LABEL_DIRTY) == "true"

    def provenance_env(self, run_id: str) -> dict[str, str]:
        """What `mlci accuracy run` inside the image writes into its record: this run, this image, its git."""
        env = {"MLCI_RUN_ID": run_id, "MLCI_IMAGE_NAME": self.name, "MLCI_IMAGE_DIGEST": self.digest,
               "MLCI_IMAGE_DIRTY": "true" if self.dirty else "false"}
        if self.commit:
            env["MLCI_IMAGE_COMMIT"] = self.commit
        if self.branch:
            env["MLCI_IMAGE_BRANCH"] = self.branch
        return env


def resolve(out: Path, flag: str | None, docker_client: docker.DockerClient, root: Path | None = None) -> Image:
    """The image to test; with `root`, also check that it was built from that repository's HEAD."""
    ref = flag or os.environ.get("MLCI_IMAGE")
    name = None
    digest = None
    run_id = None
    rec_path = out / BUILD_RECORD
    rec = read_json(rec_path) if rec_path.is_file() else None
    explicit = bool(ref)
    if not ref:
        if rec is None:
            raise UserError(f"no image to test: {rec_path} does not exist",
                            hint="run `mlci build` first, or pass --image REF / set MLCI_IMAGE")
        ref = rec["image"]["id"]
        name, digest = rec["image"]["name"], rec["image"]["digest"]
    try:
        img = docker_client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise UserError(f"image {ref} is not in the local Docker engine",
                        hint="run `mlci build` (or docker pull it) first") from None
    if rec is not None and img.id == (rec.get("image") or {}).get("id"):
        name, digest = name or rec["image"]["name"], digest or rec["image"]["digest"]
        run_id = (rec.get("run") or {}).get("id")
    labels = img.labels or {}
    check_version(ref, labels.get(record.LABEL_VERSION))
    image = Image(ref=img.id, name=name or ref.split("@")[0], digest=digest or img.id, labels=labels,
                  attrs=img.attrs or {}, run_id=run_id, from_record=not explicit)
    if root is not None:
        for line in check_revision(image, gitinfo.commit(root), explicit=explicit, record_path=rec_path):
            print(f"mlci: warning: {line}", file=sys.stderr, flush=True)
    return image


def check_revision(image: Image, head: str | None, *, explicit: bool, record_path: Path) -> list[str]:
    """Refuse an image from the build record that was not built from HEAD; warnings for everything else that
    makes the image differ from the tree being tested."""
    built = image.commit
    notes = []
    if built and head and built != head:
        if not explicit:
            raise UserError(f"{record_path} names image {image.ref[:19]} built from commit {built[:12]}, but HEAD "
                            f"is {head[:12]}: testing it would label another commit's image with this one",
                            hint="run `mlci build` for HEAD first, or pass --image REF to test that image on purpose")
        notes.append(f"testing image {image.name} ({image.ref[:19]}) built from commit {built[:12]}, not HEAD "
                     f"{head[:12]}, because it was named explicitly; its records name commit {built[:12]}")
    elif not built:
        notes.append(f"image {image.ref[:19]} has no {record.LABEL_COMMIT} label: which commit it holds is unknown")
    if image.dirty:
        notes.append(f"image {image.ref[:19]} was built from a working tree with uncommitted changes: its records "
                     "are marked dirty and never recorded to the history store")
    return notes


def check_version(ref: str, inner: str | None, outer: str = __version__) -> None:
    """The stages run `mlci ...` inside the image: refuse an image whose mlci speaks another contract."""
    if not inner:
        raise UserError(f"image {ref} has no {record.LABEL_VERSION} label, so its mlci version is unknown",
                        hint="build it with `mlci build` (from docker/service.Dockerfile)")
    if not record.compatible(outer, inner):
        raise UserError(f"image {ref} contains mlci {inner}, but this is mlci {outer}; they are not compatible "
                        "(major.minor must match)",
                        hint=f"rebuild the image with this mlci (`mlci build`), or run mlci {inner} outside")
