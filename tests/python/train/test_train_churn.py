"""`mlci train` on the churn example (scikit-learn, probabilities) with mlci installed the plain way: `pip install
mlci` into a virtualenv that has none of the service's dependencies (no scikit-learn, no joblib). The new model is
judged inside the service image built from the repository, against the model that image holds, even though this
service's `load()` ignores $MLCI_MODELS_DIR: the candidate's files are mounted over the image's models directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

from tests.python.conftest import DOCKER, ROOT
from tests.python.dockerimages import remove_images
from tests.python.image.service import pinned_wheelhouse, plain_mlci

pytestmark = pytest.mark.xdist_group("train")

CHURN = ROOT / "examples" / "churn"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def churn_repo(tmp_path: Path, s3_bucket: str, base_image: str):
    """The churn example as a git repo with an origin; data in S3; a weaker current model (10 boosting rounds)
    in the lock; a load() that never reads $MLCI_MODELS_DIR."""
    data = tmp_path / "data"
    train = CHURN / "training" / "train.py"
    subprocess.run([sys.executable, str(train), "--export", str(data)], check=True, capture_output=True, timeout=300)
    (data / "weak.json").write_text('{"max_iter": 10}')
    subprocess.run([sys.executable, str(train), "--data", str(data / "churn-train.npz"), "--out", str(data),
                    "--params", str(data / "weak.json")], check=True, capture_output=True, timeout=300)
    repo = tmp_path / "churn"
    shutil.copytree(CHURN, repo, ignore=shutil.ignore_patterns("models", "models.lock", ".mlci", "__pycache__"))
    s3 = boto3.client("s3")
    for name in ("churn-train", "churn-test"):
        s3.upload_file(str(data / f"{name}.npz"), s3_bucket, f"churn/data/{name}.npz")
    cfg = yaml.safe_load((repo / "ml-ci.yaml").read_text())
    prefix = f"mlci-churn-{uuid.uuid4().hex[:8]}"
    cfg["image"]["name"] = f"{prefix}/churn"
    cfg["artifacts"]["remote"] = f"s3://{s3_bucket}/churn"
    for name in ("churn-test", "churn-train"):
        cfg["artifacts"]["data"][name]["uri"] = f"s3://{s3_bucket}/churn/data/{name}.npz"
        assert cfg["artifacts"]["data"][name]["sha256"] == _sha(data / f"{name}.npz")
    cfg["report"] = {"history": f"s3://{s3_bucket}/history"}
    cfg["accuracy"]["workers"] = 2
    cfg["train"]["timeout"] = 10
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    model_py = repo / "churn_service" / "model.py"
    text = model_py.read_text()
    old = '    models_dir = os.environ.get("MLCI_MODELS_DIR")\n'
    assert old in text
    model_py.write_text(text.replace(old, "    models_dir = None  # this service ignores $MLCI_MODELS_DIR\n"))
    (repo / "models").mkdir()
    (repo / "models" / "churn.joblib").write_bytes((data / "churn.joblib").read_bytes())
    env = {**os.environ, "MLCI_CACHE": str(tmp_path / "cache"), "MLCI_BASE_IMAGE": base_image,
           "MLCI_WHEELHOUSE": str(pinned_wheelhouse())}
    for k in ("GIT_COMMIT", "BRANCH_NAME", "GIT_BRANCH", "MLCI_OUT", "MLCI_CONFIG", "MLCI_IMAGE", "PYTHONPATH"):
        env.pop(k, None)
    python = plain_mlci()
    add = subprocess.run([str(python), "-m", "mlci", "models", "add", "models/churn.joblib"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert add.returncode == 0, add.stderr
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "churn")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "origin", "main")
    yield {"repo": repo, "env": env, "python": python, "current": _sha(repo / "models" / "churn.joblib")}
    remove_images(DOCKER, f"{prefix}/*")


def _train(ctx: dict, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ctx["python"]), "-m", "mlci", "train", "--out", str(out)], cwd=ctx["repo"],
                          env=ctx["env"], capture_output=True, text=True, timeout=1200)


def test_a_plain_pip_install_trains_and_judges_in_the_service_image(churn_repo: dict, tmp_path: Path) -> None:
    python = churn_repo["python"]
    # the precondition: this mlci cannot import the service's dependencies
    assert subprocess.run([str(python), "-c", "import joblib"], capture_output=True).returncode != 0
    assert subprocess.run([str(python), "-c", "import sklearn"], capture_output=True).returncode != 0

    proc = _train(churn_repo, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "train: published churn-model-1" in proc.stdout
    result = json.loads((tmp_path / "out" / "train.json").read_text())
    assert result["status"] == "published" and result["evaluation"]["verdict"] == "PASS"
    new = result["outputs"]["churn.joblib"]
    assert new != churn_repo["current"]

    evaluation = json.loads((tmp_path / "out" / "train" / "eval" / "accuracy" / "change" / "accuracy.json").read_text())
    shipped = json.loads((tmp_path / "out" / "train" / "eval" / "build.json").read_text())
    assert evaluation["image"]["digest"] == shipped["image"]["digest"]
    # two real artifacts although load() ignores $MLCI_MODELS_DIR: the candidate's files were mounted at the
    # models directory, the baseline predicted in the image with its own
    assert evaluation["model"]["files"] == {"models/churn.joblib": f"sha256:{new}"}
    assert evaluation["baseline"]["model_files"] == {"models/churn.joblib": f"sha256:{churn_repo['current']}"}
    gate = evaluation["gates"][0]
    assert gate["kind"] == "change" and gate["verdict"] == "PASS"
    assert gate["candidate_wins"] > gate["candidate_losses"] > 0  # the stronger model really was the candidate
    assert evaluation["plan"]["output"]["kind"] == "probabilities"
