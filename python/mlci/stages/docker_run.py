"""The plain `docker run` command line equivalent to a test stage, for running the same test by hand.

`mlci test unit|acceptance|accuracy` prints it (and `--print-docker-run` prints it without running). It is built
from what the stage itself hands its container -- image, command, environment, mounts, network, user -- so that
it cannot drift from the stage: the same image id, the same in-image command, the same sample (the seed is
derived inside the image from what is judged: suite, dataset digest, model files and code, never from a git
checkout), and the record names the image's own commit and branch, read from its labels on the host.

What differs from the stage, on purpose:
- credentials go by reference, never by value: `-e NAME` for the AWS variables set in the caller's environment
  (docker copies their values), or the caller's shared credentials/config files mounted read-only;
- results are written straight into the mounted output directory (the stage stages them and moves them), as the
  caller's uid:gid and with the caller's umask (`MLCI_UMASK` for mlci, `umask` for a shell command), so the files
  belong to the user who ran the line, with the modes any of their programs would give them;
- the directories to mount are created first (`mkdir -p`): a missing bind source would be created by dockerd,
  owned by root.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..fsutil import umask

# AWS settings a container may need, passed by name only (`-e NAME`: docker reads the value from its own caller)
AWS_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE")
CREDENTIALS_IN_CONTAINER = "/run/secrets/aws_credentials"
CONFIG_IN_CONTAINER = "/run/secrets/aws_config"
UMASK_ENV = "MLCI_UMASK"


def umask_text(mask: int | None = None) -> str:
    return f"{umask() if mask is None else mask:04o}"


def entry(attrs: Mapping[str, Any], argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(options before the image, arguments after it) that run `argv` in an image with this ENTRYPOINT: no
    entrypoint -> argv as the command; ENTRYPOINT ["mlci"] (the runtime image) and argv = mlci ... -> the
    arguments only; any other entrypoint -> replaced by argv[0] (`--entrypoint`)."""
    ep = list((attrs.get("Config") or {}).get("Entrypoint") or [])
    if not ep:
        return [], list(argv)
    if len(ep) == 1 and posixpath.basename(ep[0]) == posixpath.basename(argv[0]):
        return [], list(argv[1:])
    return ["--entrypoint", argv[0]], list(argv[1:])


def aws_by_reference(environ: Mapping[str, str] | None = None, home: Path | None = None) -> list[str]:
    """docker options giving the container the caller's AWS settings without writing any secret on the command
    line: `-e NAME` for each variable set here, and the shared credentials / config files (AWS_SHARED_CREDENTIALS_FILE,
    AWS_CONFIG_FILE, else ~/.aws/credentials and ~/.aws/config when they exist) mounted read-only."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or Path.home())
    opts: list[str] = []
    for name in AWS_NAMES:
        if env.get(name):
            opts += ["-e", name]
    for var, default, target in (("AWS_SHARED_CREDENTIALS_FILE", home / ".aws" / "credentials", CREDENTIALS_IN_CONTAINER),
                                 ("AWS_CONFIG_FILE", home / ".aws" / "config", CONFIG_IN_CONTAINER)):
        path = Path(env[var]) if env.get(var) else default
        if path.is_file():
            opts += ["-v", f"{path.resolve()}:{target}:ro", "-e", f"{var}={target}"]
    return opts


def image_git_env(image: Any) -> dict[str, str]:
    """What run.git_env gives a stage's container, from the image's own labels (its revision and branch) instead
    of the host's checkout: the line must describe the image it runs, wherever it is run."""
    env = {}
    if image.commit:
        env["GIT_COMMIT"] = image.commit
    if image.branch:
        env["BRANCH_NAME"] = image.branch
    return env


def run_line(*, image: str, attrs: Mapping[str, Any], argv: Sequence[str], env: Mapping[str, str],
             volumes: Mapping[str, Mapping[str, str]], network: str | None, user: str | None = None,
             extra: Sequence[str] = (), name: str | None = None, detach: bool = False, remove: bool = True) -> list[str]:
    """`docker run ...` as an argument list: options, environment (values given here are not secrets), mounts
    (host path -> {"bind": target, "mode": rw|ro}), then the image and the command (none: the image's own)."""
    pre, post = entry(attrs, argv) if argv else ([], [])
    cmd = ["docker", "run"]
    if remove:
        cmd.append("--rm")
    if detach:
        cmd.append("-d")
    if name:
        cmd += ["--name", name]
    if network:
        cmd += ["--network", network]
    if user:
        cmd += ["--user", user]
    for key, value in env.items():
        cmd += ["-e", f"{key}={value}"]
    cmd += list(extra)
    for host, spec in volumes.items():
        mode = spec.get("mode", "rw")
        cmd += ["-v", f"{host}:{spec['bind']}" + (":ro" if mode == "ro" else "")]
    return [*cmd, *pre, image, *post]


def shell_line(*commands: Sequence[str], mkdirs: Sequence[Path] = ()) -> str:
    """One shell line: `mkdir -p DIRS && CMD && ...`, every word quoted with shlex."""
    parts = ([shlex.join(["mkdir", "-p", *(str(d) for d in mkdirs)])] if mkdirs else [])
    parts += [shlex.join(c) for c in commands]
    return " && ".join(parts)


def with_umask(command: str, mask: int | None = None) -> str:
    """A shell command that runs with the caller's umask (a container's processes start with 0022)."""
    return f"umask {umask_text(mask)} && {command}"
