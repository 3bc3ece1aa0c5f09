"""S3 transfers inside a Kubernetes training Job: `mlci train-io get|put`, run by the mlci runtime image.

Why: a Job on a cluster cannot see the agent's disk, so inputs go in and outputs come back through S3. `get`
downloads each pinned input and refuses one whose sha256 differs; `put` uploads the outputs plus digests.json,
which the agent verifies after download. Both use the pod's boto3 chain (IAM role / service account).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import botocore.exceptions

from .. import s3
from ..artifacts.hashing import hash_file
from ..errors import UserError
from ..fsutil import atomic_writer

SPEC = re.compile(r"(?P<file>[^=]+)=(?P<uri>s3://\S+)@(?P<sha>[0-9a-f]{64})")
DIGESTS = "digests.json"


def get(dest: Path, specs: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        m = SPEC.fullmatch(spec)
        if not m:
            raise UserError(f"bad input spec {spec!r}", hint="FILE=s3://bucket/key@SHA256")
        bucket, key = s3.parse_uri(m["uri"])
        target = dest / m["file"]
        try:
            with atomic_writer(target, "wb") as fh:
                s3.client().download_fileobj(bucket, key, fh)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise s3.explain(exc, m["uri"], what="training input") from None
        got = hash_file(target)
        if got != m["sha"]:
            target.unlink()
            raise UserError(f"training input {m['uri']} has sha256 {got}, expected {m['sha']}",
                            hint="the data changed under its pin: fix artifacts.data.<name>.sha256 or the object")
        print(f"[train-io] {m['file']} <- {m['uri']} (sha256 {got[:12]} verified)", flush=True)


def put(src: Path, prefix: str, files: list[str]) -> None:
    digests = {}
    for name in files:
        path = src / name
        if not path.is_file():
            raise UserError(f"training output {name} was not written to {src}",
                            hint="the command must write every file listed in train.outputs to $MLCI_TRAIN_OUT")
        digests[name] = hash_file(path)
        bucket, key = s3.parse_uri(f"{prefix.rstrip('/')}/{name}")
        try:
            s3.client().upload_file(str(path), bucket, key)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise s3.explain(exc, f"{prefix}/{name}", what="training output") from None
        print(f"[train-io] {name} -> {prefix}/{name}", flush=True)
    bucket, key = s3.parse_uri(f"{prefix.rstrip('/')}/{DIGESTS}")
    s3.client().put_object(Bucket=bucket, Key=key, Body=json.dumps(digests, sort_keys=True).encode())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-io", help="(inside a training Job) move inputs/outputs through S3")
    cmds = p.add_subparsers(dest="io_cmd", required=True)
    g = cmds.add_parser("get", help="download pinned inputs, verifying sha256")
    g.add_argument("--dest", required=True, type=Path)
    g.add_argument("specs", nargs="*", metavar="FILE=s3://...@SHA256")
    g.set_defaults(func=lambda a: get(a.dest, a.specs))
    u = cmds.add_parser("put", help="upload outputs and their digests")
    u.add_argument("--src", required=True, type=Path)
    u.add_argument("--to", required=True, metavar="S3_PREFIX")
    u.add_argument("files", nargs="+")
    u.set_defaults(func=lambda a: put(a.src, a.to, a.files))


if __name__ == "__main__":
    from ..cli import main

    sys.exit(main(["train-io", *sys.argv[1:]]))
