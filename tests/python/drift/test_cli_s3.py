"""`mlci drift reference|check` end to end: logs in the real S3 server (moto process), the real CLI, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import pytest

from tests.python.conftest import run_mlci

from .synth import columns, csv_bytes, jsonl, rows

UNTIL = "2026-11-22"
DAYS = [f"2026-11-{d:02d}" for d in range(16, 23)]
ENV = {"MLCI_CONFIG": "", "JENKINS_URL": ""}


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reference statistics built by the real CLI (a subprocess) from a 6,000-row training file."""
    d = tmp_path_factory.mktemp("ref")
    data = d / "train.jsonl"
    data.write_bytes(jsonl(rows(columns(6000, np.random.default_rng(11)))))
    out = d / "reference.json"
    run_mlci("drift", "reference", "--data", str(data), "--out", str(out), cwd=d, env=ENV, check=True)
    return out


def args(reference: Path | str, logs: str, out: Path, *extra: str) -> tuple[str, ...]:
    return ("drift", "check", "--reference", str(reference), "--logs", logs, "--window", "7d", "--until", UNTIL,
            "--out", str(out), *extra)


def put_window(bucket: str, prefix: str, seed: int, **shift: float) -> None:
    """A week of daily partitions (jsonl, gzipped jsonl, csv) plus objects the window must ignore."""
    s3 = boto3.client("s3")
    rng = np.random.default_rng(seed)
    for i, day in enumerate(DAYS):
        recs = rows(columns(150, rng, **shift))
        for r in recs:
            r["ts"] = f"{day}T12:00:00Z"
        if i % 3 == 0:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/dt={day}/part-0.csv", Body=csv_bytes(recs))
        elif i % 3 == 1:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/dt={day}/part-0.jsonl.gz", Body=jsonl(recs, gz=True))
        else:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/dt={day}/part-0.jsonl", Body=jsonl(recs))
    # outside the window: heavily shifted, must not be read
    old = rows(columns(500, rng, shift=3.0, new_category=0.5))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/dt=2026-11-15/part-0.jsonl", Body=jsonl(old))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/dt=2026-11-23/part-0.jsonl", Body=jsonl(old))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/README.txt", Body=b"not a partition")


def check(reference: Path | str, logs: str, out: Path, *extra: str):
    """The real CLI in a subprocess (exit code and stderr as Jenkins sees them)."""
    return run_mlci(*args(reference, logs, out, *extra), cwd=out.parent, env=ENV)


