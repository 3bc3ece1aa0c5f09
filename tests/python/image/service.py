"""The example services, set up once per test process for the build/stage/pipeline tests.

`prepared_example(name)` (`prepared_service()` for digits) trains the example's model, uploads model + data sets to
a fresh bucket on the real S3 server,
writes models.lock through `mlci models add`, makes a git working copy and builds the image with the real
Docker engine -- once per process (memoised), because every later build reuses its layers. Each module that
needs it is an xdist group of its own (`image_group`), so a module builds it once on its worker.

The mlci wheelhouse is pinned (MLCI_WHEELHOUSE) for the session: other engineers edit mlci sources while the
suite runs, and a changed mlci wheel legitimately invalidates every layer -- not what a cache test measures.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import DOCKER, EXAMPLE, run_mlci
from ..dockerimages import remove_images
from ..s3server import remove_bucket


def image_group(module: str) -> pytest.MarkDecorator:
    """The xdist group of one test module that uses the prepared example images: a module's tests run on one
    worker, which prepares (trains, uploads, builds) each example once; modules spread over the workers, each
    preparing its own copy (unique bucket, image and service names, so the copies never meet) from the engine's
    shared build cache. One group for all of them made its worker the suite's critical path."""
    return pytest.mark.xdist_group(f"mlci-image:{module.rsplit('.', 1)[-1]}")
RUN_LABEL = "org.mlci.run"


@dataclass(frozen=True)
class Service:
    root: Path  # git working copy of examples/digits wired to the test bucket
    out: Path  # output dir of the session build
    bucket: str
    image_name: str
    env: dict[str, str]  # extra env for mlci subprocesses (pinned wheelhouse)
    name: str  # the service name in ml-ci.yaml: unique per session, so container names are too

    @property
    def prefix(self) -> str:
        """Every container/network the stages create for this service starts with this."""
        return f"mlci-{self.name}-"

    @property
    def record(self) -> dict:
        return json.loads((self.out / "build.json").read_text())


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    for k in ("GIT_COMMIT", "BRANCH_NAME", "GIT_BRANCH"):
        env.pop(k, None)
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout


def copy_service(src: Path, dst: Path) -> Path:
    """A copy of a prepared service (with .git, lock and config) for a test that changes it."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".mlci", "__pycache__"), symlinks=True)
    return dst


def docker_leftovers(label_value: str | None = None) -> list[str]:
    """Containers and networks carrying mlci's run label (all of them, or one run's)."""
    flt = f"label={RUN_LABEL}" + (f"={label_value}" if label_value else "")
    found = []
    for kind in (["ps", "-a"], ["network", "ls"]):
        out = subprocess.run([DOCKER, *kind, "--filter", flt, "--format", "{{.Names}}" if kind[0] == "ps" else
                              "{{.Name}}"], capture_output=True, text=True, check=True).stdout
        found += out.split()
    return found


def names_with_prefix(prefix: str) -> list[str]:
    found = []
    for kind, fmt in ((["ps", "-a"], "{{.Names}}"), (["network", "ls"], "{{.Name}}")):
        out = subprocess.run([DOCKER, *kind, "--format", fmt], capture_output=True, text=True, check=True).stdout
        found += [n for n in out.split() if n.startswith(prefix)]
    return found


@dataclass(frozen=True)
class Example:
    """How to prepare one example service: its training script writes the model and the data sets to --out."""

    name: str
    model: str  # the model file training/train.py writes (placed under models/)
    datasets: tuple[str, ...]  # data sets training/train.py writes as <name>.npz (uploaded to S3)


EXAMPLES = {
    "digits": Example("digits", "digits.npz", ("digits-test",)),
    # scikit-learn model (joblib), predict returns probabilities; trains in a second, data sets deterministic
    "churn": Example("churn", "churn.joblib", ("churn-test", "churn-train")),
    # Node.js service (Debian's nodejs in the image), a JSON model file, tested through its HTTP API
    "node-risk": Example("node-risk", "risk.json", ("risk-test",)),
}


def pin_dataset(cfg: str, bucket_prefix: str, name: str, sha: str) -> str:
    """Point ml-ci.yaml's `sha256:` of dataset `name` at `sha` (the line after its uri)."""
    pattern = rf"(uri: s3://{re.escape(bucket_prefix)}/data/{re.escape(name)}\.npz\n\s+sha256: )[0-9a-f]{{64}}"
    new, count = re.subn(pattern, rf"\g<1>{sha}", cfg)
    assert count == 1, f"dataset {name} not found in ml-ci.yaml"
    return new


