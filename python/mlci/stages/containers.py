"""Containers for the in-image stages (docker-py): run, stream logs, time out, and always clean up.

Every container and network a stage creates carries the label `org.mlci.run=<run id>`; `Cleanup` removes them
in a `finally`, and SIGTERM (Jenkins' abort) is turned into KeyboardInterrupt so that `finally` runs then too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import docker.errors
from docker.models.containers import Container

import docker

from ..errors import UserError

RUN_LABEL = "org.mlci.run"
STAGE_LABEL = "org.mlci.stage"


def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=120)
        c.ping()
        return c
    except docker.errors.DockerException as exc:
        raise UserError(f"cannot reach the Docker engine: {exc}",
                        hint="start dockerd / mount /var/run/docker.sock, or set DOCKER_HOST") from None


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


def host_user() -> str:
    """Run stage containers as the caller so files written into the output directory belong to them."""
    return f"{os.getuid()}:{os.getgid()}"


@dataclass
class Cleanup:
    """Tracks what a stage created; `close()` removes it all, tolerating what is already gone."""

    docker_client: docker.DockerClient
    containers: list[Container] = field(default_factory=list)
    networks: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for c in reversed(self.containers):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                c.remove(force=True, v=True)
        for n in reversed(self.networks):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                n.remove()
        self.containers.clear()
        self.networks.clear()


@contextlib.contextmanager
def cleanup_always(docker_client: docker.DockerClient) -> Iterator[Cleanup]:
    """Yield a Cleanup; remove everything on exit, also on Ctrl-C and on SIGTERM."""
    tracker = Cleanup(docker_client)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield tracker
    finally:
        # a second Ctrl-C during cleanup must not leave containers behind: ignore SIGINT while removing
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if previous is not None else None
        try:
            tracker.close()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
                signal.signal(signal.SIGINT, old_int)


def stream_logs(container: Container, prefix: str, out: TextIO | None = None) -> threading.Thread:
    """Copy the container's output to `out` (default stdout) line by line while it runs."""
    out = out or sys.stdout

    def pump() -> None:
        with contextlib.suppress(Exception):
            buf = b""
            for chunk in container.logs(stream=True, follow=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    out.write(f"{prefix}{line.decode(errors='replace')}\n")
                    out.flush()
            if buf:
                out.write(f"{prefix}{buf.decode(errors='replace')}\n")
                out.flush()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


@dataclass
class Finished:
    exit_code: int | None  # None: killed at the timeout
    logs: str


def wait(container: Container, timeout_s: float) -> int | None:
    """The exit code, or None when it ran past the timeout (then it is killed)."""
    try:
        result = container.wait(timeout=timeout_s)
    except Exception as exc:  # requests' ReadTimeout / ConnectionError: docker-py does not wrap them
        if "timed out" not in str(exc).lower() and "timeout" not in type(exc).__name__.lower():
            raise
        with contextlib.suppress(docker.errors.APIError):
            container.kill()
        return None
    return int(result.get("StatusCode", 1))


def tail_logs(container: Container, lines: int = 60) -> str:
    with contextlib.suppress(docker.errors.APIError, docker.errors.NotFound):
        return container.logs(tail=lines).decode(errors="replace")
    return ""


def state_summary(container: Container) -> str:
    """`running`, `exited (1)`, `OOMKilled` ... plus the last health probe output when there is one."""
    with contextlib.suppress(docker.errors.APIError, docker.errors.NotFound):
        container.reload()
        st = container.attrs.get("State", {})
        text = st.get("Status", "?")
        if st.get("Status") == "exited":
            text += f" (exit code {st.get('ExitCode')})"
        if st.get("OOMKilled"):
            text += ", OOMKilled"
        if st.get("Error"):
            text += f", error: {st['Error']}"
        health = st.get("Health") or {}
        if health:
            text += f", health {health.get('Status')}"
            log = health.get("Log") or []
            if log:
                last = log[-1]
                text += f" (last probe exit {last.get('ExitCode')}: {(last.get('Output') or '').strip()[:300]})"
        return text
    return "gone"


def bind(host: Path, target: str, mode: str = "rw") -> dict[str, dict[str, str]]:
    return {str(host): {"bind": target, "mode": mode}}
