"""The reference `mlci train` published: the default of `mlci drift check` when neither --reference nor
drift.reference is given.

Why through the training record: the record in the checkout (`train.publish.record`, next to the dependency
file) describes the model this branch ships, so the reference it names is the training data of the model that
is in production once the branch is deployed -- the latest published one, no "latest" pointer to race on. The
object itself is content-addressed in S3 (`<artifacts.remote>/sha256/..`) and checked against the digest in the
record, like the model files the lock names.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .. import s3
from ..config.loader import Config
from ..config.schema import SCHEMA
from ..errors import UserError
from ..fsutil import read_json
from .reference import parse_reference

RECORD_KEY = "drift_reference"
FIX = ("run `mlci train` (a PASS publishes the reference and names it in the training record), pass "
       "--reference FILE|s3://..., or set drift.reference (`mlci drift reference --dataset NAME --out ...`)")


def record_path(cfg: Config) -> Path:
    """Where `mlci train` writes its record: train.publish.record next to artifacts.models.lock."""
    train = cfg.data.get("train") or {}
    name = (train.get("publish") or {}).get("record") or \
        SCHEMA.fields["train"].fields["publish"].default_value()["record"]
    return cfg.resolve(cfg["artifacts"]["models"]["lock"]).parent / name


def locate(cfg: Config | None) -> dict[str, Any]:
    """{uri, sha256, ...} of the published reference, or a UserError naming the fix."""
    if cfg is None:
        raise UserError("no reference given and no ml-ci.yaml to find a published training reference", hint=FIX)
    path = record_path(cfg)
    if not path.is_file():
        raise UserError(f"no reference given and no training record {path.name} next to the dependency file",
                        where=str(path), hint=FIX)
    entry = read_json(path).get(RECORD_KEY)
    if not entry or not entry.get("uri") or not entry.get("sha256"):
        raise UserError(f"the training record {path.name} names no drift reference (written by an mlci train "
                        "without one, or the training had no inputs)", where=str(path), hint=FIX)
    return dict(entry)


def fetch(entry: dict[str, Any]) -> dict[str, Any]:
    """The reference object, its bytes verified against the recorded sha256 before they are trusted."""
    uri, want = entry["uri"], str(entry["sha256"]).removeprefix("sha256:")
    bucket, key = s3.parse_uri(uri)
    try:
        body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - translated for the user
        raise s3.explain(exc, uri, "published drift reference") from None
    got = hashlib.sha256(body).hexdigest()
    if got != want:
        raise UserError(f"published drift reference {uri} has sha256 {got}, the training record says {want}",
                        hint="the object changed under its digest: re-run `mlci train --force` or pass --reference")
    return parse_reference(body.decode("utf-8"), uri)
