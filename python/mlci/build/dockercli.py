"""The docker CLI, for builds: docker-py cannot use BuildKit secrets or cache mounts, the CLI can.

Containers (stages) go through docker-py; every image build goes through `run_build`, which streams BuildKit's
plain progress to the log live and keeps a copy, because the caller (and the tests) read it to learn which steps
were CACHED.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import StageFailed, UserError


def docker_bin() -> str:
    """$MLCI_DOCKER, else `docker` on PATH; a clear error when neither exists."""
    chosen = os.environ.get("MLCI_DOCKER") or "docker"
    found = shutil.which(chosen)
    if not found:
        raise UserError(f"docker CLI '{chosen}' not found",
                        hint="install the docker client (20.10+ with BuildKit) or set MLCI_DOCKER to its path")
    return found


def build_env() -> dict[str, str]:
    """BuildKit on: the secret and cache mounts of the service template need it."""
    return {**os.environ, "DOCKER_BUILDKIT": "1"}


@dataclass
class BuildResult:
    returncode: int
    output: str


def run_build(args: list[str], *, stdin: str | None = None, log: TextIO | None = None,
              echo: TextIO | None = None) -> BuildResult:
    """Run `docker build ARGS` with --progress=plain; stream each line to `echo` (default stderr) and `log`."""
    echo = echo if echo is not None else sys.stderr
    cmd = [docker_bin(), "build", "--progress=plain", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=build_env(),
                            errors="replace")
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if echo:
                echo.write(line)
                echo.flush()
            if log:
                log.write(line)
        proc.wait()
    except BaseException:
        proc.terminate()
        proc.wait(timeout=30)
        raise
    return BuildResult(proc.returncode, "".join(lines))


def image_exists(ref: str) -> bool:
    out = subprocess.run([docker_bin(), "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True,
                         text=True, check=False)
    return out.returncode == 0


def remove_image(ref: str) -> bool:
    """`docker image rm REF` (the tag; layers shared with other images stay). False when it failed, e.g. the
    image is gone already or a container still uses it."""
    out = subprocess.run([docker_bin(), "image", "rm", ref], capture_output=True, text=True, check=False)
    return out.returncode == 0


def push(ref: str) -> None:
    out = subprocess.run([docker_bin(), "push", ref], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise StageFailed(f"docker push {ref} failed:\n{out.stderr.strip() or out.stdout.strip()}\n"
                          "  fix: `docker login` to the registry (in Jenkins: image.registry_credentials)")


def last_error_lines(output: str, n: int = 25) -> str:
    """The tail of a failed build, where BuildKit prints the failing step and its error."""
    return "".join(output.splitlines(keepends=True)[-n:])


def ensure_context_dir(path: Path) -> Path:
    if not path.is_dir():
        raise UserError(f"build context {path} is not a directory", where="image.context",
                        hint="set image.context to a directory relative to the repository")
    return path
