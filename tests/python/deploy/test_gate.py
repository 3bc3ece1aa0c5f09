"""The promotion gate: this build's records and the history store (real S3 server), refusals and overrides."""

from __future__ import annotations

import json

from mlci.config import load_config
from mlci.deploy import gate
from mlci.report import history

from .conftest import CONFIG, DIGEST, OTHER_DIGEST, accuracy_record, deploy_in_process


def evaluate(repo, digest=DIGEST, **kw):
    return gate.evaluate(load_config(repo.config), repo.out, digest, **kw)


def test_refuses_a_digest_without_any_record(repo):
    result = evaluate(repo, use_history=False)
    assert not result.passed and result.source == "none" and "no PASS accuracy record" in result.message


def test_accepts_a_local_pass_for_the_same_digest(repo):
    path = repo.write_accuracy(accuracy_record(DIGEST))
    result = evaluate(repo)
    assert result.passed and result.source == "build"
    assert result.record["where"] == str(path) and result.record["suite"] == "smoke"


def test_pass_for_another_digest_or_service_does_not_count(repo):
    repo.write_accuracy(accuracy_record(OTHER_DIGEST, suite="smoke"))
    repo.write_accuracy(accuracy_record(DIGEST, suite="full", service="other-service"))
    assert not evaluate(repo, use_history=False).passed


def test_a_failed_suite_for_the_digest_blocks_even_with_another_pass(repo):
    repo.write_accuracy(accuracy_record(DIGEST, "PASS", suite="smoke"))
    repo.write_accuracy(accuracy_record(DIGEST, "FAIL", suite="full"))
    result = evaluate(repo)
    assert not result.passed and "FAILED" in result.message and "full" in result.message


def test_inconclusive_and_garbage_are_not_evidence(repo):
    repo.write_accuracy(accuracy_record(DIGEST, "INCONCLUSIVE"))
    bad = repo.out / "accuracy" / "broken" / "accuracy.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    result = evaluate(repo, use_history=False)
    assert not result.passed
    assert any("INCONCLUSIVE" in n for n in result.notes) and any("unreadable" in n for n in result.notes)


def test_history_lookup_must_match_the_digest(repo):
    """A lookup answering with a record for another image is not evidence."""
    seen = []

    def lookup(cfg, digest):
        seen.append(digest)
        return accuracy_record(OTHER_DIGEST)

    assert not evaluate(repo, lookup=lookup).passed and seen == [DIGEST]
    assert evaluate(repo, lookup=lambda cfg, d: accuracy_record(DIGEST)).source == "history"


def test_forced_keeps_what_the_gate_said(repo):
    result = gate.forced(evaluate(repo, use_history=False), "INC-42 hotfix")
    assert result.passed and result.source == "forced"
    assert "INC-42 hotfix" in result.message and "no PASS accuracy record" in result.message


def test_history_store_pass_lets_the_deploy_through(repo, kube, s3_bucket, monkeypatch, capsys):
    """The real history store on the S3 server: a PASS recorded by an earlier build of the same image."""
    repo.write_config(CONFIG + f"report: {{history: 's3://{s3_bucket}/history'}}\n")
    repo.write_build()
    code, out, _ = deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging", "--dry-run")
    assert code == 1 and "REFUSED" in out  # nothing recorded yet
    history.append_record(load_config(repo.config), accuracy_record(OTHER_DIGEST, suite="full"))
    history.append_record(load_config(repo.config), accuracy_record(DIGEST, suite="full"))
    code, _, err = deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging")
    assert code == 0, err
    record = json.loads((repo.out / "deploy.json").read_text())
    assert record["gate"]["source"] == "history" and record["gate"]["record"]["suite"] == "full"
    assert record["gate"]["record"]["digest"] == DIGEST
