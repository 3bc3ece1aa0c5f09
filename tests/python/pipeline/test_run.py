"""`mlci pipeline run`: the stages in Jenkins' order, headers, timings, summary, stop at the first failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlci.errors import UserError
from mlci.pipeline.run import StageOutcome, parse_stages, summary_table

from ..build.service import GROUP, copy_service, names_with_prefix, service  # noqa: F401
from ..conftest import run_mlci


def test_stage_selection_keeps_pipeline_order() -> None:
    configured = ["build", "unit", "acceptance", "accuracy", "deploy"]
    assert parse_stages(None, configured) == ["build", "unit", "acceptance", "accuracy"]
    assert parse_stages("accuracy,unit", configured) == ["unit", "accuracy"]
    with pytest.raises(UserError, match="deploy"):
        parse_stages("build,deploy", configured)
    with pytest.raises(UserError, match="choose from"):
        parse_stages("lint", configured)


def test_summary_table_lists_every_stage() -> None:
    table = summary_table([StageOutcome("build", "ok", 0, 12.34, "img:abc"),
                           StageOutcome("unit", "FAILED", 1, 3.0, "unit tests failed"),
                           StageOutcome("acceptance", "not run", None, None)])
    lines = table.splitlines()
    assert lines[0].split() == ["stage", "result", "exit", "time"]
    assert lines[2].split()[:4] == ["build", "ok", "0", "12.3s"]
    assert lines[3].split()[:4] == ["unit", "FAILED", "1", "3.0s"]
    assert lines[4].split() == ["acceptance", "not", "run"]


@GROUP
def test_full_local_pipeline_passes(service, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    proc = run_mlci("pipeline", "run", "--out", str(out), cwd=service.root, env=service.env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    text = proc.stdout
    positions = [text.index(f"] {name} ===") for name in ("build", "unit", "acceptance", "accuracy")]
    assert positions == sorted(positions), "stages out of order"
    assert "=== pipeline PASSED (exit 0)" in text
    for name in ("build", "unit", "acceptance", "accuracy"):
        assert any(line.split()[:2] == [name, "ok"] for line in text.splitlines()), name
    assert f"results: {out}" in text
    assert json.loads((out / "build.json").read_text())["image"]["id"] == service.record["image"]["id"]
    assert json.loads((out / "accuracy" / "smoke" / "accuracy.json").read_text())["verdict"] == "PASS"
    assert (out / "junit" / "unit.xml").is_file() and (out / "junit" / "acceptance.xml").is_file()


@GROUP
def test_pipeline_stops_at_the_first_failing_stage(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    cfg = root / "ml-ci.yaml"
    cfg.write_text(cfg.read_text().replace("timeout: 60}", "timeout: 3}").replace(
        "serve: {command: python3 -m digits_service.server,", "serve: {command: 'sleep 60',"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "build.json").write_text((service.out / "build.json").read_text())
    proc = run_mlci("pipeline", "run", "--stages", "unit,acceptance,accuracy", "--out", str(out), cwd=root,
                    env=service.env, timeout=600)
    assert proc.returncode == 1
    rows = {line.split()[0]: line.split()[1:3] for line in proc.stdout.splitlines()
            if line.split() and line.split()[0] in ("unit", "acceptance", "accuracy")}
    assert rows["unit"] == ["ok", "0"]
    assert rows["acceptance"] == ["FAILED", "1"]
    assert rows["accuracy"] == ["not", "run"]
    assert "=== pipeline FAILED (exit 1)" in proc.stdout
    assert "stage acceptance failed" in proc.stderr and "did not become healthy" in proc.stderr
    assert not (out / "accuracy").exists()
    assert names_with_prefix(service.prefix) == []
