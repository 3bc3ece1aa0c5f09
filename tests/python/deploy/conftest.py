"""Deploy fixtures: a service repo with ml-ci.yaml, a kubeconfig holding secrets, and the scripted kubectl."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import run_mlci

HERE = Path(__file__).resolve().parent
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "sekrit-token-7f3a9c1e5b"
KEY_DATA = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tc2VjcmV0a2V5ZGF0YQ=="

CONFIG = """\
service: digits
tests:
  acceptance:
    command: python3 -m pytest tests/acceptance -q
    serve: {command: python3 -m digits_service.server, port: 8080, health: /healthz}
deploy:
  rollout_timeout: 45
  environments:
    staging: {branch: develop, namespace: ml-staging, context: staging-ctx, replicas: 2,
              env: {LOG_LEVEL: info}}
    production:
      branch: main
      namespace: ml-prod
      replicas: 3
      resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: "1", memory: 256Mi}}
      hpa: {min: 3, max: 10, cpu: 75}
      pdb: {min_available: 2}
      node_selector: {pool: inference, "nvidia.com/gpu.present": "true"}
      tolerations: [{key: dedicated, value: ml, effect: NoSchedule}, {operator: Exists, effect: NoExecute, seconds: 60}]
    broken: {branch: main, namespace: ml-broken, context: no-such-ctx}
"""


def accuracy_record(digest: str, verdict: str = "PASS", suite: str = "smoke", service: str = "digits") -> dict[str, Any]:
    return {"schema": "mlci.accuracy/1", "service": service, "suite": suite, "verdict": verdict,
            "exit_code": 0 if verdict == "PASS" else 1, "git": {"commit": COMMIT, "branch": "main"},
            "image": {"name": "mlci/digits", "digest": digest}, "model": {"files": {"models/digits.npz": "sha256:" + "1" * 64}},
            "started": "2026-11-22T18:00:00Z", "gates": [], "metrics": {"accuracy": 0.95}}


@dataclass
class Repo:
    root: Path
    out: Path

    @property
    def config(self) -> Path:
        return self.root / "ml-ci.yaml"

    def write_config(self, text: str) -> None:
        self.config.write_text(textwrap.dedent(text))

    def write_build(self, digest: str = DIGEST, image_id: str = "sha256:" + "ee" * 32) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "build.json").write_text(json.dumps({
            "schema": "mlci.build/1", "service": "digits",
            "image": {"name": "registry.example.com/ml/digits", "tags": [], "id": image_id, "digest": digest},
            "git": {"commit": COMMIT, "branch": "main"},
            "models": {"lock": "models.lock", "files": {"models/digits.npz": "sha256:" + "1" * 64}}}))

    def write_accuracy(self, record: dict[str, Any]) -> Path:
        path = self.out / "accuracy" / record["suite"] / "accuracy.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        return path

    def deploy_record(self) -> dict[str, Any]:
        return json.loads((self.out / "deploy.json").read_text())


@pytest.fixture()
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "svc", tmp_path / "svc" / ".mlci")
    r.root.mkdir()
    r.write_config(CONFIG)
    return r


@dataclass
class FakeKubectl:
    state: Path
    env: dict[str, str]
    kubeconfig: Path

    def script(self, *rules: dict[str, Any]) -> None:
        (self.state / "scenario.json").write_text(json.dumps({"rules": list(rules)}))

    def calls(self) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls()]


@pytest.fixture()
def kube(tmp_path: Path) -> FakeKubectl:
    """The scripted kubectl first on PATH and a kubeconfig with a token and a client key (must never be printed)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "kubectl"
    exe.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(HERE / 'fake_kubectl.py')!r}, run_name='__main__')\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    state = tmp_path / "kubectl-state"
    state.mkdir()
    kubeconfig = tmp_path / "secret-kube" / "config-7c1d"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod-ctx",
        "clusters": [{"name": "c1", "cluster": {"server": "https://10.0.0.1:6443"}}],
        "contexts": [{"name": "staging-ctx", "context": {"cluster": "c1", "user": "ci"}},
                     {"name": "prod-ctx", "context": {"cluster": "c1", "user": "ci"}}],
        "users": [{"name": "ci", "user": {"token": TOKEN, "client-key-data": KEY_DATA}}],
    }))
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_KUBECTL_DIR": str(state),
           "KUBECONFIG": str(kubeconfig), "MLCI_OUT": "", "GIT_COMMIT": "", "BRANCH_NAME": "main"}
    return FakeKubectl(state, env, kubeconfig)


def deploy(repo: Repo, kube: FakeKubectl, *args: str):
    return run_mlci("deploy", "-c", str(repo.config), "--out", str(repo.out), *args, cwd=repo.root, env=kube.env,
                    timeout=120)


def deploy_in_process(repo: Repo, kube: FakeKubectl, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                      *args: str) -> tuple[int, str, str]:
    """The same CLI entry point in this process: for the many quick user-error cases (no interpreter start-up)."""
    from mlci.cli import main

    for key, value in kube.env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(["deploy", "-c", str(repo.config), "--out", str(repo.out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
