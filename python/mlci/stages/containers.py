"""Containers for the in-image stages (docker-py): run, stream logs, time out, and always clean up.

Every container and network a stage creates carries labels: `org.mlci.run=<run id>`, `org.mlci.lease=<path>`
(an owner lock the run holds while it lives, in the agent's cache directory) and `org.mlci.expires=<epoch s>`
(its timeout plus a grace period). `Cleanup` removes them in a `finally`, and SIGTERM (Jenkins' abort) is turned
into KeyboardInterrupt so that `finally` runs then too. What a SIGKILL leaves behind is removed by the next run
on the engine before it starts anything: containers and networks whose lease is abandoned, or that are past
their expiry (a lease on a disk that run cannot see), and staging directories whose owner lock is abandoned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import docker.errors
from docker.models.containers import Container

import docker

from ..errors import UserError
from ..fsutil import OwnerLock, reap_abandoned

RUN_LABEL = "org.mlci.run"
STAGE_LABEL = "org.mlci.stage"
LEASE_LABEL = "org.mlci.lease"
EXPIRES_LABEL = "org.mlci.expires"
GRACE_S = 600  # after a container's timeout: mlci kills it then, so one still there later is debris
STAGING_PREFIX = ".stage-"
STAGING_OWNER = ".owner.lock"


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
    run_id: str = field(default_factory=lambda: new_run_id())
    lease: OwnerLock | None = None
    containers: list[Container] = field(default_factory=list)
    networks: list[Any] = field(default_factory=list)
    staging: dict[Path, OwnerLock] = field(default_factory=dict)

    def labels(self, stage: str, timeout_s: float) -> dict[str, str]:
        """Labels for a container or network of this run that lives at most `timeout_s` seconds."""
        labels = {RUN_LABEL: self.run_id, STAGE_LABEL: stage,
                  EXPIRES_LABEL: str(int(time.time() + timeout_s + GRACE_S))}
        if self.lease is not None:
            labels[LEASE_LABEL] = str(self.lease.path)
        return labels

    def staging_dir(self, out: Path, stage: str) -> Path:
        """A private directory under `out` for one container's output, owned (locked) by this process; the
        staging directories of killed runs in `out` are removed first."""
        out.mkdir(parents=True, exist_ok=True)
        reap_abandoned(out, STAGING_PREFIX, STAGING_OWNER)
        reap_abandoned(out, ".mlci-aws-", STAGING_OWNER)  # secret files older versions kept in the output dir
        d = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{stage}-", dir=out))
        self.staging[d] = OwnerLock.take(d / STAGING_OWNER)
        return d

    def remove_staging(self, d: Path) -> None:
        lock = self.staging.pop(d, None)
        if lock is not None:
            lock.release()
        shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        for c in reversed(self.containers):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                c.remove(force=True, v=True)
        for n in reversed(self.networks):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                n.remove()
        self.containers.clear()
        self.networks.clear()


def leases_dir(cache: Path) -> Path:
    """Where runs keep their owner locks: the agent's artifact cache, which every mlci on the agent shares (and
    which the Jenkins runner mounts at the same path)."""
    return cache / "leases"


def reap_stale(docker_client: docker.DockerClient, leases: Path, log: Any = None) -> list[str]:
    """Remove containers, then networks, that an earlier run left: its lease is abandoned (the run died), or
    it is past its expiry. Containers of live runs, and any without mlci's lease label, are never touched."""
    now = time.time()
    removed: list[str] = []

    def stale(labels: dict[str, str]) -> bool:
        lease = labels.get(LEASE_LABEL)
        if lease is None:
            return False
        try:
            expired = now > float(labels.get(EXPIRES_LABEL, "inf"))
        except ValueError:
            expired = False
        return expired or OwnerLock.abandoned(lease)

    with contextlib.suppress(docker.errors.APIError):
        for c in docker_client.containers.list(all=True, filters={"label": LEASE_LABEL}):
            if stale(c.labels) and _remove(lambda c=c: c.remove(force=True, v=True)):
                removed.append(c.name)
        for n in docker_client.networks.list(filters={"label": LEASE_LABEL}):
            if stale(n.attrs.get("Labels") or {}) and _remove(n.remove):
                removed.append(n.name)
    with contextlib.suppress(OSError):
        for lock in leases.glob("*.lock"):
            if OwnerLock.abandoned(lock):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
    if removed and log:
        log(f"removed {len(removed)} container(s)/network(s) a killed run left behind: {', '.join(removed)}")
    return removed


def _remove(remove: Any, attempts: int = 4, pause_s: float = 0.5) -> bool:
    """Remove one container or network of a dead run; True when it is gone. The engine refuses a removal while it
    is still finishing what the killed client asked for (a container being started, a network with a container
    still attached): try again a few times before leaving it to the next run."""
    for attempt in range(attempts):
        try:
            remove()
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError:
            if attempt + 1 < attempts:
                time.sleep(pause_s * (attempt + 1))
    return False


@contextlib.contextmanager
def cleanup_always(docker_client: docker.DockerClient, *, leases: Path, run_id: str | None = None,
                   log: Any = None) -> Iterator[Cleanup]:
    """Yield a Cleanup holding this run's lease, after reaping what killed runs left; remove everything the
    run created on exit, also on Ctrl-C and on SIGTERM, and its staging directories when it fails."""
    leases.mkdir(parents=True, exist_ok=True)
    tracker = Cleanup(docker_client, run_id or new_run_id())
    tracker.lease = OwnerLock.take(leases / f"{tracker.run_id}.lock")
    reap_stale(docker_client, leases, log)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield tracker
    except BaseException:
        for d in list(tracker.staging):
            tracker.remove_staging(d)
        raise
    finally:
        # a second Ctrl-C during cleanup must not leave containers behind: ignore SIGINT while removing
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if previous is not None else None
        try:
            tracker.close()
            tracker.lease.release()
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
