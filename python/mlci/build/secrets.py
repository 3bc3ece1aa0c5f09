"""AWS credentials and endpoint for code running in a build step or a container, as files, never as args.

`docker build --secret id=...,src=FILE` mounts a file for one RUN step only: it never lands in a layer, and a
secret's content is not part of the cache key, so a new endpoint port or rotated keys do not bust the model
layer (which a build-arg would). The same two files are bind-mounted read-only into stage containers, so the
credentials do not show up in `docker inspect` either. Both follow the standard boto3 chain:
AWS_SHARED_CREDENTIALS_FILE holds the key pair, AWS_CONFIG_FILE the region and `endpoint_url`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

CREDENTIALS_ID = "aws_credentials"
CONFIG_ID = "aws_config"
# Where the files appear: /run/secrets/<id> in a build step; the same paths are used for stage containers.
IN_CONTAINER = {CREDENTIALS_ID: f"/run/secrets/{CREDENTIALS_ID}", CONFIG_ID: f"/run/secrets/{CONFIG_ID}"}


@dataclass(frozen=True)
class AwsFiles:
    credentials: Path
    config: Path

    def build_args(self) -> list[str]:
        return ["--secret", f"id={CREDENTIALS_ID},src={self.credentials}",
                "--secret", f"id={CONFIG_ID},src={self.config}"]

    def container_env(self) -> dict[str, str]:
        return {"AWS_SHARED_CREDENTIALS_FILE": IN_CONTAINER[CREDENTIALS_ID],
                "AWS_CONFIG_FILE": IN_CONTAINER[CONFIG_ID]}

    def container_volumes(self) -> dict[str, dict[str, str]]:
        return {str(self.credentials): {"bind": IN_CONTAINER[CREDENTIALS_ID], "mode": "ro"},
                str(self.config): {"bind": IN_CONTAINER[CONFIG_ID], "mode": "ro"}}


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


@contextlib.contextmanager
def aws_files(shared: Path | None = None) -> Iterator[AwsFiles]:
    """Resolve the caller's boto3 chain into two 0600 temp files; removed on exit, whatever happens.

    `docker build --secret` reads its file client-side, so /tmp is fine for builds. A bind mount is resolved
    by the daemon on the *host*: when mlci itself runs in a container (Jenkins' runtime image) only the
    workspace exists at the same path there, so stages pass `shared` (the output directory) for the files;
    $MLCI_SECRETS_DIR overrides both."""
    session = boto3.session.Session()
    creds = session.get_credentials()
    frozen = creds.get_frozen_credentials() if creds else None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    cred_text, config_text = render(frozen.access_key if frozen else None, frozen.secret_key if frozen else None,
                                    frozen.token if frozen else None, session.region_name, endpoint)
    where = os.environ.get("MLCI_SECRETS_DIR") or shared
    if where is not None:
        Path(where).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mlci-aws-", dir=where))
    try:
        os.chmod(tmp, 0o700)
        files = AwsFiles(tmp / CREDENTIALS_ID, tmp / CONFIG_ID)
        for path, text in ((files.credentials, cred_text), (files.config, config_text)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        yield files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
