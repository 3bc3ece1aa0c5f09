"""Publishing in git with real repositories: two trainings that finish together must not both claim
`<service>-model-<n>`; the push is atomic and the loser takes the next number."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlci.errors import StageFailed
from mlci.train import gitops


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def clones(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bare origin and two clones of it: the agents of two concurrent trainings."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    _git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "models.lock").write_text("version: 1\nfiles: []\n")
    _git(seed, "add", "-A")
    _git(seed, "commit", "-q", "-m", "service")
    _git(seed, "push", "-q", str(origin), "main")
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        _git(tmp_path, "clone", "-q", str(origin), str(clone))
    return origin, a, b


def _publish(repo: Path, text: str) -> gitops.Published:
    (repo / "models.lock").write_text(text)
    return gitops.publish(repo, [repo / "models.lock"], service="svc", tag_pattern="{service}-model-{n}",
                          branch_prefix="models/", message="new model {tag}", remote="origin", push=True)


def test_concurrent_publish_takes_the_next_number(clones, monkeypatch: pytest.MonkeyPatch) -> None:
    origin, a, b = clones
    real, calls = gitops.existing_tags, []

    def stale_first(repo: Path, remote: str | None) -> list[str]:
        calls.append(repo)
        return [] if len(calls) == 1 else real(repo, remote)  # b looked before a's push landed

    first = _publish(a, "version: 1\nfiles: [a]\n")
    assert (first.tag, first.branch, first.pushed) == ("svc-model-1", "models/svc-model-1", True)
    monkeypatch.setattr(gitops, "existing_tags", stale_first)
    second = _publish(b, "version: 1\nfiles: [b]\n")
    assert (second.tag, second.branch, second.pushed) == ("svc-model-2", "models/svc-model-2", True)
    assert len(calls) == 2  # one rejected push, one retry

    assert sorted(_git(origin, "tag", "-l").split()) == ["svc-model-1", "svc-model-2"]
    assert _git(origin, "show", "svc-model-1:models.lock") == "version: 1\nfiles: [a]"
    assert _git(origin, "show", "svc-model-2:models.lock") == "version: 1\nfiles: [b]"
    assert _git(origin, "show", "models/svc-model-1:models.lock") == "version: 1\nfiles: [a]"
    assert _git(origin, "log", "-1", "--format=%s", "svc-model-2") == "new model svc-model-2"
    assert _git(b, "tag", "-l") == "svc-model-2"  # the losing local tag and branch were removed
    assert "models/svc-model-1" not in _git(b, "branch", "--list")


def test_push_failure_other_than_a_lost_race_is_reported(clones) -> None:
    origin, a, _ = clones
    _git(a, "remote", "set-url", "origin", str(origin.parent / "missing.git"))
    with pytest.raises(StageFailed, match="git push of svc-model-1 to origin failed"):
        _publish(a, "x\n")
    assert _git(a, "tag", "-l") == ""  # nothing half-published left behind
