"""AWS credentials and endpoint for code running in a build step or a container, as files, never as args.

`docker build --secret id=...,src=FILE` mounts a file for one RUN step only: it never lands in a layer, and a
secret's content is not part of the cache key, so a new endpoint port or rotated keys do not bust the model
layer (which a build-arg would). Those files live in a private (0700) directory under $MLCI_SECRETS_DIR or the
system temp dir, never in the output directory (Jenkins archives it); a lock held while they exist lets the next build remove
the directory a SIGKILLed one left. Stage containers get the same two files copied into their filesystem
(`archive()`, extracted before the container starts): no host path is involved, so this works the same when
mlci itself runs in a container, and nothing shows up in `docker inspect`. Both follow the standard boto3
chain: AWS_SHARED_CREDENTIALS_FILE holds the key pair, AWS_CONFIG_FILE the region and `endpoint_url`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import OwnerLock, reap_abandoned

CREDENTIALS_ID = "aws_credentials"
CONFIG_ID = "aws_config"
# Where the files appear: /run/secrets/<id> in a build step; the same paths are used for stage containers.
IN_CONTAINER = {CREDENTIALS_ID: f"/run/secrets/{CREDENTIALS_ID}", CONFIG_ID: f"/run/secrets/{CONFIG_ID}"}
DIR_PREFIX = "mlci-aws-"
OWNER = ".owner.lock"


@dataclass(frozen=True)
class AwsSecrets:
    """The two files' text."""

    credentials: str
    config: str

    def container_env(self) -> dict[str, str]:
        return {"AWS_SHARED_CREDENTIALS_FILE": IN_CONTAINER[CREDENTIALS_ID],
                "AWS_CONFIG_FILE": IN_CONTAINER[CONFIG_ID]}

    def archive(self, uid: int | None = None, gid: int | None = None) -> bytes:
        """A tar of /run/secrets/<id> (0400, owned by the container's user: by default this process's)."""
        uid = os.getuid() if uid is None else uid
        gid = os.getgid() if gid is None else gid
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, text, mode, kind in (("run/secrets", "", 0o755, tarfile.DIRTYPE),
                                           (IN_CONTAINER[CREDENTIALS_ID][1:], self.credentials, 0o400, tarfile.REGTYPE),
                                           (IN_CONTAINER[CONFIG_ID][1:], self.config, 0o400, tarfile.REGTYPE)):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = kind, mode, int(time.time())
                if kind == tarfile.REGTYPE:
                    info.uid, info.gid, info.size = uid, gid, len(data)
                tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return buf.getvalue()


@dataclass(frozen=True)
class AwsFiles:
    credentials: Path
    config: Path

    def build_args(self) -> list[str]:
        return ["--secret", f"id={CREDENTIALS_ID},src={self.credentials}",
                "--secret", f"id={CONFIG_ID},src={self.config}"]


def render(access_key: str | None, secret_key: str | None, token: str | None, region: str | None,
           endpoint: str | None) -> tuple[str, str]:
    """(credentials file, config file) text. Pure: the caller decides where the values come from."""
    creds = "[default]\n"
    if access_key and secret_key:
        creds += f"aws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n"
        if token:
            creds += f"aws_session_token = {token}\n"
    config = "[default]\n"
    if region:
        config += f"region = {region}\n"
    if endpoint:
        config += f"endpoint_url = {endpoint}\n"
    return creds, config


def aws_secrets() -> AwsSecrets:
    """The caller's boto3 chain resolved into the two files' text."""
    import boto3

    session = boto3.session.Session()
    creds = session.get_credentials()
    frozen = creds.get_frozen_credentials() if creds else None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return AwsSecrets(*render(frozen.access_key if frozen else None, frozen.secret_key if frozen else None,
                              frozen.token if frozen else None, session.region_name, endpoint))


@contextlib.contextmanager
def aws_files(secrets: AwsSecrets | None = None) -> Iterator[AwsFiles]:
    """The two files (0600) in a private 0700 temp dir, removed on exit whatever happens; `docker build
    --secret` reads them client-side. The dir is made under $MLCI_SECRETS_DIR (Jenkins' runner sets it under
    $WORKSPACE@tmp: never archived, and seen again by the next build in that workspace), else the system temp
    dir; never under the output directory. Directories a killed build left there are removed first."""
    secrets = secrets or aws_secrets()
    parent = Path(os.environ.get("MLCI_SECRETS_DIR") or tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    reap_abandoned(parent, DIR_PREFIX, OWNER)
    tmp = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=parent))  # mkdtemp: 0700
    owner = OwnerLock.take(tmp / OWNER)
    try:
        files = AwsFiles(tmp / CREDENTIALS_ID, tmp / CONFIG_ID)
        for path, text in ((files.credentials, secrets.credentials), (files.config, secrets.config)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        yield files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        owner.release()
