"""Provenance sources (mlci.gitinfo) against real git working copies: the service's commit, branch and URL, never
the commit a Jenkins shared library's checkout leaves in GIT_COMMIT (jenkinsci/workflow-job-plugin#788)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlci import gitinfo

LIBRARY = "feedface" * 5
VARS = ("MLCI_GIT_COMMIT", "MLCI_GIT_BRANCH", "MLCI_GIT_URL", "GIT_COMMIT", "GIT_BRANCH", "GIT_URL", "BRANCH_NAME")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "svc"
    root.mkdir()
    _git(root, "init", "-q", "-b", "develop")
    (root / "ml-ci.yaml").write_text("service: s\n")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    _git(root, "remote", "add", "origin", "https://robot:ghp_token123@git.example.com/ml/svc.git")
    return root


def test_the_working_copy_wins_over_a_leaked_GIT_COMMIT(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    monkeypatch.setenv("GIT_COMMIT", LIBRARY)
    monkeypatch.setenv("GIT_BRANCH", "master")
    assert gitinfo.commit(repo) == head
    assert gitinfo.branch(repo) == "develop"
    assert gitinfo.commit_from_environment()  # the dirty check is skipped when a CI hands the commit in


def test_the_checkout_map_wins_over_everything(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_COMMIT", LIBRARY)
    monkeypatch.setenv("MLCI_GIT_COMMIT", "c" * 40)
    monkeypatch.setenv("MLCI_GIT_BRANCH", "origin/release/2.0")
    monkeypatch.setenv("BRANCH_NAME", "other")
    monkeypatch.setenv("MLCI_GIT_URL", "https://user:secret@git.example.com/ml/svc.git")
    assert gitinfo.commit(repo) == "c" * 40
    assert gitinfo.branch(repo) == "release/2.0"
    assert gitinfo.url(repo) == "https://git.example.com/ml/svc.git"


def test_a_detached_checkout_takes_the_multibranch_branch_name(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _git(repo, "checkout", "-q", "--detach")
    assert gitinfo.branch(repo) is None
    monkeypatch.setenv("BRANCH_NAME", "PR-42")
    assert gitinfo.branch(repo) == "PR-42"


def test_url_from_the_origin_remote_never_carries_a_token(repo: Path) -> None:
    assert gitinfo.url(repo) == "https://git.example.com/ml/svc.git"


def test_outside_a_working_copy_the_ci_variables_are_the_last_resort(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_COMMIT", "a" * 40)
    monkeypatch.setenv("GIT_BRANCH", "origin/main")
    monkeypatch.setenv("GIT_URL", "git@git.example.com:ml/svc.git")
    assert gitinfo.commit(tmp_path) == "a" * 40
    assert gitinfo.branch(tmp_path) == "main"
    assert gitinfo.url(tmp_path) == "git@git.example.com:ml/svc.git"
    monkeypatch.delenv("GIT_COMMIT")
    assert gitinfo.commit(tmp_path) is None and not gitinfo.commit_from_environment()
