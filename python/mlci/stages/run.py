"""One command in the built image, with an output directory bound back: the shared core of every stage.

The container writes into a private staging directory under <out>; results are moved into their final place
afterwards (a rename, so Jenkins never archives a half-written report), and the staging directory is removed on
every exit path (one a SIGKILL leaves is removed by the next run, see containers.Cleanup.staging_dir). When the
command wrote no JUnit file (not pytest, or it crashed before writing) a one-case report is synthesised, so the
Jenkins stage still shows why it failed. Secret files go into the container before it starts (`files`, a tar),
never through a directory on the host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import docker

from .. import gitinfo
from ..fsutil import write_text_atomic
from ..paths import junit_path
from .containers import Cleanup, host_user, stream_logs, tail_logs, wait
from .docker_run import UMASK_ENV, umask_text

OUT_IN_CONTAINER = "/mlci-out"


@dataclass
class CommandResult:
    exit_code: int | None  # None: timed out
    logs: str
    duration_s: float
    staging: Path
    release: Callable[[], None] = field(default=lambda: None, repr=False)  # removes the staging directory


def git_env(root: Path) -> dict[str, str]:
    """The image has no .git: commit and branch go in by the env vars gitinfo already honours (as in Jenkins)."""
    env = {}
    commit, branch = gitinfo.commit(root), gitinfo.branch(root)
    if commit:
        env["GIT_COMMIT"] = commit
    if branch:
        env["BRANCH_NAME"] = branch
    return env


def run_command(docker_client: docker.DockerClient, tracker: Cleanup, *, image: str, command: str, stage: str,
                out: Path, env: dict[str, str], timeout_s: float, name: str,
                volumes: dict[str, dict[str, str]] | None = None, network: str | None = None,
                network_mode: str | None = None, log_prefix: str = "", files: bytes | None = None) -> CommandResult:
    """Run `sh -c COMMAND` in `image`, stream its output, wait (kill at the timeout). `files` is a tar archive
    extracted at / in the container before it starts (secret files)."""
    staging = tracker.staging_dir(out, stage)
    try:
        os.chmod(staging, 0o777)  # the container may run as another uid (rootless engines)
        kwargs: dict[str, Any] = {}
        if network:
            kwargs["network"] = network
        if network_mode:
            kwargs["network_mode"] = network_mode
        container = docker_client.containers.create(
            image, ["/bin/sh", "-c", command], name=name, user=host_user(), working_dir=None,
            environment={"HOME": "/tmp", "MLCI_OUT": OUT_IN_CONTAINER, UMASK_ENV: umask_text(), **env},
            volumes={str(staging): {"bind": OUT_IN_CONTAINER, "mode": "rw"}, **(volumes or {})},
            labels=tracker.labels(stage, timeout_s), **kwargs)
        tracker.containers.append(container)
        if files is not None:
            container.put_archive("/", files)
        t0 = time.monotonic()
        container.start()
        pump = stream_logs(container, log_prefix)
        code = wait(container, timeout_s)
        pump.join(timeout=5)
        logs = tail_logs(container, 80)
    except BaseException:
        tracker.remove_staging(staging)
        raise
    return CommandResult(code, logs, time.monotonic() - t0, staging, lambda: tracker.remove_staging(staging))


def junit_env(name: str = "junit.xml") -> dict[str, str]:
    """$MLCI_JUNIT for any runner; PYTEST_ADDOPTS so a plain `pytest ...` command writes it without flags."""
    path = f"{OUT_IN_CONTAINER}/{name}"
    return {"MLCI_JUNIT": path, "PYTEST_ADDOPTS": f"--junitxml={path} -p no:cacheprovider"}


def collect_junit(result: CommandResult, out: Path, stage: str, command: str, timeout_s: float) -> Path:
    """Move the command's JUnit file to the stage's place under `out`, or write a one-case report that says
    what happened; the staging directory is removed either way."""
    target = junit_path(out, stage)
    try:
        produced = result.staging / "junit.xml"
        target.parent.mkdir(parents=True, exist_ok=True)
        if produced.is_file() and produced.stat().st_size > 0 and result.exit_code is not None:
            os.replace(produced, target)
        else:
            write_text_atomic(target, synth_junit(stage, command, result.exit_code, result.logs, result.duration_s,
                                                  timeout_s))
    finally:
        remove_staging(result)
    return target


def synth_junit(stage: str, command: str, exit_code: int | None, logs: str, duration_s: float,
                timeout_s: float) -> str:
    """A JUnit report with one test case for a command that wrote none."""
    if exit_code == 0:
        body = ""
        failures = 0
    else:
        why = (f"timed out after {timeout_s:.0f}s" if exit_code is None else f"exited with code {exit_code}")
        body = f"<failure message={quoteattr(f'{command} {why}')}>{escape(logs[-20000:])}</failure>"
        failures = 1
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name={quoteattr(stage)} tests="1" '
            f'failures="{failures}" errors="0" time="{duration_s:.3f}"><testcase classname={quoteattr("mlci." + stage)} '
            f'name={quoteattr(command)} time="{duration_s:.3f}">{body}</testcase></testsuite></testsuites>\n')


def remove_staging(result: CommandResult) -> None:
    result.release()
