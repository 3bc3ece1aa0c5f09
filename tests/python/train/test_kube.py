"""runner: kubernetes — the Job rendered and validated offline, and its kubectl orchestration against a scripted
kubectl on PATH that runs the pod for real (S3 transfers on the host, the training container on Docker)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from mlci.config.loader import load_config
from mlci.deploy.render import Manifest
from mlci.deploy.validate import validate
from mlci.errors import StageFailed, UserError
from mlci.progress import Progress
from mlci.train import cache, kube, settings
from mlci.train.produce import run_kubernetes

pytestmark = pytest.mark.xdist_group("train")
FAKE = Path(__file__).with_name("fake_kubectl.py")
RAW = b"pinned training bytes\n"

COMMAND = ("python3 -c \"import os; d=open(os.environ['MLCI_DATA_RAW']).read(); "
           "p=open(os.environ['MLCI_TRAIN_PARAMS']).read(); print('training on', len(d), 'bytes'); "
           "open(os.environ['MLCI_TRAIN_OUT']+'/model.bin','w').write(d.upper()+p)\"")


@pytest.fixture()
def kube_repo(tmp_path: Path, s3_bucket: str, base_image: str) -> Path:
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="data/raw.txt", Body=RAW)
    repo = tmp_path / "svc"
    (repo / "training").mkdir(parents=True)
    (repo / "training" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (repo / "params.yaml").write_text("steps: 3\n")
    cfg = {
        "service": "kubesvc",
        "artifacts": {"remote": f"s3://{s3_bucket}/models",
                      "data": {"raw": {"uri": f"s3://{s3_bucket}/data/raw.txt", "sha256": hashlib.sha256(RAW).hexdigest()}}},
        "deploy": {"kubernetes_version": "1.30"},
        "train": {"command": COMMAND, "inputs": ["raw"], "params": "params.yaml", "outputs": ["model.bin"],
                  "runner": "kubernetes", "namespace": "ml-train", "image_pull_policy": "Never", "timeout": 2,
                  "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"nvidia.com/gpu": 1}},
                  "node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    }
    (repo / "ml-ci.yaml").write_text(yaml.safe_dump(cfg))
    return repo


@pytest.fixture()
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "kube-state"
    state.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "kubectl"
    script.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{FAKE}' \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBE_STATE", str(state))
    monkeypatch.delenv("MLCI_KUBECTL", raising=False)
    return state


def _render(s: settings.TrainSettings) -> list[dict]:
    return kube.render(s, name="kubesvc-train-abc", image="reg.example/kubesvc-train@sha256:" + "a" * 64,
                       runtime_image="mlci:0.1.0", outputs_uri="s3://b/train/runs/k/outputs",
                       env_source={"AWS_ENDPOINT_URL": "http://s3.local", "AWS_SECRET_ACCESS_KEY": "nope"})


def test_job_renders_and_validates_offline(kube_repo: Path) -> None:
    s = settings.resolve(load_config(kube_repo / "ml-ci.yaml"))
    manifests = _render(s)
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Job"]
    validate([Manifest("train-job", m) for m in manifests], namespace="ml-train", version="1.30")
    job = manifests[1]
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 120
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-inputs", "train"]
    assert [c["name"] for c in pod["containers"]] == ["upload-outputs"]
    fetch, train = pod["initContainers"]
    assert fetch["command"][-1].endswith(f"@{s.inputs[0].sha256}")  # inputs pinned by digest
    assert train["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"nvidia.com/gpu": "1"}}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}  # onto the GPU pool
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["containers"][0]["command"][-1] == "model.bin"
    env_names = {e["name"] for c in pod["initContainers"] + pod["containers"] for e in c.get("env", [])}
    assert "AWS_ENDPOINT_URL" in env_names and "AWS_SECRET_ACCESS_KEY" not in env_names  # no secrets in the Job
    assert manifests[0]["data"] == {"params.yaml": "steps: 3\n"}


def test_invalid_job_is_refused_before_kubectl(kube_repo: Path, fake_kubectl: Path, tmp_path: Path) -> None:
    cfg_file = kube_repo / "ml-ci.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    cfg["train"]["resources"]["limits"]["memory"] = "lots"
    cfg_file.write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match="train.resources.limits.memory: 'lots' is not valid; expected a quantity"):
        load_config(cfg_file)  # refused by `config check` already, before anything could reach kubectl
    assert not (fake_kubectl / "calls.jsonl").exists()


def test_kubectl_orchestration_brings_outputs_back_through_s3(kube_repo: Path, fake_kubectl: Path, s3_bucket: str,
                                                              base_image: str, tmp_path: Path) -> None:
    config = load_config(kube_repo / "ml-ci.yaml")
    s = settings.resolve(config)
    key = "f" * 64
    out = tmp_path / "outputs"
    out.mkdir()
    log = io.StringIO()
    files = run_kubernetes(config, s, image_ref=base_image, key=key, work=tmp_path / "work", outputs_dir=out,
                           progress=Progress(1, "train"), stream=log)
    expected = RAW.decode().upper() + "steps: 3\n"
    assert (out / "model.bin").read_text() == expected
    assert files == {"model.bin": hashlib.sha256(expected.encode()).hexdigest()}
    calls = [json.loads(line) for line in (fake_kubectl / "calls.jsonl").read_text().splitlines()]
    assert calls[0] == ["config", "current-context"]  # the context is pinned once, then named in every call
    assert all(c[:4] == ["--context", "fake-ctx", "-n", "ml-train"] for c in calls[1:])
    verbs = [c[4] for c in calls[1:]]
    assert verbs[0] == "apply" and verbs.count("logs") == 2 and "get" in verbs
    assert "training on 22 bytes" in log.getvalue()  # the training container's log, followed with timestamps
    assert "job.batch/" not in log.getvalue() or "created" in log.getvalue()
    obj = boto3.client("s3").get_object(Bucket=s3_bucket, Key=f"models/train/runs/{key}/outputs/model.bin")
    assert obj["Body"].read().decode() == expected
    assert yaml.safe_load_all((tmp_path / "work" / "job.yaml").read_text())


def test_failed_job_shows_last_lines_and_uploads_nothing(kube_repo: Path, fake_kubectl: Path, s3_bucket: str,
                                                         base_image: str, tmp_path: Path) -> None:
    cfg_file = kube_repo / "ml-ci.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    cfg["train"]["command"] = "echo loading; echo 'ValueError: diverged' >&2; exit 3"
    cfg_file.write_text(yaml.safe_dump(cfg))
    config = load_config(cfg_file)
    s = settings.resolve(config)
    key = "e" * 64
    with pytest.raises(StageFailed) as exc:
        run_kubernetes(config, s, image_ref=base_image, key=key, work=tmp_path / "work", outputs_dir=tmp_path / "o",
                       progress=Progress(1, "train"), stream=io.StringIO())
    assert "ValueError: diverged" in str(exc.value) and "failed" in str(exc.value)
    assert cache.lookup(s.cache_uri, key) is None
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix=f"models/train/runs/{key}/")
    assert listed.get("KeyCount", 0) == 0


def test_mlci_train_with_runner_kubernetes_end_to_end(kube_repo: Path, fake_kubectl: Path, s3_bucket: str,
                                                      base_image: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlci train` itself: image built, Job applied (and its pod run), outputs back through S3 into the run
    cache; the repeat is a cache hit that never calls kubectl. No evaluate suite: nothing is published."""
    from tests.python.conftest import run_mlci

    env = {"MLCI_BASE_IMAGE": base_image, "MLCI_CACHE": str(tmp_path / "cache")}
    proc = run_mlci("train", "-c", str(kube_repo / "ml-ci.yaml"), "--out", str(tmp_path / "out"), cwd=kube_repo,
                    env=env)
    assert proc.returncode == 0, proc.stderr
    assert "rendered and validated offline" in proc.stderr and "training on 22 bytes" in proc.stderr
    result = json.loads((tmp_path / "out" / "train.json").read_text())
    assert result["status"] == "not-evaluated" and not result["cache_hit"]
    expected = RAW.decode().upper() + "steps: 3\n"
    assert (tmp_path / "out" / "train" / "outputs" / "model.bin").read_text() == expected
    assert result["outputs"] == {"model.bin": hashlib.sha256(expected.encode()).hexdigest()}
    calls_before = (fake_kubectl / "calls.jsonl").read_text()
    again = run_mlci("train", "-c", str(kube_repo / "ml-ci.yaml"), "--out", str(tmp_path / "out2"), cwd=kube_repo,
                     env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "out2" / "train.json").read_text())["cache_hit"]
    assert (fake_kubectl / "calls.jsonl").read_text() == calls_before  # no second Job
