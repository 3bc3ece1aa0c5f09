"""The README's DVC recipe, run for real: DVC itself (`dvc add` + `dvc push` to the S3 server), `mlci build` on the
real Docker engine from the service template, the model in the image, and the accuracy suite passing in it.

Once with `artifacts.models.lock: models/*.dvc` (a `.dvc` file per model), once with `dvc.lock` (a pipeline
stage whose out is the model); and a model added but never pushed fails the build saying `dvc push`.
DVC comes from its own venv made by tests/infra/up ($MLCI_TEST_DVC).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from mlci.build.modelspec import extract

from ..conftest import DOCKER, run_mlci
from .service import Service, copy_service, git, image_group, service  # noqa: F401 (fixture)

GROUP = image_group(__name__)

# the recipe's: model files out of git, their .dvc files in (DVC skips .dvc files under a plain `models/*`)
GITIGNORE = "/models/**\n!/models/**/\n!/models/**/*.dvc\n.mlci/\n__pycache__/\n"


def dvc(root: Path, *args: str) -> str:
    exe = os.environ.get("MLCI_TEST_DVC")
    assert exe and Path(exe).exists(), "DVC missing: run tests/infra/up (it installs it into .infra/dvc)"
    proc = subprocess.run([exe, *args], cwd=root, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def set_lock(root: Path, lock: str, dest: str = "models/") -> None:
    cfg = root / "ml-ci.yaml"
    text = cfg.read_text()
    assert "models: {lock: models.lock, dest: models/}" in text
    cfg.write_text(text.replace("models: {lock: models.lock, dest: models/}", f"models: {{lock: '{lock}', dest: {dest}}}"))


def dvc_repo(svc: Service, root: Path) -> None:
    """The recipe's first steps on a copy of the service: git-ignore model files (not their .dvc files), init
    DVC with an S3 remote (the endpoint of the test server only in config.local, as credentials would be)."""
    (root / "models.lock").unlink()
    if "models/digits.npz" in git(root, "ls-files", "models").split():
        git(root, "rm", "-q", "--cached", "models/digits.npz")  # the model leaves git for DVC
    (root / ".gitignore").write_text(GITIGNORE)
    dvc(root, "init", "-q")
    dvc(root, "remote", "add", "-d", "storage", f"s3://{svc.bucket}/dvcstore")
    dvc(root, "remote", "modify", "--local", "storage", "endpointurl", os.environ["AWS_ENDPOINT_URL"])


def image_file_sha256(ref: str, path: str) -> str:
    out = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "sha256sum", ref, path], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


def build(svc: Service, root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return run_mlci("build", "--out", str(out), cwd=root, env=svc.env, timeout=900)


@GROUP
def test_dvc_tracked_model_builds_and_passes_accuracy_in_the_image(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    model = root / "models" / "digits.npz"
    want = hashlib.sha256(model.read_bytes()).hexdigest()
    dvc_repo(service, root)
    dvc(root, "add", "models/digits.npz")  # refused when .gitignore hides models/ entirely
    dvc(root, "push")
    assert (root / "models" / "digits.npz.dvc").is_file()
    set_lock(root, "models/*.dvc")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "model tracked by DVC")
    tracked = git(root, "ls-files", "models").split()
    assert "models/digits.npz.dvc" in tracked and "models/digits.npz" not in tracked  # git has the pointer only

    out = tmp_path / "out"
    proc = build(service, root, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((out / "build.json").read_text())
    assert rec["models"]["lock"] == "models/*.dvc" and list(rec["models"]["files"]) == ["models/digits.npz"]
    assert rec["models"]["files"]["models/digits.npz"].startswith("md5:")
    ref = rec["image"]["id"]
    assert image_file_sha256(ref, "/app/models/digits.npz") == want
    listing = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "ls", ref, "-a", "/app/.dvc"],
                             capture_output=True, text=True).stdout.split()
    assert "config.local" not in listing and "cache" not in listing  # .dockerignore keeps them out

    acc_out = tmp_path / "acc"
    acc_out.mkdir()
    shutil.copy(out / "build.json", acc_out / "build.json")
    acc = run_mlci("test", "accuracy", "--suite", "smoke", "-n", "2", "--force", "--out", str(acc_out), cwd=root,
                   env=service.env, timeout=600)
    assert acc.returncode == 0, acc.stdout[-3000:] + acc.stderr[-3000:]
    assert json.loads((acc_out / "accuracy" / "smoke" / "accuracy.json").read_text())["verdict"] == "PASS"

    # a new model added but never pushed: the build fails and says what to do
    model.write_bytes(model.read_bytes() + b"\0")
    dvc(root, "add", "models/digits.npz")
    proc = build(service, root, tmp_path / "out2")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "does not exist in S3" in proc.stderr and "dvc push" in proc.stderr


@GROUP
def test_dvc_lock_of_a_pipeline_stage_builds(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    trained = root / "models" / "digits.npz"
    (root / "training" / "out").mkdir(parents=True)
    shutil.move(trained, root / "training" / "out" / "digits.npz")
    want = hashlib.sha256((root / "training" / "out" / "digits.npz").read_bytes()).hexdigest()
    dvc_repo(service, root)
    dvc(root, "stage", "add", "-n", "model", "-d", "training/out/digits.npz", "-o", "models/digits.npz",
        "mkdir -p models && cp training/out/digits.npz models/digits.npz")
    dvc(root, "repro", "-q")
    dvc(root, "push")
    set_lock(root, "dvc.lock", dest=".")  # dvc.lock's outs are relative to the repository root
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "model from a DVC stage")
    out = tmp_path / "out"
    proc = build(service, root, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((out / "build.json").read_text())
    assert rec["models"]["lock"] == "dvc.lock"
    assert rec["models"]["files"]["models/digits.npz"].startswith("md5:")
    assert image_file_sha256(rec["image"]["id"], "/app/models/digits.npz") == want


def test_model_spec_takes_what_the_lock_names_from_the_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "models").mkdir(parents=True)
    (ctx / ".dvc").mkdir()
    (ctx / ".dvc" / "config").write_text("[core]\n    remote = s\n['remote \"s\"']\n    url = s3://b/x\n")
    (ctx / ".dvc" / "config.local").write_text("['remote \"s\"']\n    access_key_id = AKIAXXXXXXXXXXXXXXXX\n")
    (ctx / "models" / "a.dvc").write_text(f"outs:\n- md5: {'0' * 32}\n  size: 1\n  hash: md5\n  path: a\n")
    (ctx / "ml-ci.yaml").write_text("service: s\n# a comment\nartifacts:\n  models: {lock: 'models/*.dvc'}\n"
                                    "accuracy: {}\n")
    spec = tmp_path / "spec"
    assert sorted(extract(ctx, spec)) == [".dvc/config", "ml-ci.yaml", "models/a.dvc"]
    assert "AKIA" not in (spec / ".dvc" / "config").read_text() and "url = s3://b/x" in (spec / ".dvc" / "config").read_text()
    assert "comment" not in (spec / "ml-ci.yaml").read_text()
    again = tmp_path / "again"
    extract(ctx, again)
    for name in (".dvc/config", "ml-ci.yaml", "models/a.dvc"):  # deterministic: the model layer stays cached
        assert (spec / name).read_bytes() == (again / name).read_bytes()
    (ctx / "models" / "a.dvc").unlink()
    proc = run_mlci("build", "--model-spec", str(tmp_path / "s3"), "--from", str(ctx))
    assert proc.returncode == 2 and "no dependency file matches artifacts.models.lock 'models/*.dvc'" in proc.stderr
    assert "!models/*.dvc" in proc.stderr and "Traceback" not in proc.stderr
