"""Couple model, data and code in git: a commit with the updated dependency file and training record on a
branch, an annotated tag `<service>-model-<n>`, a push, and (optionally) a pull request.

Why plumbing (a temporary index + commit-tree) instead of checkout/commit: the agent's working tree and the
branch it built stay untouched, so a Jenkins workspace (often a detached HEAD) is never left on another branch.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import StageFailed, UserError


@dataclass(frozen=True)
class Published:
    branch: str
    tag: str
    commit: str
    pushed: bool


def _git_proc(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("GIT_AUTHOR_NAME", "mlci")
    full_env.setdefault("GIT_AUTHOR_EMAIL", "mlci@localhost")
    full_env.setdefault("GIT_COMMITTER_NAME", full_env["GIT_AUTHOR_NAME"])
    full_env.setdefault("GIT_COMMITTER_EMAIL", full_env["GIT_AUTHOR_EMAIL"])
    return subprocess.run(["git", *args], cwd=repo, env=full_env, capture_output=True, text=True, timeout=120)


def _git(repo: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    proc = _git_proc(repo, *args, env=env)
    if check and proc.returncode != 0:
        raise StageFailed(f"git {' '.join(args[:2])} failed: {proc.stderr.strip()[-400:]}")
    return proc.stdout.strip()


def repo_root(path: Path) -> Path:
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"{path} is not in a git repository", hint="run mlci train in a clone of the service repo")
    return Path(proc.stdout.strip())


def tag_regex(pattern: str, service: str) -> re.Pattern[str]:
    literal = re.escape(pattern.replace("{service}", service)).replace(re.escape("{n}"), r"(\d+)")
    return re.compile(literal)


def next_number(existing: list[str], pattern: str, service: str) -> int:
    """One more than the highest `<n>` among tags matching the pattern (1 for the first model)."""
    rx = tag_regex(pattern, service)
    numbers = [int(m.group(1)) for t in existing if (m := rx.fullmatch(t))]
    return max(numbers, default=0) + 1


def _has_remote(repo: Path, remote: str) -> bool:
    return remote in _git(repo, "remote").split()


def existing_tags(repo: Path, remote: str | None) -> list[str]:
    tags = _git(repo, "tag", "-l").split()
    if remote and _has_remote(repo, remote):
        out = _git(repo, "ls-remote", "--tags", remote, check=False)
        tags += [ln.split("refs/tags/", 1)[1].removesuffix("^{}") for ln in out.splitlines() if "refs/tags/" in ln]
    return tags


PUSH_ATTEMPTS = 5


def publish(repo: Path, files: list[Path], *, service: str, tag_pattern: str, branch_prefix: str, message: str,
            remote: str | None, push: bool) -> Published:
    """Commit `files` (as they are in the working tree) on top of HEAD on a new branch, tag it, push.
    `{tag}` in `message` becomes the tag's name.

    Two trainings of one service may finish together and both pick number n: the push is atomic (branch and
    tag land together or not at all), and the one that loses takes the next free number and pushes again."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", "HEAD", env=env)
        rel = [str(f.resolve().relative_to(repo.resolve())) for f in files]
        _git(repo, "add", "-f", "--", *rel, env=env)
        tree = _git(repo, "write-tree", env=env)
    head = _git(repo, "rev-parse", "HEAD")
    pushing = bool(push and remote and _has_remote(repo, remote))
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        n = next_number(existing_tags(repo, remote), tag_pattern, service)
        tag = tag_pattern.replace("{service}", service).replace("{n}", str(n))
        branch = f"{branch_prefix}{tag}"
        text = message.replace("{tag}", tag)
        commit = _git(repo, "commit-tree", tree, "-p", head, "-m", text)
        _git(repo, "branch", branch, commit)
        _git(repo, "tag", "-a", tag, commit, "-m", text)
        if not pushing:
            return Published(branch, tag, commit, False)
        proc = _git_proc(repo, "push", "--atomic", str(remote), f"refs/heads/{branch}", f"refs/tags/{tag}")
        if proc.returncode == 0:
            return Published(branch, tag, commit, True)
        _git(repo, "tag", "-d", tag)
        _git(repo, "branch", "-D", branch)
        if "[rejected]" not in proc.stderr or attempt == PUSH_ATTEMPTS:
            raise StageFailed(f"git push of {tag} to {remote} failed: {proc.stderr.strip()[-400:]}")
    raise AssertionError("unreachable")
