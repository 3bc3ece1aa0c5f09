"""`mlci build` against the real Docker engine (BuildKit) and S3 server, plus the pure pieces."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from mlci.build import record
from mlci.build.image import cached_steps
from mlci.build.secrets import render

from ..conftest import DOCKER, run_mlci
from .service import copy_service, git, image_group, service  # noqa: F401 (fixture)

GROUP = image_group(__name__)

PULL_STEP = "mlci models pull"


def inspect(ref: str) -> dict:
    return json.loads(subprocess.run([DOCKER, "image", "inspect", ref], capture_output=True, text=True,
                                     check=True).stdout)[0]


def step(steps: dict[str, bool], needle: str) -> bool:
    matches = [cached for title, cached in steps.items() if needle in title]
    assert matches, f"no build step containing {needle!r} in {list(steps)}"
    return matches[0]


# --- pure -----------------------------------------------------------------------------------------------------
def test_tags_from_commit_and_branch() -> None:
    assert record.image_tags("r/s", "a" * 40, "feature/X y", False) == ["r/s:aaaaaaaaaaaa", "r/s:feature-X-y"]
    assert record.image_tags("r/s", "b" * 40, None, True) == ["r/s:bbbbbbbbbbbb-dirty"]
    # an uncommitted tree never takes the branch tag: it is not what the branch holds
    assert record.image_tags("r/s", "b" * 40, "main", True) == ["r/s:bbbbbbbbbbbb-dirty"]
    assert record.image_tags("r/s", None, None, False) == ["r/s:latest"]
    assert record.sanitize_tag("-.x") == "x"


def test_version_compatibility_is_major_minor() -> None:
    assert record.compatible("0.1.0", "0.1.7")
    assert not record.compatible("0.1.0", "0.2.0")
    assert not record.compatible("1.1.0", "0.1.0")
    assert not record.compatible("0.1.0", "garbage")


def test_build_record_schema() -> None:
    rec = record.build_record(service="s", name="r/s", tags=["r/s:x"], image_id="sha256:1", repo_digest=None,
                              commit="c", branch="main", lock="models.lock", lock_sha256="ab",
                              model_files={"models/m": "sha256:cd"}, version="0.1.0",
                              started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), duration_s=1.23456,
                              run_id="run-1")
    assert rec["schema"] == "mlci.build/1" and rec["run"] == {"id": "run-1"}
    assert rec["git"] == {"commit": "c", "branch": "main", "dirty": False}
    assert rec["image"] == {"name": "r/s", "tags": ["r/s:x"], "id": "sha256:1", "digest": "sha256:1"}
    assert rec["created"] == "2026-01-02T03:04:05Z" and rec["duration_s"] == 1.235


def test_secret_files_carry_endpoint_and_keys() -> None:
    creds, config = render("AK", "SK", None, "eu-west-1", "http://127.0.0.1:9")
    assert "aws_access_key_id = AK" in creds and "aws_secret_access_key = SK" in creds
    assert "endpoint_url = http://127.0.0.1:9" in config and "region = eu-west-1" in config


def test_cached_steps_parser() -> None:
    log = ("#5 [stage-2 4/8] COPY a ./\n#5 CACHED\n\n#6 [stage-2 5/8] RUN mlci models pull\n#6 DONE 2.0s\n"
           "#7 [internal] load build context\n#7 DONE 0.0s\n")
    assert cached_steps(log) == {"[stage-2 4/8] COPY a ./": True, "[stage-2 5/8] RUN mlci models pull": False,
                                 "[internal] load build context": False}


# --- real engine ------------------------------------------------------------------------------------------------
@GROUP
def test_build_writes_record_tags_and_provenance_labels(service) -> None:  # noqa: F811
    rec = service.record
    commit = git(service.root, "rev-parse", "HEAD").strip()
    lock = (service.root / "models.lock").read_text()
    assert rec["schema"] == "mlci.build/1" and rec["service"] == service.name
    assert rec["git"] == {"commit": commit, "branch": "main", "dirty": False} and rec["run"]["id"]
    assert rec["image"]["tags"] == [f"{service.image_name}:{commit[:12]}", f"{service.image_name}:main"]
    assert rec["image"]["digest"] == rec["image"]["id"]  # not pushed: the image id
    assert list(rec["models"]["files"]) == ["models/digits.npz"]
    assert rec["models"]["files"]["models/digits.npz"].split(":")[1] in lock
    img = inspect(rec["image"]["tags"][0])
    assert img["Id"] == rec["image"]["id"]
    labels = img["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == commit and labels["org.mlci.git.dirty"] == "false"
    assert labels["org.mlci.version"] == rec["mlci_version"]
    assert labels["org.mlci.models.lock_sha256"] == rec["models"]["lock_sha256"]
    assert json.loads(labels["org.mlci.models.files"]) == rec["models"]["files"]


@GROUP
def test_models_are_in_the_image_and_credentials_are_not(service) -> None:  # noqa: F811
    ref = service.record["image"]["id"]
    img = inspect(ref)
    env = " ".join(img["Config"]["Env"])
    assert "AWS_" not in env and "testing" not in env
    script = ("import hashlib, pathlib, sys; "
              "print(hashlib.sha256(pathlib.Path('/app/models/digits.npz').read_bytes()).hexdigest()); "
              "sys.exit(1 if pathlib.Path('/run/secrets/aws_credentials').exists() else 0)")
    out = subprocess.run([DOCKER, "run", "--rm", "--network", "none", ref, "python3", "-c", script],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "sha256:" + out.stdout.strip() == service.record["models"]["files"]["models/digits.npz"]
    history = subprocess.run([DOCKER, "history", "--no-trunc", ref], capture_output=True, text=True).stdout
    assert "aws_secret_access_key" not in history and "AWS_SECRET_ACCESS_KEY=" not in history


@GROUP
def test_code_only_change_reuses_the_model_layer(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    server = root / "digits_service" / "server.py"
    server.write_text(server.read_text() + "\n# a code-only change\n")
    out = tmp_path / "out"
    proc = run_mlci("build", "--out", str(out), cwd=root, env=service.env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = cached_steps((out / "logs" / "build.log").read_text())
    assert step(steps, PULL_STEP) is True, "the models-pull step was re-run for a code-only change"
    assert step(steps, "--no-deps /wheels/*.whl") is True  # mlci's dependencies
    assert step(steps, "--no-deps /wheels/mlci-*.whl") is True  # mlci
    assert step(steps, "-r requirements.txt") is True
    assert step(steps, "COPY . .") is False, "the code layer must be rebuilt"
    rec = json.loads((out / "build.json").read_text())
    assert rec["image"]["id"] != service.record["image"]["id"]
    # the uncommitted change: only the -dirty commit tag (the branch tag keeps naming the committed image)
    assert len(rec["image"]["tags"]) == 1 and rec["image"]["tags"][0].endswith("-dirty") and rec["git"]["dirty"]
    assert inspect(rec["image"]["id"])["Config"]["Labels"]["org.mlci.git.dirty"] == "true"
    assert inspect(f"{service.image_name}:main")["Id"] != rec["image"]["id"]
    assert rec["run"]["id"] != service.record["run"]["id"]


@GROUP
def test_config_change_outside_artifacts_keeps_the_model_layer(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    cfg = root / "ml-ci.yaml"
    cfg.write_text(cfg.read_text().replace("min: 0.90, margin: 0.02, alpha", "min: 0.89, margin: 0.02, alpha"))
    out = tmp_path / "out"
    proc = run_mlci("build", "--out", str(out), cwd=root, env=service.env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = cached_steps((out / "logs" / "build.log").read_text())
    assert step(steps, "mlci build --model-spec") is False  # the extraction re-ran on the new config ...
    assert step(steps, "COPY --from=model-spec") is True  # ... produced the same bytes ...
    assert step(steps, PULL_STEP) is True  # ... so the models were not pulled again


def test_model_spec_keeps_only_what_pull_reads() -> None:
    from mlci.build.modelspec import model_spec
    from mlci.config.loader import load_config

    from ..conftest import EXAMPLE

    spec = model_spec(load_config(EXAMPLE / "ml-ci.yaml").data)
    assert spec == {"version": 1, "service": "digits",
                    "artifacts": {"remote": "s3://mlci-demo/digits", "jobs": 8,
                                  "models": {"lock": "models.lock", "dest": "models/"}}}


@GROUP
def test_model_change_reruns_the_pull_step(service, tmp_path: Path) -> None:  # noqa: F811
    """The converse, so the cache assertion above cannot pass vacuously."""
    root = copy_service(service.root, tmp_path / "digits")
    model = root / "models" / "digits.npz"
    model.write_bytes(model.read_bytes() + b"\0")  # a different (still-zip) model file
    assert run_mlci("models", "add", "models/digits.npz", cwd=root, env=service.env).returncode == 0
    out = tmp_path / "out"
    proc = run_mlci("build", "--out", str(out), cwd=root, env=service.env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = cached_steps((out / "logs" / "build.log").read_text())
    assert step(steps, PULL_STEP) is False
    assert "downloaded" in (out / "logs" / "build.log").read_text()


@GROUP
def test_missing_lock_file_is_a_user_error(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    (root / "models.lock").unlink()
    proc = run_mlci("build", "--out", str(tmp_path / "out"), cwd=root, env=service.env)
    assert proc.returncode == 2
    assert "models.lock does not exist" in proc.stderr and "mlci models add" in proc.stderr
    assert "Traceback" not in proc.stderr


@GROUP
def test_failing_build_step_fails_with_the_step_output(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    (root / "requirements.txt").write_text("numpy>=1.24,<3\n")
    dockerfile = root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("COPY . .", "COPY . .\nRUN echo broken-step && exit 7"))
    proc = run_mlci("build", "--out", str(tmp_path / "out"), cwd=root, env=service.env, timeout=600)
    assert proc.returncode == 1
    assert "docker build failed" in proc.stderr and "broken-step" in proc.stderr
    assert not (tmp_path / "out" / "build.json").exists()