@functools.cache
def pinned_wheelhouse() -> Path:
    """mlci and its dependencies as wheels, made once per test process (MLCI_WHEELHOUSE for image builds)."""
    from mlci.build.wheelhouse import mlci_wheelhouses
    from mlci.progress import Progress

    pinned = Path(tempfile.mkdtemp(prefix="mlci-wheels-"))
    atexit.register(shutil.rmtree, pinned, True)
    for wh in mlci_wheelhouses(Progress(0, "test"), need_files=True):
        for wheel in wh.directory.glob("*.whl"):
            shutil.copy2(wheel, pinned / wheel.name)
    return pinned


@functools.cache
def plain_mlci() -> Path:
    """`pip install mlci` into a fresh virtualenv (offline, from the pinned wheelhouse): mlci and its own
    dependencies only -- none of a service's (scikit-learn, joblib). Returns its python."""
    venv = Path(tempfile.mkdtemp(prefix="mlci-plain-"))
    atexit.register(shutil.rmtree, venv, True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                    str(pinned_wheelhouse()), "mlci"], check=True, capture_output=True, timeout=600)
    return python


@functools.cache
def prepared_example(example: str = "digits") -> Service:
    import boto3

    spec = EXAMPLES[example]
    assert os.environ.get("AWS_ENDPOINT_URL"), "run through `make test` (tests/infra/up)"
    base = Path(tempfile.mkdtemp(prefix="mlci-t5-"))
    tag = uuid.uuid4().hex[:8]
    bucket = f"t5-{tag}"
    image_name = f"mlci-t5-{tag}/{example}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)

    def cleanup() -> None:
        remove_bucket(s3, bucket)
        remove_images(DOCKER, f"mlci-t5-{tag}/*")
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(cleanup)

    root = base / example
    shutil.copytree(EXAMPLE.parent / example, root,
                    ignore=shutil.ignore_patterns("models", ".mlci", "__pycache__", "models.lock"))
    trained = base / "trained"
    subprocess.run([sys.executable, str(root / "training" / "train.py"), "--out", str(trained)], check=True,
                   capture_output=True)
    cfg = (root / "ml-ci.yaml").read_text()
    for dataset in spec.datasets:
        data = trained / f"{dataset}.npz"
        s3.upload_file(str(data), bucket, f"{example}/data/{dataset}.npz")
        cfg = pin_dataset(cfg, f"mlci-demo/{example}", dataset, hashlib.sha256(data.read_bytes()).hexdigest())
    name = f"{example}-t5{tag}"
    cfg = cfg.replace("mlci-demo", bucket).replace(f"name: mlci/{example}", f"name: {image_name}")
    cfg = cfg.replace(f"service: {example}\n", f"service: {name}\n")
    (root / "ml-ci.yaml").write_text(cfg)
    (root / "models").mkdir()
    shutil.copy2(trained / spec.model, root / "models" / spec.model)

    env = {"MLCI_WHEELHOUSE": str(pinned_wheelhouse())}
    for k in ("GIT_COMMIT", "BRANCH_NAME", "GIT_BRANCH", "MLCI_OUT", "MLCI_CONFIG", "MLCI_IMAGE"):
        env[k] = ""  # the service's own git and config, not the environment's
    run_mlci("models", "add", f"models/{spec.model}", cwd=root, env=env, check=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", example)
    out = base / "out"
    run_mlci("build", "--out", str(out), cwd=root, env=env, check=True, timeout=900)
    return Service(root, out, bucket, image_name, env, name)


def prepared_service() -> Service:
    """The digits example (labels), prepared once per test process."""
    return prepared_example("digits")


@pytest.fixture()
def service() -> Service:
    return prepared_service()


@pytest.fixture()
def churn() -> Service:
    """The churn example (scikit-learn, probabilities), prepared once per test process."""
    return prepared_example("churn")
