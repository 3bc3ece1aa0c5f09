"""`runner: kubernetes`: render a training Job, validate it offline, apply it, follow its logs, wait for it.

Pod layout (why): an init container (mlci runtime image) pulls the pinned inputs from S3 and verifies them; a
second init container (the training image) runs the command; the main container (runtime image) uploads the
outputs to the run-cache prefix in S3, where the agent downloads and verifies them. Init containers run in
order and the upload only starts after training succeeded, so a failed run uploads nothing. The parameters
file travels in a ConfigMap. activeDeadlineSeconds enforces the time limit on the cluster side too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .. import __version__
from ..errors import StageFailed, UserError
from .local import DATA_MOUNT, OUT_MOUNT, PARAMS_MOUNT, TAIL_LINES, container_env
from .settings import TrainSettings

PASS_ENV = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION")  # endpoints/regions, never credentials


@dataclass
class JobResult:
    succeeded: bool
    duration_s: float
    reason: str = ""
    tail: list[str] = field(default_factory=list)


def job_name(service: str, key: str) -> str:
    """DNS-1123 name, unique per run key and attempt time (a Job's pod template is immutable)."""
    base = re.sub(r"[^a-z0-9-]", "-", service.lower())[:30].strip("-")
    return f"{base}-train-{key[:10]}-{int(time.time()) % 100000:05d}"


def input_files(s: TrainSettings) -> dict[str, str]:
    """Input name -> file name under the data directory (the basename of its URI)."""
    return {i.name: f"{i.name}-{Path(i.uri).name}" for i in s.inputs}


def render(s: TrainSettings, *, name: str, image: str, runtime_image: str, outputs_uri: str,
           env_source: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The manifests (ConfigMap for params, if any, then the Job): pure data, validated before apply."""
    env_source = os.environ if env_source is None else env_source
    labels = {"app.kubernetes.io/name": s.service, "app.kubernetes.io/component": "training",
              "app.kubernetes.io/managed-by": "mlci"}
    files = input_files(s)
    pass_env = [{"name": k, "value": env_source[k]} for k in PASS_ENV if env_source.get(k)]
    train_env = [{"name": k, "value": v} for k, v in sorted(container_env(files, s.params.name if s.params else None).items())]
    mounts = [{"name": "out", "mountPath": OUT_MOUNT}, {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True}]
    volumes: list[dict[str, Any]] = [{"name": "out", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]
    manifests: list[dict[str, Any]] = []
    if s.params:
        manifests.append({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"{name}-params", "namespace": s.namespace, "labels": labels},
                          "data": {s.params.name: s.params.read_text(encoding="utf-8")}})
        volumes.append({"name": "params", "configMap": {"name": f"{name}-params"}})
        mounts.append({"name": "params", "mountPath": PARAMS_MOUNT, "readOnly": True})
    specs = [f"{files[i.name]}={i.uri}@{i.sha256}" for i in s.inputs]
    resources = {k: {rk: str(rv) for rk, rv in v.items()} for k, v in s.resources.items() if v}
    init = [
        {"name": "fetch-inputs", "image": runtime_image, "imagePullPolicy": s.image_pull_policy,
         "command": ["mlci", "train-io", "get", "--dest", DATA_MOUNT, *specs], "env": pass_env,
         "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}]},
        {"name": "train", "image": image, "imagePullPolicy": s.image_pull_policy,
         "command": ["sh", "-c", s.command], "env": train_env, "volumeMounts": mounts,
         **({"resources": resources} if resources else {})},
    ]
    upload = {"name": "upload-outputs", "image": runtime_image, "imagePullPolicy": s.image_pull_policy,
              "command": ["mlci", "train-io", "put", "--src", OUT_MOUNT, "--to", outputs_uri, *s.outputs],
              "env": pass_env, "volumeMounts": [{"name": "out", "mountPath": OUT_MOUNT, "readOnly": True}]}
    pod: dict[str, Any] = {"restartPolicy": "Never", "initContainers": init, "containers": [upload], "volumes": volumes}
    if s.service_account:
        pod["serviceAccountName"] = s.service_account
    if s.image_pull_secret:
        pod["imagePullSecrets"] = [{"name": s.image_pull_secret}]
    manifests.append({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": s.namespace, "labels": labels},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": max(1, int(s.timeout_s)),
                 "ttlSecondsAfterFinished": 86400,
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    })
    return manifests


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


def default_runtime_image(configured: str | None) -> str:
    return configured or f"mlci:{__version__}"


class Kubectl:
    """kubectl with the configured context and namespace; `$MLCI_KUBECTL` or `kubectl` on PATH."""

    def __init__(self, namespace: str, context: str | None = None):
        self.base = [os.environ.get("MLCI_KUBECTL", "kubectl")]
        if context:
            self.base += ["--context", context]
        self.base += ["--namespace", namespace]

    def run(self, *args: str, check: bool = True, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise UserError("kubectl not found", hint="install kubectl on the agent or set MLCI_KUBECTL") from None
        if check and proc.returncode != 0:
            raise StageFailed(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip()[-500:]}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.base, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def job_state(status: dict[str, Any]) -> str | None:
    """'complete' / 'failed' from a Job's status conditions, else None (still running)."""
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"].lower()
    return None


def orchestrate(kubectl: Kubectl, manifest_file: Path, name: str, *, timeout_s: float, poll_s: float = 2.0,
                stream: TextIO | None = None) -> JobResult:
    """Apply, follow the training container's logs, wait for Complete/Failed (or the deadline)."""
    stream = stream or sys.stderr
    started = time.monotonic()
    applied = kubectl.run("apply", "-f", str(manifest_file))
    for line in applied.stdout.splitlines():
        stream.write(f"[train] {line}\n")
    deadline = started + timeout_s + 60  # the cluster enforces activeDeadlineSeconds; this is a backstop
    followed = False
    tail: list[str] = []
    state: str | None = None
    reason = ""
    while time.monotonic() < deadline:
        if not followed:
            followed, lines = _follow_logs(kubectl, name, stream)
            tail = (tail + lines)[-TAIL_LINES:]
        got = kubectl.run("get", f"job/{name}", "-o", "json")
        status = json.loads(got.stdout).get("status", {})
        state = job_state(status)
        if state:
            reason = next((c.get("message") or c.get("reason", "") for c in status.get("conditions", [])
                           if c.get("type") == "Failed"), "")
            break
        time.sleep(poll_s)
    duration = time.monotonic() - started
    if state is None:
        kubectl.run("delete", f"job/{name}", "--ignore-not-found", check=False)
        return JobResult(False, duration, f"no result within {timeout_s:g}s: Job deleted", tail)
    if state == "failed":
        last = kubectl.run("logs", f"job/{name}", "-c", "train", f"--tail={TAIL_LINES}", check=False)
        if last.returncode == 0 and last.stdout.strip():
            tail = last.stdout.splitlines()[-TAIL_LINES:]
        return JobResult(False, duration, reason or "Job failed", tail)
    return JobResult(True, duration, "", tail)


def _follow_logs(kubectl: Kubectl, name: str, stream: TextIO) -> tuple[bool, list[str]]:
    """Stream `kubectl logs -f` of the training container; (False, []) while the container has not started."""
    proc = kubectl.popen("logs", "-f", f"job/{name}", "-c", "train", "--timestamps", "--pod-running-timeout=60s")
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        text = line.rstrip("\n")
        lines.append(text)
        stream.write(f"[train] {text}\n")
        stream.flush()
    code = proc.wait()
    if code != 0 and any(w in " ".join(lines) for w in ("waiting to start", "PodInitializing", "ContainerCreating")):
        return False, []
    return True, lines[-TAIL_LINES:]
