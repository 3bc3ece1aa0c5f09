"""S3 access through the plain boto3 credential chain (env, shared files, IAM role; AWS_ENDPOINT_URL honoured).

Errors are translated into UserErrors that name the URI and the fix; nothing here knows about test servers.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig

from .errors import UserError

_S3_RE = re.compile(r"s3://([^/]+)/?(.*)")


def parse_uri(uri: str) -> tuple[str, str]:
    m = _S3_RE.fullmatch(uri)
    if not m:
        raise UserError(f"'{uri}' is not an s3:// URI", hint="write it as s3://bucket/key")
    return m.group(1), m.group(2)


_CLIENT_LOCK = threading.Lock()


def client(max_pool: int = 32, max_attempts: int = 8) -> Any:
    """A shared client: boto3 clients are thread-safe, and one connection pool serves all download threads.

    Creation is serialised: it loads botocore's service model (~0.3 s of CPU), and threads racing on an
    empty cache would each build their own. `max_attempts` bounds botocore's own retries; the artifacts
    downloader passes a small value and retries itself (longer, logged, resuming mid-stream), so a Jenkins
    log shows why a pull is waiting."""
    with _CLIENT_LOCK:
        return _client(max_pool, max_attempts)


@lru_cache(maxsize=8)
def _client(max_pool: int, max_attempts: int) -> Any:
    cfg = BotoConfig(
        retries={"max_attempts": max_attempts, "mode": "adaptive"},
        max_pool_connections=max_pool,
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("s3", config=cfg)


client.cache_clear = _client.cache_clear  # type: ignore[attr-defined]


def explain(exc: Exception, uri: str, what: str = "object") -> UserError:
    """Map a boto3/botocore exception to an actionable message."""
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
