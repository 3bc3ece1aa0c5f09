"""Run the training command in a container on the local Docker engine (docker-py).

Why a container and not a subprocess: the training image pins the toolchain (and, on a GPU agent, CUDA) apart
from the agent. The outputs directory is bind-mounted read-write, data and params read-only; the process runs
as the invoking user so the files it writes are ours. Logs are streamed with the engine's timestamps; the time
limit kills the container; a failure ends with the last log lines and a non-zero exit.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import docker.errors
import requests.exceptions

import docker

from ..errors import StageFailed, UserError
from ..stages.containers import cleanup_always
from ..units import parse_quantity

TAIL_LINES = 40
OUT_MOUNT = "/mlci/out"
DATA_MOUNT = "/mlci/data"
PARAMS_MOUNT = "/mlci/params"


@dataclass
class RunResult:
    exit_code: int
    duration_s: float
    timed_out: bool
    tail: list[str] = field(default_factory=list)


def container_env(inputs: dict[str, str], params_name: str | None) -> dict[str, str]:
    """The contract between mlci and a training command: where outputs, data and params are."""
    env = {"MLCI_TRAIN_OUT": OUT_MOUNT, "MLCI_TRAIN_DATA": DATA_MOUNT, "PYTHONUNBUFFERED": "1"}
    for name, fname in inputs.items():
        env["MLCI_DATA_" + "".join(c if c.isalnum() else "_" for c in name).upper()] = f"{DATA_MOUNT}/{fname}"
    if params_name:
        env["MLCI_TRAIN_PARAMS"] = f"{PARAMS_MOUNT}/{params_name}"
    return env


def _limits(resources: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes-style limits -> docker-py run() kwargs (cpu, memory, GPUs)."""
    kw: dict[str, Any] = {}
    lim = resources.get("limits") or {}
    if "cpu" in lim:
        kw["nano_cpus"] = int(parse_quantity(lim["cpu"], "train.resources.limits.cpu") * 1e9)
    if "memory" in lim:
        kw["mem_limit"] = int(parse_quantity(lim["memory"], "train.resources.limits.memory"))
    if lim.get("nvidia.com/gpu"):
        kw["device_requests"] = [docker.types.DeviceRequest(count=int(lim["nvidia.com/gpu"]), capabilities=[["gpu"]])]
    return kw


def run_container(image: str, command: str, *, out_dir: Path, data_dir: Path | None, inputs: dict[str, str],
                  params: Path | None, timeout_s: float, resources: dict[str, Any], name_prefix: str = "mlci-train",
                  stream: TextIO | None = None, leases: Path | None = None) -> RunResult:
    """Run `command` (through sh -c) in `image`; stream its logs to `stream`; never leave the container behind."""
    stream = stream or sys.stderr
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise UserError(f"cannot reach the Docker engine: {exc}", hint="start Docker or set DOCKER_HOST") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    volumes = {str(out_dir.resolve()): {"bind": OUT_MOUNT, "mode": "rw"}}
    if data_dir is not None:
        volumes[str(data_dir.resolve())] = {"bind": DATA_MOUNT, "mode": "ro"}
    if params is not None:
        volumes[str(params.resolve().parent)] = {"bind": PARAMS_MOUNT, "mode": "ro"}
    name = f"{name_prefix}-{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        labels: dict[str, str] = {}
        if leases is not None:  # labelled and leased like the stages' containers: a killed run's is reaped
            labels = stack.enter_context(cleanup_always(client, leases=leases)).labels("train", timeout_s + 60)
        try:
            container = client.containers.run(
                image, ["sh", "-c", command], name=name, detach=True, volumes=volumes, labels=labels,
                environment=container_env(inputs, params.name if params else None),
                user=f"{os.getuid()}:{os.getgid()}", **_limits(resources))
        except docker.errors.ImageNotFound:
            raise UserError(f"training image {image} not found", hint="build it first (mlci train builds it)") from None
        except docker.errors.APIError as exc:
            raise StageFailed(f"cannot start the training container: {exc.explanation or exc}") from None
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        follower = threading.Thread(target=_follow, args=(container, tail, stream), daemon=True)
        follower.start()
        timed_out = False
        try:
            try:
                status = container.wait(timeout=timeout_s)
                code = int(status.get("StatusCode", 1))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                code = 124
                stream.write(f"[train] time limit of {timeout_s:g}s reached: stopping {name}\n")
                container.kill()
                container.wait(timeout=30)
            follower.join(timeout=10)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
    return RunResult(code, time.monotonic() - started, timed_out, list(tail))


def _follow(container: Any, tail: collections.deque[str], stream: TextIO) -> None:
    """Relay log lines as they come, each with the engine's timestamp; keep the last lines for a failure."""
    buf = b""
    try:
        for chunk in container.logs(stream=True, follow=True, timestamps=True):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                _emit(line, tail, stream)
        if buf:
            _emit(buf, tail, stream)
    except (docker.errors.APIError, requests.exceptions.RequestException):
        pass


def _emit(raw: bytes, tail: collections.deque[str], stream: TextIO) -> None:
    text = raw.decode("utf-8", "replace").rstrip("\r")
    tail.append(text)
    stream.write(f"[train] {text}\n")
    stream.flush()
