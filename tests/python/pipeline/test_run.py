"""`mlci pipeline run`: the stages in Jenkins' order, headers, timings, summary, stop at the first failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlci.errors import UserError
from mlci.pipeline.run import StageOutcome, parse_stages, summary_table

from ..conftest import run_mlci
from ..image.service import churn, copy_service, image_group, names_with_prefix, service  # noqa: F401

GROUP = image_group(__name__)


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
def test_full_local_pipeline_passes_on_the_probability_service(churn, tmp_path: Path) -> None:  # noqa: F811
    """The second example (scikit-learn in requirements.txt, predict returns probabilities, accuracy + macro-F1 +
    AUC gates in one suite) through the same pipeline: built air-gapped, tested in its image, reported."""
    out = tmp_path / "out"
    proc = run_mlci("pipeline", "run", "--out", str(out), cwd=churn.root, env=churn.env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "=== pipeline PASSED (exit 0)" in proc.stdout
    for name in ("build", "unit", "acceptance", "accuracy"):
        assert any(line.split()[:2] == [name, "ok"] for line in proc.stdout.splitlines()), name
    rec = json.loads((out / "accuracy" / "smoke" / "accuracy.json").read_text())
    assert rec["verdict"] == "PASS" and [g["metric"] for g in rec["gates"]] == ["accuracy", "macro_f1", "auc"]
    assert all(g["verdict"] == "PASS" for g in rec["gates"])
    assert rec["plan"]["output"]["kind"] == "probabilities" and rec["plan"]["output"]["threshold"] == 0.5
    # every metric from the same transformation: F1 on thresholded labels (not raw probabilities), AUC on scores
    assert 0.9 < rec["metrics"]["macro_f1"] < 1 and 0.95 < rec["metrics"]["auc"] < 1
    assert rec["gates"][1]["estimate"] == pytest.approx(rec["metrics"]["macro_f1"], abs=0.02)
    assert len(rec["outcomes"]["predictions"][0]) == 2  # the raw probabilities are recorded
    assert rec["image"]["digest"] == json.loads((out / "build.json").read_text())["image"]["digest"]
    report = (out / "report" / "report.md").read_text()
    assert "churns" in report and "0.5" in report


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


@GROUP
def test_recorded_pass_is_reused_and_is_the_change_gates_baseline(service, tmp_path: Path) -> None:  # noqa: F811
    """Result cache and change-gate baseline, both from the history store on the real S3 server."""
    from ..image.service import git

    root = copy_service(service.root, tmp_path / "digits")
    cfg = root / "ml-ci.yaml"
    text = cfg.read_text().replace(f"s3://{service.bucket}/history", f"s3://{service.bucket}/history-reuse")
    text = text.replace("    full:\n", "    vs-main:\n      dataset: digits-test\n      max_samples: 2000\n"
                                      "      gates:\n        - {metric: accuracy, kind: change, margin: 0.03}\n"
                                      "    full:\n")
    cfg.write_text(text)
    git(root, "commit", "-qam", "history for this test; a change-gated suite")
    built = tmp_path / "built"  # the image carries its ml-ci.yaml: rebuild (the model layer stays cached)
    assert run_mlci("build", "--out", str(built), cwd=root, env=service.env, timeout=600).returncode == 0
    build_record = json.loads((built / "build.json").read_text())

    def run(*args: str, out: Path) -> tuple[int, str]:
        out.mkdir(exist_ok=True)
        (out / "build.json").write_text((built / "build.json").read_text())
        proc = run_mlci(*args, "--out", str(out), cwd=root, env=service.env, timeout=600)
        return proc.returncode, proc.stdout + proc.stderr

    # no baseline yet: the change gate cannot be judged -> bad input, named
    code, text = run("test", "accuracy", "--suite", "vs-main", out=tmp_path / "o0")
    assert code == 2 and "no baseline model" in text and "Traceback" not in text, text[-2000:]

    code, text = run("pipeline", "run", "--stages", "accuracy", "--record", out=tmp_path / "o1")
    assert code == 0, text[-3000:]
    assert "[report] recorded smoke PASS" in text and (tmp_path / "o1" / "report" / "report.html").is_file()

    code, text = run("test", "accuracy", "--suite", "smoke", out=tmp_path / "o2")
    assert code == 0 and "unchanged: this image, dataset, suite and baseline match record" in text, text[-3000:]
    reused = json.loads((tmp_path / "o2" / "accuracy" / "smoke" / "accuracy.json").read_text())
    assert reused["verdict"] == "PASS" and reused["reused_from"]["record"]
    assert reused["image"]["digest"] == build_record["image"]["digest"]  # the deploy gate finds it for this image
    assert (tmp_path / "o2" / "accuracy" / "smoke" / "junit-accuracy.xml").is_file()

    code, text = run("test", "accuracy", "--suite", "smoke", "--force", out=tmp_path / "o3")
    assert code == 0 and "unchanged" not in text
    assert "reused_from" not in json.loads((tmp_path / "o3" / "accuracy" / "smoke" / "accuracy.json").read_text())

    # a later commit: the recorded model on main is the change gate's baseline (same model -> non-inferior)
    (root / "NOTES.md").write_text("a later commit\n")
    git(root, "add", "NOTES.md")
    git(root, "commit", "-qm", "later")
    # build.json still names the image of the earlier commit: refused, it is not HEAD's
    code, text = run("test", "accuracy", "--suite", "vs-main", out=tmp_path / "o4")
    assert code == 2 and "but HEAD is" in text and "Traceback" not in text, text[-2000:]
    assert run_mlci("build", "--out", str(built), cwd=root, env=service.env, timeout=600).returncode == 0
    code, text = run("test", "accuracy", "--suite", "vs-main", out=tmp_path / "o4")
    assert code == 0, text[-3000:]
    assert "baseline (suite smoke's record from history store" in text
    assert "predicting the planned samples in the baseline's own image" in text
    rec = json.loads((tmp_path / "o4" / "accuracy" / "vs-main" / "accuracy.json").read_text())
    assert rec["verdict"] == "PASS" and rec["gates"][0]["kind"] == "change"
    assert rec["baseline"]["model_files"] == build_record["models"]["files"] and rec["baseline"]["method"] == "image"
