"""ml-ci.yaml validation through the real CLI: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mlci.config import load_config, validate
from mlci.config.docs import reference_table

from ..conftest import EXAMPLE, run_mlci

MINIMAL = "service: digits\n"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ml-ci.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def check(path: Path):
    return run_mlci("config", "check", "-c", str(path))


def test_example_config_is_valid():
    proc = check(EXAMPLE / "ml-ci.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_version():
    proc = run_mlci("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("mlci ")


def test_defaults_applied_in_one_place(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg["image"]["name"] == "mlci/digits"
    assert cfg["image"]["base"] == "python:3.11-slim"
    assert cfg["artifacts"]["models"]["lock"] == "models.lock"
    assert cfg["pipeline"]["integration_branches"] == ["develop", "release/*"]


def test_unknown_key_with_did_you_mean_and_line(tmp_path):
    p = write(tmp_path, """\
        service: digits
        accuracy:
          predict: m:f
          suites:
            smoke:
              dataset: t.npz
              gates:
                - {metric: accuracy, min: 0.9}
              max_sample: 100
        """)
    proc = check(p)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{p}:9: accuracy.suites.smoke.max_sample: unknown key 'max_sample' (did you mean 'max_samples'?)" in proc.stderr
    assert "valid: dataset, every_build, max_samples" in proc.stderr


@pytest.mark.parametrize(
    "body, expected",
    [
        ("service: digits\nimage: {push: 'yes'}\n", "image.push: got string 'yes'; expected true or false"),
        ("service: digits\naccuracy:\n  predict: m:f\n  suites:\n    s: {dataset: t.npz, gates: [{metric: accuracy, min: 1.5}]}\n",
         "accuracy.suites.s.gates[0].min: 1.5 is out of range for accuracy; expected a number in [0, 1]"),
        ("image: {name: x}\n", "service: required key is missing"),
        ("service: digits\naccuracy:\n  predict: m:f\n  suites:\n    s: {dataset: t.npz, gates: [{metric: acuracy, min: 0.9}]}\n",
         "'acuracy' is not allowed (did you mean 'accuracy'?); valid: accuracy, precision"),
        ("service: Digits_Svc\n", "service: 'Digits_Svc' is not valid; expected a DNS label"),
        ("service: digits\naccuracy:\n  predict: m:f\n  suites:\n    s: {dataset: nope, gates: [{metric: accuracy, min: 0.9}]}\n",
         "accuracy.suites.s.dataset: 'nope' is not a dataset under artifacts.data"),
        ("service: digits\naccuracy:\n  predict: m:f\n  suites:\n    s: {dataset: t.npz, gates: [{metric: accuracy, min: 0.9, alpha: 0.7}]}\n",
         "alpha: 0.7 is out of range; expected a number in (0, 0.5)"),
        ("service: digits\naccuracy:\n  predict: m:f\n  suites:\n    s: {dataset: t.npz, gates: [{metric: rmse, min: 0.9}]}\n",
         "metric 'rmse' is lower-is-better: the gate needs `max`"),
        ("service: digits\nartifacts: {models: {dest: ../../etc}}\n", "artifacts.models.dest: '../../etc' escapes the repository"),
        ("service: digits\nservice: other\n", "duplicate key 'service'"),
    ],
)
def test_broken_configs_exit_2_with_message(tmp_path, body, expected):
    proc = check(write(tmp_path, body))
    assert proc.returncode == 2, proc.stdout
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_all_errors_reported_at_once(tmp_path):
    proc = check(write(tmp_path, "service: digits\nimage: {pushh: true, base: 3}\ntests: 5\n"))
    assert proc.returncode == 2
    assert "3 error(s)" in proc.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        ("service: [unclosed\n", "not valid YAML"),
        ("", "is empty"),
        ("# only a comment\n", "holds no YAML mapping"),
        ("- a\n- b\n", "must be a YAML mapping at the top level"),
    ],
)
def test_bad_files_one_clear_line(tmp_path, text, expected):
    proc = check(write(tmp_path, text))
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_file(tmp_path):
    proc = check(tmp_path / "nope.yaml")
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_show_redacts_secrets(tmp_path):
    p = write(tmp_path, """\
        service: digits
        deploy:
          environments:
            staging:
              branch: develop
              namespace: ml-staging
              env: {API_TOKEN: hunter2, LOG_LEVEL: info, DB_URL: "postgres://u:pw@db/x"}
        """)
    proc = run_mlci("config", "show", "--json", "-c", str(p))
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)["deploy"]["environments"]["staging"]["env"]
    assert env == {"API_TOKEN": "***", "LOG_LEVEL": "info", "DB_URL": "***"}
    assert "hunter2" not in proc.stdout


def test_show_redacts_api_keys_and_tokens_inside_commands(tmp_path):
    p = write(tmp_path, """\
        service: digits
        tests:
          unit: {command: 'curl -fsS -H "Authorization: Bearer tok-1234abcd" http://svc && API_KEY=k-5678efgh pytest'}
        train: {command: 'python3 train.py --api-key=k-9999zzzz --token "$TOKEN"', outputs: [m.npz]}
        deploy:
          environments:
            prod: {branch: main, namespace: ml-prod, env: {OPENAI_API_KEY: sk-abcdef123456, LOG_LEVEL: info}}
        """)
    for fmt in ([], ["--json"]):
        proc = run_mlci("config", "show", *fmt, "-c", str(p))
        assert proc.returncode == 0, proc.stderr
        for secret in ("tok-1234abcd", "k-5678efgh", "k-9999zzzz", "sk-abcdef123456"):
            assert secret not in proc.stdout, (secret, proc.stdout)
        assert "Authorization: Bearer ***" in proc.stdout and "API_KEY=*** pytest" in proc.stdout
        assert '--token \\"$TOKEN\\"' in proc.stdout or '--token "$TOKEN"' in proc.stdout  # a reference, no secret
        assert "LOG_LEVEL: info" in proc.stdout or '"LOG_LEVEL": "info"' in proc.stdout
        assert "&" not in proc.stdout.replace("&&", "")  # no YAML anchors (&id001) in what mlci prints


def test_validate_is_pure_and_reports_issues():
    resolved, issues = validate({"service": "x", "image": {"dockerfile": 3}})
    assert [i.path for i in issues] == ["image.dockerfile"]


def test_readme_reference_is_generated_from_schema():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert reference_table() in readme, "README reference drifted: run `make docs`"
