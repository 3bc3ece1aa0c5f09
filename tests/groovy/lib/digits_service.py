"""The digits example as a service repository for the executing Jenkins tests (tests/groovy/test/PipelineRunTest).

`setup ROOT TAG` does what a team and its administrator would have done before the first build, the way
examples/demo does it: trains the model, uploads the test set to a fresh bucket on the S3 server
($AWS_ENDPOINT_URL) and the model with `mlci models add` (models.lock), points ml-ci.yaml at the bucket with
unique image and service names and Jenkins credential ids, commits it on main, develop and feature/x and
publishes a bare origin. It also makes the agents' warm cache hold the requirements wheelhouse (the runtime
container reaches no package index here). Prints one JSON object (origin URL, commit, bucket, names).

`cleanup BUCKET IMAGE_PREFIX` removes the bucket and the service images.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "digits"
sys.path.insert(0, str(ROOT))

from tests.python.dockerimages import remove_images  # noqa: E402
from tests.python.s3server import remove_bucket  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "svc team", "GIT_AUTHOR_EMAIL": "team@example.invalid",
           "GIT_COMMITTER_NAME": "svc team", "GIT_COMMITTER_EMAIL": "team@example.invalid"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MLCI_OUT", "MLCI_CONFIG", "BRANCH_NAME"))}
    return {**env, **GIT_ENV, **extra}


def run(cmd: list[str], cwd: Path, **extra: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(**extra), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip()


def setup(root: Path, tag: str) -> dict[str, str]:
    bucket, image_prefix, service = f"mlci-gt-{tag}", f"mlci-groovytest-{tag}", f"digits-gt{tag}"
    src = root / "digits"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("models", "models.lock", ".mlci", "__pycache__"))
    trained = root / "trained"
    run([sys.executable, str(src / "training" / "train.py"), "--out", str(trained)], src)

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    data = trained / "digits-test.npz"
    s3.upload_file(str(data), bucket, "digits/data/digits-test.npz")
    cfg = yaml.safe_load((src / "ml-ci.yaml").read_text())
    cfg["service"] = service
    cfg["image"]["name"] = f"{image_prefix}/digits"
    cfg["artifacts"]["remote"] = f"s3://{bucket}/digits"
    cfg["artifacts"]["credentials"] = "s3-artifacts"
    for name, dataset in cfg["artifacts"]["data"].items():
        dataset["uri"] = f"s3://{bucket}/digits/data/{name}.npz"
    cfg["artifacts"]["data"]["digits-test"]["sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    cfg["report"]["history"] = f"s3://{bucket}/history"
    cfg["deploy"]["environments"]["staging"]["kubeconfig_credentials"] = "kube-staging"
    cfg["deploy"]["environments"]["production"]["kubeconfig_credentials"] = "kube-production"
    cfg["deploy"]["environments"]["production"]["approvers"] = "release-leads"
    (src / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (src / "models").mkdir()
    shutil.copy2(trained / "digits.npz", src / "models" / "digits.npz")
    aws = {"AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
           "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")}
    run([sys.executable, "-m", "mlci", "models", "add", "models/digits.npz"], src, MLCI_CACHE=str(root / "host-cache"),
        **aws)

    (src / ".gitignore").write_text(".mlci/\nmodels/\n__pycache__/\n")
    run(["git", "init", "-q", "-b", "main"], src)
    run(["git", "add", "-A"], src)
    run(["git", "commit", "-q", "-m", "digits service"], src)
    for branch in ("develop", "feature/x"):
        run(["git", "branch", branch], src)
    origin = root / "origin" / "digits.git"
    run(["git", "clone", "-q", "--bare", str(src), str(origin)], root)

    # The agents' warm cache: the requirements wheelhouse image (pip in a container reaches no index here).
    from mlci.build.wheelhouse import ensure_image, requirements_wheelhouse
    from mlci.progress import Progress

    os.environ["MLCI_CACHE"] = str(root / "host-cache")
    ensure_image(requirements_wheelhouse(src / "requirements.txt", Progress(0, "warm")), Progress(0, "warm"))
    commit = run(["git", "rev-parse", "HEAD"], src)
    return {"origin": origin.as_uri(), "commit": commit, "bucket": bucket, "image_prefix": image_prefix,
            "service": service, "image": cfg["image"]["name"]}


def cleanup(bucket: str, image_prefix: str) -> None:
    remove_bucket(boto3.client("s3"), bucket)
    remove_images(os.environ.get("MLCI_DOCKER", "/usr/bin/docker"), f"{image_prefix}/*")


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        print(json.dumps(setup(Path(sys.argv[2]), re.sub(r"[^a-z0-9]", "", sys.argv[3].lower()))))
    else:
        cleanup(sys.argv[2], sys.argv[3])
