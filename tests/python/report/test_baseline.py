"""`mlci report baseline`: history store first, else the last successful Jenkins build's archived accuracy.json
(python-jenkins against a local server speaking Jenkins' JSON API)."""

from __future__ import annotations

import json
import socket

import pytest

from mlci.cli import main
from mlci.config import load_config
from mlci.report import history
from mlci.report.baseline import jenkins_job

from .fakeserver import FakeJenkins, serve
from .samples import accuracy_record, write_config

USER, TOKEN = "ci-bot", "11a0e5f0c0ffee"
ART = ".mlci/accuracy/smoke/accuracy.json"


@pytest.fixture()
def jenkins_env(monkeypatch):
    for var in ("JENKINS_URL", "JOB_NAME", "BRANCH_NAME", "CHANGE_ID", "GIT_COMMIT", "MLCI_BASELINE_JOB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JENKINS_USER", USER)
    monkeypatch.setenv("JENKINS_API_TOKEN", TOKEN)
    monkeypatch.setenv("GIT_COMMIT", "e" * 40)
    return monkeypatch


def _baseline(tmp_path, cfg, *extra):
    out = tmp_path / "baseline.json"
    code = main(["report", "baseline", "-c", str(cfg), "--suite", "smoke", "--out", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text()) if out.exists() else None


def test_jenkins_multibranch_walks_back_to_last_pass(tmp_path, jenkins_env, capsys):
    fake = FakeJenkins(USER, TOKEN)
    job = "org/digits/main"
    fake.add_build(job, 9, "FAILURE", {ART: accuracy_record("PASS", branch="main", commit="9" * 40)})
    fake.add_build(job, 8, "UNSTABLE", {ART: accuracy_record("INCONCLUSIVE", branch="main", commit="8" * 40)})
    fake.add_build(job, 7, "SUCCESS", {".mlci/accuracy/full/accuracy.json":
                                       accuracy_record("PASS", suite="full", branch="main", commit="7" * 40)})
    fake.add_build(job, 6, "SUCCESS", {ART: accuracy_record("PASS", branch="main", commit="6" * 40)})
    fake.add_build(job, 5, "SUCCESS", {ART: accuracy_record("PASS", branch="main", commit="5" * 40)})
    fake.add_build("org/digits/PR-7", 1, None, {})
    cfg = write_config(tmp_path)  # no history store: Jenkins is the source
    with serve(fake):
        jenkins_env.setenv("JENKINS_URL", fake.base + "/")
        jenkins_env.setenv("JOB_NAME", "org/digits/PR-7")
        jenkins_env.setenv("BRANCH_NAME", "PR-7")
        jenkins_env.setenv("CHANGE_ID", "7")
        record = _baseline(tmp_path, cfg)
    assert record is not None and record["git"]["commit"] == "6" * 40 and record["verdict"] == "PASS"
    assert record["jenkins"]["build"] == 6
    out = capsys.readouterr().out
    assert "Jenkins org/digits/main #6" in out
    paths = [r["path"] for r in fake.requests]
    assert "/job/org/job/digits/job/main/api/json" in paths
    assert "/job/org/job/digits/job/main/6/artifact/.mlci/accuracy/smoke/accuracy.json" in paths
    assert not any("/9/artifact" in p for p in paths)  # a failed build's artifacts are never trusted
    assert not any("PR-7" in p for p in paths)
    assert all(TOKEN not in p for p in paths) and TOKEN not in out


def test_jenkins_branch_with_slash_and_plain_job(tmp_path, jenkins_env):
    fake = FakeJenkins(USER, TOKEN)
    fake.add_build("digits/release%2F1.0", 3, "SUCCESS", {ART: accuracy_record("PASS", branch="release/1.0",
                                                                               commit="3" * 40)})
    fake.add_build("digits-ci", 12, "SUCCESS", {ART: accuracy_record("PASS", branch="main", commit="c" * 40)})
    with serve(fake):
        jenkins_env.setenv("JENKINS_URL", fake.base)
        jenkins_env.setenv("JOB_NAME", "digits/PR-3")
        jenkins_env.setenv("CHANGE_ID", "3")
        rec = _baseline(tmp_path, write_config(tmp_path, branch="release/1.0"))
        assert rec["git"]["commit"] == "3" * 40
        assert "/job/digits/job/release%252F1.0/api/json" in [r["path"] for r in fake.requests]
        # a plain (non-multibranch) pipeline job is its own baseline
        jenkins_env.delenv("CHANGE_ID")
        jenkins_env.setenv("JOB_NAME", "digits-ci")
        assert _baseline(tmp_path, write_config(tmp_path))["git"]["commit"] == "c" * 40


def test_this_commit_is_never_its_own_baseline(tmp_path, jenkins_env, capsys):
    fake = FakeJenkins(USER, TOKEN)
    fake.add_build("digits-ci", 4, "SUCCESS", {ART: accuracy_record("PASS", branch="main", commit="e" * 40)})
    with serve(fake):
        jenkins_env.setenv("JENKINS_URL", fake.base)
        jenkins_env.setenv("JOB_NAME", "digits-ci")
        assert _baseline(tmp_path, write_config(tmp_path)) is None
    assert "no baseline" in capsys.readouterr().out


def test_jenkins_problems_mean_no_baseline_not_a_crash(tmp_path, jenkins_env, capsys):
    cfg = write_config(tmp_path)
    stale = tmp_path / "baseline.json"
    stale.write_text(json.dumps(accuracy_record("PASS")))
    fake = FakeJenkins(USER, "another-token")  # our token is refused
    fake.add_build("digits-ci", 1, "SUCCESS", {ART: accuracy_record("PASS", commit="1" * 40)})
    with serve(fake):
        jenkins_env.setenv("JENKINS_URL", fake.base)
        jenkins_env.setenv("JOB_NAME", "digits-ci")
        assert _baseline(tmp_path, cfg) is None
    assert not stale.exists()  # a stale baseline from an earlier run is removed, not silently reused
    err = capsys.readouterr().err
    assert "warning" in err and "no baseline" in err and TOKEN not in err
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    jenkins_env.setenv("JENKINS_URL", f"http://127.0.0.1:{dead}")
    assert _baseline(tmp_path, cfg) is None
    assert "warning" in capsys.readouterr().err


def test_history_store_wins_over_jenkins(tmp_path, jenkins_env, s3_bucket, capsys):
    cfg_path = write_config(tmp_path, history=f"s3://{s3_bucket}/h")
    cfg = load_config(cfg_path)
    history.append_record(cfg, accuracy_record("PASS", branch="main", commit="a" * 40))
    history.append_record(cfg, accuracy_record("PASS", branch="main", commit="e" * 40))  # this build: skipped
    fake = FakeJenkins(USER, TOKEN)
    fake.add_build("digits-ci", 1, "SUCCESS", {ART: accuracy_record("PASS", commit="1" * 40)})
    with serve(fake):
        jenkins_env.setenv("JENKINS_URL", fake.base)
        jenkins_env.setenv("JOB_NAME", "digits-ci")
        rec = _baseline(tmp_path, cfg_path)
        assert rec["git"]["commit"] == "a" * 40 and rec["history"]["id"]
        assert fake.requests == []
        # empty store for that suite: falls back to Jenkins
        out = tmp_path / "full.json"
        assert main(["report", "baseline", "-c", str(cfg_path), "--suite", "full", "--out", str(out)]) == 0
        assert not out.exists()  # Jenkins has no PASS record of suite full either
        assert fake.requests
    assert "history store" in capsys.readouterr().out


def test_unknown_suite_is_a_user_error(tmp_path, jenkins_env, capsys):
    code = main(["report", "baseline", "-c", str(write_config(tmp_path)), "--suite", "nope", "--out",
                 str(tmp_path / "b.json")])
    assert code == 2 and "not in accuracy.suites" in capsys.readouterr().err


def test_jenkins_job_naming():
    assert jenkins_job({"JOB_NAME": "a/b/PR-1", "CHANGE_ID": "1"}, "main") == "a/b/main"
    assert jenkins_job({"JOB_NAME": "a/b/feature%2Fx", "BRANCH_NAME": "feature/x"}, "release/2") == "a/b/release%2F2"
    assert jenkins_job({"JOB_NAME": "solo"}, "main") == "solo"
    assert jenkins_job({}, "main") is None
