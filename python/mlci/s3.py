"""S3 access through the plain boto3 credential chain (env, shared files, IAM role; AWS_ENDPOINT_URL honoured).

Errors are translated into UserErrors that name the URI and the fix; nothing here knows about test servers.
boto3 and botocore are imported on first use only: importing them costs ~0.3 s, and a warm `mlci models pull`
(everything already in place) makes no S3 call at all.
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from typing import Any

from .errors import UserError

_S3_RE = re.compile(r"s3://([^/]+)/?(.*)")
READ_TIMEOUT = 60
CONNECT_TIMEOUT = 10


def parse_uri(uri: str) -> tuple[str, str]:
    m = _S3_RE.fullmatch(uri)
    if not m:
        raise UserError(f"'{uri}' is not an s3:// URI", hint="write it as s3://bucket/key")
    return m.group(1), m.group(2)


_CLIENT_LOCK = threading.Lock()


def client(max_pool: int = 32, max_attempts: int = 8, timeout: float | None = None) -> Any:
    """A shared client: boto3 clients are thread-safe, and one connection pool serves all download threads.

    Creation is serialised: the first loads botocore's service model (~0.3 s of CPU), and threads racing on an
    empty cache would each load it. `max_attempts` bounds botocore's own attempts (1: none repeated; the
    artifacts downloader retries itself, logged and within a wall-time budget). `timeout` caps the connect and
    read timeouts (rounded down to half seconds, at least 0.5), so a caller with 3 s of budget left never waits
    60 s on one read.
    """
    read = READ_TIMEOUT if timeout is None else max(0.5, min(READ_TIMEOUT, math.floor(timeout * 2) / 2))
    with _CLIENT_LOCK:
        return _client(max_pool, max_attempts, read)


@lru_cache(maxsize=1)
def _session() -> Any:
    import boto3

    return boto3.session.Session()


@lru_cache(maxsize=64)
def _client(max_pool: int, max_attempts: int, read_timeout: float) -> Any:
    from botocore.config import Config as BotoConfig

    cfg = BotoConfig(
        retries={"total_max_attempts": max_attempts, "mode": "adaptive" if max_attempts > 1 else "standard"},
        max_pool_connections=max_pool,
        connect_timeout=min(CONNECT_TIMEOUT, read_timeout),
        read_timeout=read_timeout,
    )
    return _session().client("s3", config=cfg)


def _clear() -> None:
    _client.cache_clear()
    _session.cache_clear()


client.cache_clear = _clear  # type: ignore[attr-defined]


def explain(exc: Exception, uri: str, what: str = "object") -> UserError:
    """Map a boto3/botocore exception to an actionable message."""
    import botocore.exceptions

    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return UserError(
            f"no AWS credentials found while reading {uri}",
            hint="boto3 looks in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE / ~/.aws/credentials, "
            "then the instance/pod IAM role; in Jenkins set artifacts.credentials",
        )
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return UserError(f"cannot reach the S3 endpoint for {uri}: {exc}", hint="check AWS_ENDPOINT_URL / network")
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",):
            return UserError(f"bucket of {uri} does not exist", hint="create it or fix the s3:// URI")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return UserError(f"{what} {uri} does not exist in S3",
                             hint="upload it (mlci models add / aws s3 cp) or fix the URI")
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            return UserError(f"access denied to {uri} ({code})",
                             hint="the credentials in the boto3 chain lack s3:GetObject/PutObject on it")
        return UserError(f"S3 error on {uri}: {code} {exc}")
    return UserError(f"S3 error on {uri}: {exc}")
