"""`mlci report post`: one comment per pull request, found again by its hidden marker, on GitHub/GitLab/Bitbucket
(local servers speaking each API, with pagination and auth)."""

from __future__ import annotations

import pytest

from mlci.cli import main
from mlci.report import post, render

from .fakeserver import FakeForge, serve
from .samples import EVIL, accuracy_record, write_config, write_results

TOKEN = "ghp_" + "x" * 36
REPOS = {"github": "acme/digits", "gitlab": "ml/group/digits", "bitbucket": "acme/digits"}


@pytest.fixture()
def pr_env(monkeypatch):
    for var in ("CHANGE_ID", "CHANGE_URL", "MLCI_REPORT_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN", "BITBUCKET_TOKEN", "BITBUCKET_USER",
                "BUILD_URL", "MLCI_REPORT_URL", "MLCI_POST_API"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLCI_REPORT_TOKEN", TOKEN)
    monkeypatch.setenv("CHANGE_ID", "42")
    return monkeypatch


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket"])
def test_post_creates_once_then_updates(tmp_path, pr_env, provider, capsys):
    fake = FakeForge(provider, TOKEN, REPOS[provider], "42", page_size=2)
    for i in range(5):  # other people's comments, over three pages
        fake.seed(f"looks good {i} <!-- not ours -->")
    if provider == "gitlab":
        fake.seed("added 1 commit", system=True)
    cfg = write_config(tmp_path, post={"provider": provider, "repo": REPOS[provider]})
    res = write_results(tmp_path / "res", accuracy_record("FAIL"))
    with serve(fake):
        args = ["report", "post", "-c", str(cfg), "--results", str(res), "--no-history", "--api", fake.base]
        assert main(args) == 0
        first = capsys.readouterr().out
        ours = [c for c in fake.comments if "mlci-report:digits" in c["body"]]
        assert len(ours) == 1 and "created" in first
        assert "FAIL" in ours[0]["body"] and r"\<script\>" in ours[0]["body"] and EVIL not in ours[0]["body"]
        # the next build: same comment updated, no new one
        write_results(tmp_path / "res", accuracy_record("PASS"))
        assert main(args) == 0
        second = capsys.readouterr().out
    ours_after = [c for c in fake.comments if "mlci-report:digits" in c["body"]]
    assert len(ours_after) == 1 and ours_after[0]["id"] == ours[0]["id"] and "updated" in second
    assert "✅ PASS" in ours_after[0]["body"]
    assert len(fake.comments) == (7 if provider == "gitlab" else 6)
    assert [c["body"] for c in fake.comments[:5]] == [f"looks good {i} <!-- not ours -->" for i in range(5)]
    methods = [r["method"] for r in fake.requests]
    assert methods.count("POST") == 1 and methods.count("PATCH" if provider == "github" else "PUT") == 1
    assert sum(m == "GET" for m in methods) >= 6  # every page was read, both times
    if provider == "bitbucket":
        assert ours_after[0]["body"].startswith("[//]: # (mlci-report:digits)") and "<details>" not in ours_after[0]["body"]
    else:
        assert ours_after[0]["body"].startswith("<!-- mlci-report:digits -->")
    assert TOKEN not in first + second


def test_post_body_file_and_change_url(tmp_path, pr_env, capsys):
    fake = FakeForge("github", TOKEN, "acme/svc", "7")
    body = tmp_path / "body.md"
    body.write_text("hello from a file\n")
    with serve(fake):
        pr_env.setenv("CHANGE_ID", "7")
        pr_env.setenv("CHANGE_URL", "https://github.com/acme/svc/pull/7")
        pr_env.setenv("GITHUB_TOKEN", "not-this-one")  # MLCI_REPORT_TOKEN (what Jenkins binds) wins
        for _ in range(2):
            assert main(["report", "post", "-c", str(write_config(tmp_path)), "--provider", "github",
                         "--body", str(body), "--api", fake.base, "--marker", "svc-smoke"]) == 0
    assert len(fake.comments) == 1
    assert fake.comments[0]["body"] == "<!-- mlci-report:svc-smoke -->\nhello from a file\n"


def test_post_errors_are_user_errors(tmp_path, pr_env, capsys):
    cfg = write_config(tmp_path, post={"provider": "github", "repo": "acme/digits"})
    res = write_results(tmp_path / "res", accuracy_record("PASS"))
    fake = FakeForge("github", "other-token", "acme/digits", "42")
    with serve(fake):
        code = main(["report", "post", "-c", str(cfg), "--results", str(res), "--no-history", "--api", fake.base])
    err = capsys.readouterr().err
    assert code == 2 and "HTTP 401" in err and "token is invalid" in err and TOKEN not in err
    pr_env.delenv("CHANGE_ID")
    assert main(["report", "post", "-c", str(cfg), "--results", str(res)]) == 2
    assert "not a pull-request build" in capsys.readouterr().err
    pr_env.setenv("CHANGE_ID", "42")
    pr_env.delenv("MLCI_REPORT_TOKEN")
    assert main(["report", "post", "-c", str(cfg), "--results", str(res)]) == 2
    assert "MLCI_REPORT_TOKEN" in capsys.readouterr().err
    assert main(["report", "post", "-c", str(write_config(tmp_path)), "--results", str(res)]) == 2
    assert "no pull-request provider" in capsys.readouterr().err


def test_change_url_parsing_and_fit():
    assert post.repo_from_change_url("github", "https://github.com/a/b/pull/12") == ("a/b", "12")
    assert post.repo_from_change_url("gitlab", "https://gitlab.com/g/s/p/-/merge_requests/3") == ("g/s/p", "3")
    assert post.repo_from_change_url("bitbucket", "https://bitbucket.org/w/r/pull-requests/9") == ("w/r", "9")
    assert post.repo_from_change_url("github", "https://example.com/x") is None
    body = render.marker("github", "digits") + "\n" + "line\n" * 20000
    fitted = post.fit(body, "github")
    assert len(fitted) <= post.BODY_LIMIT["github"] and fitted.startswith("<!-- mlci-report:digits -->")
    assert "truncated" in fitted


def test_long_report_is_compacted_to_fit_a_comment(tmp_path, pr_env):
    rec = accuracy_record("PASS")
    rec["metrics"]["per_class"] = {f"class-{i}": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10}
                                   for i in range(3000)}
    cfg = write_config(tmp_path, post={"provider": "github", "repo": "acme/digits"})
    res = write_results(tmp_path / "res", rec)
    fake = FakeForge("github", TOKEN, "acme/digits", "42")
    with serve(fake):
        assert main(["report", "post", "-c", str(cfg), "--results", str(res), "--no-history", "--api", fake.base]) == 0
    body = fake.comments[0]["body"]
    assert len(body) <= post.BODY_LIMIT["github"] and body.startswith("<!-- mlci-report:digits -->")
    assert "class-2999" not in body and "| Gate | Estimate |" in body  # per-class table dropped, gates kept

    assert main(["report", "render", "--results", str(res), "--no-history", "--out", str(tmp_path / "r")]) == 0
    full = (tmp_path / "r" / "report.md").read_text()
    assert "class-2999" in full and len(full) > post.BODY_LIMIT["github"]
