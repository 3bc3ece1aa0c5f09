"""The run cache: a record of each successful training run, keyed by code + data + params digests, in S3.

Layout under `train.cache` (default `<artifacts.remote>/train`):
    runs/<key>/outputs/<file>   the output files of the run
    runs/<key>/run.json         {"schema": "mlci.train-run/1", "key", "outputs": {file: sha256}, ...}
run.json is written last, so a run whose upload was interrupted is simply not in the cache. The same prefix is
where a Kubernetes Job uploads its outputs, so both runners fill the cache the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.exceptions

from .. import s3
from ..artifacts.entries import check_relpath
from ..artifacts.hashing import hash_file, is_hex
from ..config.loader import safe_join
from ..errors import UserError
from ..fsutil import atomic_writer

RUN_SCHEMA = "mlci.train-run/1"


def run_prefix(cache_uri: str, key: str) -> str:
    return f"{cache_uri.rstrip('/')}/runs/{key}"


def outputs_prefix(cache_uri: str, key: str) -> str:
    return f"{run_prefix(cache_uri, key)}/outputs"


def lookup(cache_uri: str, key: str) -> dict[str, Any] | None:
    """The stored record of an earlier successful run with this key, or None."""
    uri = f"{run_prefix(cache_uri, key)}/run.json"
    bucket, obj = s3.parse_uri(uri)
    try:
        body = s3.client().get_object(Bucket=bucket, Key=obj)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise s3.explain(exc, uri) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise s3.explain(exc, uri) from None
    try:
        record = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"run record {uri} is not JSON", hint="delete it (the run is then repeated) or --force") from None
    if not isinstance(record, dict) or record.get("schema") != RUN_SCHEMA or record.get("key") != key:
        return None
    check_outputs(record.get("outputs"), uri)
    return record


def check_outputs(outputs: Any, where: str) -> dict[str, str]:
    """A run record's {file: sha256}: names are relative paths inside the outputs directory (a record in S3
    is input like any other: `../x` must not write outside it), digests are sha256."""
    if not isinstance(outputs, dict):
        raise UserError("the run record has no {file: sha256} outputs", where=where,
                        hint="delete it (the run is then repeated) or --force")
    for name, digest in outputs.items():
        check_relpath(name, where, "output name")
        if not isinstance(digest, str) or not is_hex(digest.removeprefix("sha256:"), 64):
            raise UserError(f"output {name!r} has no sha256 digest", where=where,
                            hint="delete the run record (the run is then repeated) or --force")
    return outputs


def download_outputs(cache_uri: str, key: str, files: dict[str, str], dest: Path) -> None:
    """Download a run's outputs into `dest`, verifying each file's sha256 (a mismatch is never used)."""
    prefix = outputs_prefix(cache_uri, key)
    for name, digest in sorted(check_outputs(files, f"{run_prefix(cache_uri, key)}/run.json").items()):
        uri = f"{prefix}/{name}"
        bucket, obj = s3.parse_uri(uri)
        target = safe_join(dest, name, what=f"training output {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_writer(target, "wb") as fh:
                s3.client().download_fileobj(bucket, obj, fh)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise s3.explain(exc, uri, what="training output") from None
        got = hash_file(target)
        if got != digest.removeprefix("sha256:"):
            target.unlink()
            raise UserError(f"training output {uri} has sha256 {got}, the run record says {digest}",
                            hint="the cache entry is corrupt: rerun with --force")


def upload_outputs(cache_uri: str, key: str, src: Path, outputs: tuple[str, ...]) -> dict[str, str]:
    """Upload the named outputs of a finished run; returns {file: sha256}."""
    prefix = outputs_prefix(cache_uri, key)
    digests: dict[str, str] = {}
    for name in outputs:
        path = src / name
        uri = f"{prefix}/{name}"
        bucket, obj = s3.parse_uri(uri)
        try:
            s3.client().upload_file(str(path), bucket, obj)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise s3.explain(exc, uri, what="training output") from None
        digests[name] = hash_file(path)
    return digests


def store(cache_uri: str, key: str, record: dict[str, Any]) -> None:
    """Write run.json last: from now on this key is a cache hit."""
    uri = f"{run_prefix(cache_uri, key)}/run.json"
    bucket, obj = s3.parse_uri(uri)
    body = json.dumps({**record, "schema": RUN_SCHEMA, "key": key}, indent=2, sort_keys=True).encode()
    try:
        s3.client().put_object(Bucket=bucket, Key=obj, Body=body, ContentType="application/json")
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise s3.explain(exc, uri) from None


def missing_outputs(src: Path, outputs: tuple[str, ...]) -> list[str]:
    return [o for o in outputs if not (src / o).is_file()]