def test_no_shift_exits_0_reading_exactly_the_window(s3_bucket: str, reference_file: Path, tmp_path: Path, mlci) -> None:
    put_window(s3_bucket, "svc/logs", seed=21)
    proc = mlci(*args(reference_file, f"s3://{s3_bucket}/svc/logs", tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads((tmp_path / "out" / "drift" / "drift.json").read_text())
    assert rec["schema"] == "mlci.drift/1" and rec["verdict"] == "NO_DRIFT"
    assert rec["logs"]["objects"] == 7 and rec["logs"]["rows_read"] == 7 * 150
    assert (rec["logs"]["from"], rec["logs"]["to"]) == ("2026-11-16", UNTIL)
    assert rec["not_checked"] == ["ts"]
    assert {f["name"] for f in rec["features"]} == {"age", "income", "visits", "channel", "prediction"}
    assert "<svg" not in (tmp_path / "out" / "drift" / "drift.html").read_text()  # no drifted feature, no chart


def test_shift_exits_1_with_report_and_charts(s3_bucket: str, reference_file: Path, tmp_path: Path) -> None:
    put_window(s3_bucket, "svc/logs", seed=22, shift=1.0, new_category=0.2)
    proc = check(reference_file, f"s3://{s3_bucket}/svc/logs", tmp_path / "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "age" in proc.stdout and "channel" in proc.stdout
    out = tmp_path / "out" / "drift"
    rec = json.loads((out / "drift.json").read_text())
    assert rec["verdict"] == "DRIFT" and set(rec["drifted"]) == {"age", "channel"}
    html = (out / "drift.html").read_text()
    assert html.count("<svg") == 2 and "kiosk" in html
    import re
    import xml.etree.ElementTree as ET

    for chart in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        root = ET.fromstring(chart)  # well-formed: every label escaped
        assert len(root.findall("{http://www.w3.org/2000/svg}rect")) >= 4
    assert "| **yes** |" in (out / "drift.md").read_text()


def test_sampling_cap_is_uniform_and_reproducible(s3_bucket: str, reference_file: Path, tmp_path: Path, mlci) -> None:
    put_window(s3_bucket, "svc/logs", seed=23)
    uri = f"s3://{s3_bucket}/svc/logs"
    recs = []
    for name in ("a", "b"):
        proc = mlci(*args(reference_file, uri, tmp_path / name, "--sample-cap", "400"))
        assert proc.returncode == 0, proc.stderr
        recs.append(json.loads((tmp_path / name / "drift" / "drift.json").read_text()))
    assert recs[0]["logs"]["rows_used"] == 400 and recs[0]["logs"]["sampled"] is True
    assert [f["statistic"] for f in recs[0]["features"]] == [f["statistic"] for f in recs[1]["features"]]


def test_schema_mismatch_exits_2_naming_each_column(s3_bucket: str, reference_file: Path, tmp_path: Path) -> None:
    recs = rows(columns(300, np.random.default_rng(5)))
    for r in recs:
        del r["age"], r["channel"]
        r["visits"] = "many"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"logs/dt={UNTIL}/a.jsonl", Body=jsonl(recs))
    proc = check(reference_file, f"s3://{s3_bucket}/logs", tmp_path / "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr
    assert "Traceback" not in err
    assert "column 'age' (numeric in the reference) is missing from the logs" in err
    assert "column 'channel' (categorical in the reference) is missing from the logs" in err
    assert "column 'visits' is numeric in the reference but holds non-numeric values" in err and "'many'" in err
    assert "income" not in err


def test_bad_inputs_exit_2(s3_bucket: str, reference_file: Path, tmp_path: Path, mlci) -> None:
    proc = mlci(*args(reference_file, f"s3://{s3_bucket}/nothing", tmp_path / "out"))
    assert proc.returncode == 2 and "no date-partitioned logs" in proc.stderr
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="old/dt=2020-01-01/a.jsonl", Body=b'{"age": 1}\n')
    proc = mlci(*args(reference_file, f"s3://{s3_bucket}/old", tmp_path / "out"))
    assert proc.returncode == 2 and "no logs under" in proc.stderr and "2026-11-16..2026-11-22" in proc.stderr
    not_ref = tmp_path / "x.json"
    not_ref.write_text('{"a": 1}')
    proc = mlci(*args(not_ref, f"s3://{s3_bucket}/old", tmp_path / "out"))
    assert proc.returncode == 2 and "is not a drift reference" in proc.stderr
    proc = mlci("drift", "check", "--reference", str(reference_file), "--logs", f"s3://{s3_bucket}/old",
                    "--window", "7 days")
    assert proc.returncode == 2 and "window '7 days' is not valid" in proc.stderr


def test_reference_in_s3_and_untrusted_names_escaped(s3_bucket: str, tmp_path: Path, mlci) -> None:
    """The reference round-trips through S3; a hostile category name ends up escaped in every report."""
    data = tmp_path / "train.csv"
    data.write_bytes(csv_bytes(rows(columns(3000, np.random.default_rng(12)))))
    ref_uri = f"s3://{s3_bucket}/refs/reference.json"
    mlci("drift", "reference", "--data", str(data), "--out", ref_uri, check=True)
    recs = rows(columns(600, np.random.default_rng(13)))
    for r in recs[:200]:
        r["channel"] = "<script>alert(1)</script>"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"logs/dt={UNTIL}/a.jsonl", Body=jsonl(recs))
    proc = mlci(*args(ref_uri, f"s3://{s3_bucket}/logs", tmp_path / "out"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = tmp_path / "out" / "drift"
    assert json.loads((out / "drift.json").read_text())["drifted"] == ["channel"]
    for name in ("drift.html", "drift.md"):
        text = (out / name).read_text()
        assert "<script>" not in text and "&lt;script&gt;" in text


def test_large_window_is_sampled_uniformly_parsing_only_candidates(s3_bucket: str) -> None:
    """8 objects x 4,000 rows with cap 1,000: every object is represented in proportion (chi-square), and
    once the sample is full only lines that can still enter it are parsed."""
    from scipy import stats

    from mlci.drift.logs import read_window

    s3 = boto3.client("s3")
    rng = np.random.default_rng(41)
    for i in range(8):
        recs = rows(columns(4000, rng))
        for r in recs:
            r["part"] = i
        s3.put_object(Bucket=s3_bucket, Key=f"big/dt=2026-11-{15 + i % 8:02d}/p{i}.jsonl", Body=jsonl(recs))
    import datetime as dt

    until = dt.datetime(2026, 11, 22, 23, tzinfo=dt.timezone.utc)
    got = read_window(f"s3://{s3_bucket}/big", "8d", cap=1000, seed=7, until=until, jobs=3)
    assert got.info["rows_read"] == 32000 and got.info["rows_used"] == 1000 and got.info["sampled"]
    assert got.info["rows_parsed"] < 32000 / 2
    per_object = np.bincount(np.asarray(got.columns["part"], dtype=int), minlength=8)
    assert stats.chisquare(per_object).pvalue > 0.001, per_object
    again = read_window(f"s3://{s3_bucket}/big", "8d", cap=1000, seed=7, until=until, jobs=1)
    assert again.columns["age"] == got.columns["age"]  # same rows whatever the download order


def test_malformed_lines_beyond_one_percent_are_an_error(s3_bucket: str) -> None:
    import datetime as dt

    from mlci.drift.logs import read_window
    from mlci.errors import UserError

    good = jsonl(rows(columns(500, np.random.default_rng(42)))).decode().splitlines()
    until = dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone.utc)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="few/dt=2026-11-22/a.jsonl", Body="\n".join([*good, "{oops", "[1]"]).encode())
    assert read_window(f"s3://{s3_bucket}/few", "1d", until=until).info["malformed"] == 2
    s3.put_object(Bucket=s3_bucket, Key="many/dt=2026-11-22/a.jsonl", Body="\n".join([*good, *["{oops"] * 20]).encode())
    with pytest.raises(UserError, match=r"20 of 520 log records checked are malformed; first: .*a.jsonl:501: not JSON"):
        read_window(f"s3://{s3_bucket}/many", "1d", until=until)


def test_window_in_days_and_hours() -> None:
    import datetime as dt

    from mlci.drift.logs import parse_window, window_days

    until = dt.datetime(2026, 11, 22, 6, tzinfo=dt.timezone.utc)
    assert window_days(parse_window("7d"), until) == (dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    assert window_days(parse_window("1d"), until) == (dt.date(2026, 11, 22), dt.date(2026, 11, 22))
    assert window_days(parse_window("12h"), until) == (dt.date(2026, 11, 21), dt.date(2026, 11, 22))
    assert window_days(parse_window("36h"), until) == (dt.date(2026, 11, 20), dt.date(2026, 11, 22))
