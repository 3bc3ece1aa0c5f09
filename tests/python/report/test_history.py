"""History store against the real S3 server: append, baseline lookup, image lookup, result cache, degradation."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from mlci.accuracy.outputs import judged_settings
from mlci.config import load_config
from mlci.errors import UserError
from mlci.report import history

from .samples import accuracy_record, write_config


def make_cfg(tmp_path: Path, uri: str | None):
    return load_config(write_config(tmp_path, history=uri))


def test_append_then_latest_pass_is_newest_pass_on_branch(tmp_path, s3_bucket):
    cfg = make_cfg(tmp_path, f"s3://{s3_bucket}/hist")
    old = accuracy_record("PASS", branch="main", commit="1" * 40, accuracy=0.94)
    new = accuracy_record("PASS", branch="main", commit="2" * 40, accuracy=0.95)
    failing = accuracy_record("FAIL", branch="main", commit="3" * 40)
    other_branch = accuracy_record("PASS", branch="feature/x", commit="4" * 40)
    ids = [history.append_record(cfg, r) for r in (old, new, failing, other_branch)]
    assert len(set(ids)) == 4

    base = history.latest_pass(cfg, branch="main", suite="smoke")
    assert base is not None
    assert base["git"]["commit"] == "2" * 40  # newest PASS, the newer FAIL is skipped
    assert base["history"]["id"] == ids[1]
    assert base["outcomes"] == new["outcomes"]  # whole record kept (the change gate pairs on outcomes)
    assert history.latest_pass(cfg, branch="main", suite="full") is None
    assert history.latest_pass(cfg, branch="feature/x", suite="smoke")["git"]["commit"] == "4" * 40

    # keyed by service, branch and commit; branch names with '/' stay one segment
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith(f"hist/digits/records/feature%2Fx/{'4' * 40}/{ids[3]}") for k in keys)
    assert all(json.loads(boto3.client("s3").get_object(Bucket=s3_bucket, Key=k)["Body"].read()) for k in keys)


def test_find_pass_for_image_and_trend(tmp_path, s3_bucket):
    cfg = make_cfg(tmp_path, f"s3://{s3_bucket}")
    digest = "sha256:" + "77" * 32
    history.append_record(cfg, accuracy_record("FAIL", branch="main", image_digest=digest))
    assert history.find_pass_for_image(cfg, digest) is None
    history.append_record(cfg, accuracy_record("PASS", branch="develop", image_digest=digest, commit="9" * 40))
    found = history.find_pass_for_image(cfg, digest)
    assert found and found["git"]["commit"] == "9" * 40 and found["image"]["digest"] == digest
    assert history.find_pass_for_image(cfg, "sha256:" + "00" * 32) is None

    # a newer FAIL of the same image (e.g. the scheduled full suite) withdraws the promotion evidence
    history.append_record(cfg, accuracy_record("FAIL", suite="full", branch="develop", image_digest=digest))
    assert history.find_pass_for_image(cfg, digest) is None

    for i in range(3):
        history.append_record(cfg, accuracy_record("PASS", branch="main", commit=f"{i}" * 40, accuracy=0.9 + i / 100))
    trend = history.recent(cfg, branch="main", suite="smoke", limit=3)
    assert [p["metrics"]["accuracy"] for p in trend] == [0.9, 0.91, 0.92]  # oldest first, newest 3 only
    assert all(p["suite"] == "smoke" for p in trend)


def test_find_reusable_matches_all_digests_and_gates(tmp_path, s3_bucket):
    cfg = make_cfg(tmp_path, f"s3://{s3_bucket}/h")
    rec = accuracy_record("PASS", branch="main")
    rec["gates"][0]["threshold"] = 0.9
    rec["plan"] = {"settings": judged_settings(cfg["accuracy"], cfg["accuracy"]["suites"]["smoke"])}
    rid = history.append_record(cfg, rec)
    args = dict(suite="smoke", model_files=rec["model"]["files"], dataset_sha256=rec["dataset"]["sha256"],
                code_digest=rec["model"]["code_digest"])
    hit = history.find_reusable(cfg, **args)
    assert hit and hit["history"]["id"] == rid
    assert history.find_reusable(cfg, **{**args, "code_digest": "sha256:" + "00" * 32}) is None
    assert history.find_reusable(cfg, **{**args, "dataset_sha256": "0" * 64}) is None
    assert history.find_reusable(cfg, **{**args, "model_files": {"models/digits.npz": "sha256:" + "11" * 32}}) is None
    assert history.find_reusable(cfg, **{**args, "suite": "full"}) is None
    cfg.data["report"]["reuse"] = False  # the cache switched off
    assert history.find_reusable(cfg, **args) is None
    cfg.data["report"]["reuse"] = True
    # what turns predictions into a verdict changed since the record: not reusable
    for key, value in (("threshold", 0.3), ("predict", "digits_service.inference:other"), ("on_error", "exclude")):
        saved = cfg.data["accuracy"][key]
        cfg.data["accuracy"][key] = value
        assert history.find_reusable(cfg, **args) is None, key
        cfg.data["accuracy"][key] = saved
    assert history.find_reusable(cfg, **args) is not None
    # gates changed since the record: a PASS at the old threshold is not reusable
    cfg.data["accuracy"]["suites"]["smoke"]["gates"][0]["min"] = 0.95
    assert history.find_reusable(cfg, **args) is None


def test_failing_record_is_never_reused(tmp_path, s3_bucket):
    cfg = make_cfg(tmp_path, f"s3://{s3_bucket}/h")
    rec = accuracy_record("FAIL", branch="main")
    history.append_record(cfg, rec)
    assert history.find_reusable(cfg, suite="smoke", model_files=rec["model"]["files"],
                                 dataset_sha256=rec["dataset"]["sha256"], code_digest=rec["model"]["code_digest"]) is None


def test_corrupt_and_dangling_entries_are_skipped_with_warning(tmp_path, s3_bucket, capsys):
    cfg = make_cfg(tmp_path, f"s3://{s3_bucket}/h")
    good = accuracy_record("PASS", branch="main", commit="5" * 40)
    history.append_record(cfg, good)
    s3 = boto3.client("s3")
    store = history.store_for(cfg)
    newer = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    prefix = store.branch_prefix("main", "smoke")
    # newer entries: one not JSON, one pointing at a record that does not exist, one pointing at garbage
    s3.put_object(Bucket=s3_bucket, Key=prefix + history.entry_name(newer, "PASS", "x1"), Body=b"{half")
    s3.put_object(Bucket=s3_bucket, Key=prefix + history.entry_name(newer, "PASS", "x2"),
                  Body=json.dumps({"key": "h/digits/records/none.json"}).encode())
    s3.put_object(Bucket=s3_bucket, Key="h/digits/records/garbage.json", Body=b"\x00\xff")
    s3.put_object(Bucket=s3_bucket, Key=prefix + history.entry_name(newer, "PASS", "x3"),
                  Body=json.dumps({"key": "h/digits/records/garbage.json"}).encode())
    base = history.latest_pass(cfg, branch="main", suite="smoke")
    assert base and base["git"]["commit"] == "5" * 40
    err = capsys.readouterr().err
    assert err.count("mlci: warning:") == 3 and "corrupt" in err and "missing" in err


def test_missing_store_degrades_to_no_baseline(tmp_path, s3_endpoint, capsys):
    cfg = make_cfg(tmp_path, "s3://mlci-no-such-bucket-report/h")
    assert history.latest_pass(cfg, branch="main", suite="smoke") is None
    assert history.find_pass_for_image(cfg, "sha256:" + "ab" * 32) is None
    assert history.recent(cfg, branch="main", suite="smoke") == []
    err = capsys.readouterr().err
    assert "warning" in err and "no baseline" in err and "does not exist" in err
    with pytest.raises(UserError, match="does not exist"):
        history.append_record(cfg, accuracy_record("PASS"))


def test_unconfigured_store(tmp_path, capsys):
    cfg = make_cfg(tmp_path, None)
    assert history.latest_pass(cfg, branch="main", suite="smoke") is None
    with pytest.raises(UserError, match="report.history is not set"):
        history.append_record(cfg, accuracy_record("PASS"))


def test_unreachable_endpoint_degrades(tmp_path):
    """A dead S3 endpoint (nothing listening) must warn, not crash; run in a subprocess for a clean client."""
    cfg_path = make_cfg(tmp_path, "s3://mlci-report-dead/h").path
    code = (
        "import sys; from mlci.config import load_config; from mlci.report import history;"
        f"cfg = load_config({str(cfg_path)!r});"
        "print(history.latest_pass(cfg, branch='main', suite='smoke'))"
    )
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1", "PATH": "/usr/bin:/bin",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"
    assert "warning" in proc.stderr and "no baseline" in proc.stderr


def test_rejects_records_it_could_not_use(tmp_path, s3_bucket):
    cfg = make_cfg(tmp_path, f"s3://{s3_bucket}/h")
    with pytest.raises(UserError, match="schema"):
        history.append_record(cfg, {"schema": "nope"})
    with pytest.raises(UserError, match="service"):
        history.append_record(cfg, accuracy_record("PASS", service="other"))
    shard = accuracy_record("PASS")
    shard["provisional"] = True
    with pytest.raises(UserError, match="provisional"):
        history.append_record(cfg, shard)
    bad = accuracy_record("PASS")
    bad["verdict"] = "MAYBE"
    with pytest.raises(UserError, match="verdict"):
        history.append_record(cfg, bad)


def test_record_then_render_uses_history(tmp_path, s3_bucket, capsys, monkeypatch):
    """The CLI end to end: `report record` builds the history, `report render` draws baseline and trend from it."""
    from mlci.cli import main

    from .samples import write_results

    monkeypatch.delenv("BUILD_URL", raising=False)
    cfg = write_config(tmp_path, history=f"s3://{s3_bucket}/hist")
    for i, acc in enumerate([0.93, 0.935, 0.94, 0.945]):
        res = write_results(tmp_path / f"main-{i}", accuracy_record("PASS", branch="main", commit=f"{i + 1}" * 40,
                                                                   accuracy=acc))
        assert main(["report", "record", "-c", str(cfg), "--results", str(res)]) == 0
    assert capsys.readouterr().out.count("recorded smoke PASS") == 4
    current = write_results(tmp_path / "pr", accuracy_record("FAIL", branch="feature/x", commit="f" * 40))
    assert main(["report", "render", "-c", str(cfg), "--results", str(current)]) == 0
    page = (current / "report" / "report.html").read_text()
    md = (current / "report" / "report.md").read_text()
    assert 'class="chart trend"' in page and "last 4 recorded builds and this one" in page
    assert "Compared with the baseline" in page and "4444444" in page  # newest PASS on main
    assert "−8.40 pp" in page or "-8.40 pp" in page  # 86.1% vs 94.5%
    assert "**Trend**" in md and "93.0% → 86.1%" in md
    # an unreachable store when recording is an error the user must see (exit 2), not a silent loss
    (tmp_path / "x").mkdir()
    bad = write_config(tmp_path / "x", history="s3://mlci-report-no-such-bucket/h")
    assert main(["report", "record", "-c", str(bad), "--results", str(current)]) == 2
    assert "does not exist" in capsys.readouterr().err
