"""The pieces under `mlci train`: the docker-py runner (timestamps, time limit, last lines on failure), the
run-cache key (what counts as the same run), config mistakes as exit-2 errors, and a failing training command
through the CLI."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import docker
from mlci.config.loader import load_config
from mlci.errors import UserError
from mlci.train import digests, local, settings
from tests.python.conftest import run_mlci

pytestmark = pytest.mark.xdist_group("train")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")


def _repo(tmp_path: Path, train: dict, bucket: str = "mlci-train-unused") -> Path:
    repo = tmp_path / "svc"
    (repo / "training").mkdir(parents=True)
    (repo / "training" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nWORKDIR /workspace\n")
    (repo / "training" / "train.py").write_text("print('hi')\n")
    (repo / "params.yaml").write_text("steps: 3\n")
    cfg = {"service": "unitsvc", "artifacts": {"remote": f"s3://{bucket}/m"},
           "train": {"context": "training", "outputs": ["model.bin"], **train}}
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg))
    return repo


def _containers(prefix: str) -> list[str]:
    return [c.name for c in docker.from_env().containers.list(all=True) if c.name.startswith(prefix)]


def test_runner_streams_timestamped_logs_and_keeps_the_tail(base_image: str, tmp_path: Path) -> None:
    log = io.StringIO()
    r = local.run_container(base_image, "for i in 1 2 3; do echo line $i; done; echo 'boom' >&2; exit 3",
                            out_dir=tmp_path / "out", data_dir=None, inputs={}, params=None, timeout_s=30,
                            resources={"limits": {"cpu": "500m", "memory": "128Mi"}}, name_prefix="mlci-train-ut1",
                            stream=log)
    assert r.exit_code == 3 and not r.timed_out
    # stdout and stderr are separate streams: their interleaving is not defined, their content is
    assert sorted(STAMP.sub("", line) for line in r.tail) == ["boom", "line 1", "line 2", "line 3"]
    assert all(STAMP.match(line) for line in r.tail)
    assert "[train] " in log.getvalue()
    assert _containers("mlci-train-ut1") == []  # removed


def test_runner_enforces_the_time_limit(base_image: str, tmp_path: Path) -> None:
    r = local.run_container(base_image, "echo started; sleep 60", out_dir=tmp_path / "out", data_dir=None,
                            inputs={}, params=None, timeout_s=2, resources={}, name_prefix="mlci-train-ut2",
                            stream=io.StringIO())
    assert r.timed_out and r.exit_code != 0 and r.duration_s < 30
    assert STAMP.sub("", r.tail[0]) == "started"
    assert _containers("mlci-train-ut2") == []


KILLED_RUN = ("import io, sys\nfrom pathlib import Path\nfrom mlci.train import local\n"
              "local.run_container(sys.argv[1], 'sleep 120', out_dir=Path(sys.argv[2]), data_dir=None, inputs={}, "
              "params=None, timeout_s=300, resources={}, name_prefix=sys.argv[3], stream=io.StringIO(), "
              "leases=Path(sys.argv[4]))\n")


def test_a_killed_runs_training_container_is_reaped_by_the_next_run(base_image: str, tmp_path: Path) -> None:
    import signal
    import sys
    import time
    import uuid

    prefix, leases = f"mlci-train-kill-{uuid.uuid4().hex[:6]}", tmp_path / "cache" / "leases"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, base_image, str(tmp_path / "out"), prefix, str(leases)])
    try:
        deadline = time.monotonic() + 60
        while not _containers(prefix) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _containers(prefix), "training container never appeared"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _containers(prefix)  # a SIGKILL runs no cleanup: left behind, labelled
        r = local.run_container(base_image, "true", out_dir=tmp_path / "out2", data_dir=None, inputs={}, params=None,
                                timeout_s=60, resources={}, name_prefix=f"{prefix}-next", stream=io.StringIO(),
                                leases=leases)
        assert r.exit_code == 0 and _containers(prefix) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for name in _containers(prefix):
            subprocess.run(["/usr/bin/docker", "rm", "-f", name], capture_output=True)


def test_outputs_are_written_as_the_invoking_user_through_the_mount(base_image: str, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "params.json").write_text('{"a": 1}')
    r = local.run_container(base_image, 'cat "$MLCI_TRAIN_PARAMS" > "$MLCI_TRAIN_OUT/m.bin"',
                            out_dir=tmp_path / "out", data_dir=None, inputs={}, params=tmp_path / "p" / "params.json",
                            timeout_s=30, resources={}, stream=io.StringIO())
    assert r.exit_code == 0
    assert (tmp_path / "out" / "m.bin").read_text() == '{"a": 1}'


def test_run_key_covers_code_data_params_but_not_what_publishing_writes(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"command": "python3 train.py", "params": "params.yaml"})
    s = settings.resolve(load_config(repo / "ml-ci.yaml"))

    def key() -> str:
        return digests.run_key(digests.code_digest(s), {"d": "sha256:1"}, digests.params_digest(s), s.command, s.outputs)

    first = key()
    (repo / "models.lock").write_text("changed by publishing\n")
    (repo / "training.json").write_text("{}")
    (repo / "training" / "__pycache__").mkdir()
    (repo / "training" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert key() == first
    (repo / "params.yaml").write_text("steps: 4\n")
    assert key() != first
    (repo / "params.yaml").write_text("steps: 3\n")
    assert key() == first
    (repo / "training" / "train.py").write_text("print('changed')\n")
    assert key() != first
    assert digests.run_key("c", {"d": "sha256:1"}, None, "x", ["m"]) != digests.run_key("c", {"d": "sha256:2"}, None, "x", ["m"])


def test_config_mistakes_are_user_errors(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"command": "x", "inputs": ["nope"]})
    with pytest.raises(UserError, match="'nope' is not a dataset under artifacts.data"):
        settings.resolve(load_config(repo / "ml-ci.yaml"))
    cfg = yaml.safe_load((repo / "ml-ci.yaml").read_text())
    cfg["artifacts"]["data"] = {"raw": {"uri": "s3://b/raw.npz"}}
    cfg["train"]["inputs"] = ["raw"]
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match="has no sha256"):
        settings.resolve(load_config(repo / "ml-ci.yaml"))
    cfg["train"] = {"command": "x", "outputs": ["m"], "evaluate": "missing"}
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_mlci("train", "-c", str(repo / "ml-ci.yaml"), cwd=repo)
    assert proc.returncode == 2 and "is not a suite under accuracy.suites" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_failing_training_exits_1_with_the_last_log_lines(tmp_path: Path, s3_bucket: str, base_image: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCI_BASE_IMAGE", base_image)
    monkeypatch.setenv("MLCI_CACHE", str(tmp_path / "cache"))
    repo = _repo(tmp_path, {"command": "echo epoch 1; echo 'RuntimeError: loss is nan' >&2; exit 4"}, s3_bucket)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    proc = run_mlci("train", "-c", str(repo / "ml-ci.yaml"), "--out", str(tmp_path / "out"), cwd=repo)
    assert proc.returncode == 1, proc.stderr
    assert "command exited 4" in proc.stderr and "last log lines" in proc.stderr
    assert "RuntimeError: loss is nan" in proc.stderr.split("last log lines")[1]
    assert "Traceback" not in proc.stderr
    result = json.loads((tmp_path / "out" / "train.json").read_text())
    assert result["status"] == "failed" and "exited 4" in result["reason"] and result["published"] is None


def test_pull_request_shapes_for_each_forge() -> None:
    from mlci.train import pr

    cfg = {"provider": "gitlab", "repo": "grp/sub/proj", "url": "https://gl.example/api/v4"}
    assert pr.target(cfg, {}) is None  # no token: no PR (and the log says so)
    t = pr.target(cfg, {"MLCI_REPORT_TOKEN": "x"})
    url, body = pr.request(t, head="mlci/train/s-model-2", base="main", title="t", body="b")
    assert url == "https://gl.example/api/v4/projects/grp%2Fsub%2Fproj/merge_requests"
    assert body == {"title": "t", "source_branch": "mlci/train/s-model-2", "target_branch": "main", "description": "b"}
    t = pr.target({"provider": "bitbucket", "repo": "ws/slug"}, {"BITBUCKET_TOKEN": "x"})
    url, body = pr.request(t, head="h", base="main", title="t", body="b")
    assert url == "https://api.bitbucket.org/2.0/repositories/ws/slug/pullrequests"
    assert body["source"] == {"branch": {"name": "h"}} and body["destination"] == {"branch": {"name": "main"}}
    with pytest.raises(UserError, match="report.post.repo"):
        pr.target({"provider": "github"}, {"MLCI_REPORT_TOKEN": "x"})


def test_change_gate_without_a_current_model_is_refused_before_training(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"command": "echo never", "evaluate": "change"})
    cfg = yaml.safe_load((repo / "ml-ci.yaml").read_text())
    cfg["artifacts"]["data"] = {"t": {"uri": "t.npz"}}
    cfg["accuracy"] = {"predict": "m:predict", "suites": {"change": {"dataset": "t", "gates": [
        {"metric": "accuracy", "kind": "change"}]}}}
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_mlci("train", "-c", str(repo / "ml-ci.yaml"), "--out", str(tmp_path / "out"), cwd=repo)
    assert proc.returncode == 2 and "is not in a git repository" in proc.stderr  # publishing needs git
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    proc = run_mlci("train", "-c", str(repo / "ml-ci.yaml"), "--out", str(tmp_path / "out"), cwd=repo)
    assert proc.returncode == 2 and "pins no current model" in proc.stderr, proc.stderr
    assert "building training image" not in proc.stderr
