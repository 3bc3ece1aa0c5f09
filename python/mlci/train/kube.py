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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .. import __version__
from ..deploy.kubectl import Kubectl, Redactor, find_kubectl
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
    pod.update(s.scheduling)
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
    """pipeline.runner_image, else the image Jenkins runs mlci in ($MLCI_RUNNER_IMAGE, passed by the runner)."""
    return configured or os.environ.get("MLCI_RUNNER_IMAGE") or f"mlci:{__version__}"


def kubectl_for(namespace: str, context: str | None, stream: TextIO | None = None) -> tuple[Kubectl, list[str]]:
    """The deploy package's kubectl runner (redacted output, timeouts) and the pinned --context/-n arguments:
    the context is resolved once, so a context switch mid-run cannot send the Job to another cluster."""
    kc = Kubectl(find_kubectl(), redact=Redactor.from_kubeconfig(), stream=stream)
    if not context:
        current = kc.run(["config", "current-context"])
        if not current.ok or not current.stdout.strip():
            raise UserError(f"kubectl has no current context: {kc.redact(current.error_text())}",
                            hint="set train.context_name or KUBECONFIG (Jenkins: a kubeconfig file credential)")
        context = current.stdout.strip()
    return kc, ["--context", context, "-n", namespace]


def job_state(status: dict[str, Any]) -> str | None:
    """'complete' / 'failed' from a Job's status conditions, else None (still running)."""
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"].lower()
    return None


def orchestrate(kc: Kubectl, target: list[str], manifest_file: Path, name: str, *, timeout_s: float,
                poll_s: float = 2.0) -> JobResult:
    """Apply, follow the training container's logs, wait for Complete/Failed (or the deadline)."""
    started = time.monotonic()
    applied = kc.run([*target, "apply", "-f", str(manifest_file)], echo=True)
    if not applied.ok:
        raise StageFailed(f"kubectl apply of the training Job failed: {kc.redact(applied.error_text())}")
    deadline = started + timeout_s + 60  # the cluster enforces activeDeadlineSeconds; this is a backstop
    followed = False
    tail: list[str] = []
    state: str | None = None
    reason = ""
    while time.monotonic() < deadline:
        if not followed:
            followed, lines = _follow_logs(kc, target, name, max(1.0, deadline - time.monotonic()))
            tail = (tail + lines)[-TAIL_LINES:]
        got = kc.run([*target, "get", f"job/{name}", "-o", "json"])
        if not got.ok:
            raise StageFailed(f"kubectl get job/{name} failed: {kc.redact(got.error_text())}")
        status = json.loads(got.stdout).get("status", {})
        state = job_state(status)
        if state:
            reason = next((c.get("message") or c.get("reason", "") for c in status.get("conditions", [])
                           if c.get("type") == "Failed"), "")
            break
        time.sleep(poll_s)
    duration = time.monotonic() - started
    if state is None:
        kc.run([*target, "delete", f"job/{name}", "--ignore-not-found"])
        return JobResult(False, duration, f"no result within {timeout_s:g}s: Job deleted", tail)
    if state == "failed":
        last = kc.run([*target, "logs", f"job/{name}", "-c", "train", f"--tail={TAIL_LINES}"])
        if last.ok and last.stdout.strip():
            tail = last.stdout.splitlines()[-TAIL_LINES:]
        return JobResult(False, duration, reason or "Job failed", tail)
    return JobResult(True, duration, "", tail)


def _follow_logs(kc: Kubectl, target: list[str], name: str, timeout_s: float) -> tuple[bool, list[str]]:
    """Stream `kubectl logs -f` of the training container (timestamped, redacted, echoed as they come);
    (False, []) while the container has not started yet (init containers still running)."""
    res = kc.run([*target, "logs", "-f", f"job/{name}", "-c", "train", "--timestamps", "--pod-running-timeout=60s"],
                 echo=True, timeout=timeout_s)
    if not res.ok and any(w in res.error_text() for w in ("waiting to start", "PodInitializing", "ContainerCreating")):
        return False, []
    return True, res.stdout.splitlines()[-TAIL_LINES:]
