"""`pull_models` inside a real `docker build` RUN step: BuildKit cache mount as $MLCI_CACHE, AWS config and
credentials as BuildKit secrets named by AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE (endpoint_url in the
config file), and nothing else: no AWS_* variables, no keys in the image or the build log."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from mlci.artifacts import api
from mlci.config import load_config

from ..conftest import ROOT
from .conftest import write_repo

# The offline base image has python3 but no pip: the test ships mlci and its S3 dependencies as a directory.
DEPS = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "yaml", "six")

DOCKERFILE = """\
FROM {base}
COPY site /opt/site
COPY repo /app
WORKDIR /app
ENV PYTHONPATH=/opt/site
RUN --mount=type=cache,target=/cache,id={cache_id} \\
    --mount=type=secret,id=aws_config --mount=type=secret,id=aws_creds \\
    AWS_CONFIG_FILE=/run/secrets/aws_config AWS_SHARED_CREDENTIALS_FILE=/run/secrets/aws_creds MLCI_CACHE=/cache \\
    python3 -c "import json; from mlci.config import load_config; from mlci.artifacts.api import pull_models; \\
print('SUMMARY', json.dumps(pull_models(load_config('ml-ci.yaml'))))"
RUN sha256sum models/m.bin && test ! -e /cache/objects
"""


def _ship(site: Path) -> None:
    for name in DEPS:
        mod = importlib.import_module(name)
        src = Path(mod.__file__)
        if src.name == "__init__.py":
            shutil.copytree(src.parent, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, site / src.name)
    shutil.copytree(ROOT / "python" / "mlci", site / "mlci", ignore=shutil.ignore_patterns("__pycache__"))


def test_pull_inside_docker_build(tmp_path: Path, s3_bucket: str, docker_cli: str, base_image: str):
    ctx = tmp_path / "ctx"
    repo = write_repo(ctx / "repo", s3_bucket, Path("/not-used-in-the-build"))
    data = os.urandom(20_000)
    (tmp_path / "m.bin").write_bytes(data)
    cfg = load_config(repo / "ml-ci.yaml")
    api.add_models(cfg, [str(tmp_path / "m.bin")])
    (ctx / "site").mkdir()
    _ship(ctx / "site")
    tag = f"mlci-artifacts-test:{uuid.uuid4().hex[:10]}"
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base_image, cache_id=f"mlci-art-{uuid.uuid4().hex[:8]}"))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "config").write_text(f"[default]\nregion = us-east-1\nendpoint_url = {os.environ['AWS_ENDPOINT_URL']}\n")
    (secrets / "creds").write_text(f"[default]\naws_access_key_id = {os.environ['AWS_ACCESS_KEY_ID']}\n"
                                   f"aws_secret_access_key = {os.environ['AWS_SECRET_ACCESS_KEY']}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["DOCKER_BUILDKIT"] = "1"
    try:
        proc = subprocess.run(
            [docker_cli, "build", "--network", "host", "--progress", "plain", "--no-cache", "-t", tag,
             "--secret", f"id=aws_config,src={secrets / 'config'}", "--secret", f"id=aws_creds,src={secrets / 'creds'}",
             str(ctx)], env=env, capture_output=True, text=True, timeout=300)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-3000:]
        assert '"downloaded_files": 1' in log and hashlib.sha256(data).hexdigest() in log
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in log.replace("aws_secret_access_key", "")
        out = subprocess.run([docker_cli, "run", "--rm", tag, "cat", "/app/models/m.bin"], capture_output=True,
                             timeout=60)
        assert out.returncode == 0 and out.stdout == data
    finally:
        subprocess.run([docker_cli, "rmi", "-f", tag], capture_output=True)
