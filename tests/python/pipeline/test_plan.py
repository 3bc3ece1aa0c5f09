"""The branch policy (`mlci pipeline plan`) over the branch x build-cause matrix, plus the real CLI."""

from __future__ import annotations

import copy
import json
import textwrap
from typing import Any

import pytest

from mlci.config import validate
from mlci.errors import UserError
from mlci.pipeline.plan import make_plan, matches, registry_host

from ..conftest import EXAMPLE, run_mlci

GATE = [{"metric": "accuracy", "min": 0.9}]
BASE: dict[str, Any] = {
    "service": "digits",
    "image": {"name": "registry.example.com:5000/ml/digits", "registry_credentials": "reg-cred"},
    "artifacts": {"credentials": "s3-cred", "data": {"t": {"uri": "s3://bucket/t.npz"}}},
    "tests": {"unit": {"command": "pytest tests/unit", "timeout": 11},
              "acceptance": {"command": "pytest tests/acceptance", "timeout": 12}},
    "accuracy": {
        "predict": "svc.inference:predict",
        "inconclusive": "fail",
        "suites": {
            "smoke": {"dataset": "t", "every_build": True, "gates": GATE, "timeout": 5},
            "full": {"dataset": "t", "schedule": "H 2 * * *", "shards": 4, "agent": "gpu", "timeout": 90,
                     "gates": GATE},
            "weekly": {"dataset": "t", "schedule": "H 4 * * 0", "branches": ["develop"], "gates": GATE},
        },
    },
    "report": {"post": {"provider": "github", "repo": "o/r", "token_credentials": "gh-token"}},
    "deploy": {"environments": {
        "staging": {"branch": "develop", "namespace": "ml-staging"},
        "production": {"branch": "main", "namespace": "ml-prod", "approval": True, "approvers": "leads",
                       "approval_timeout": 30, "kubeconfig_credentials": "kube-prod"},
    }},
    "pipeline": {"stage_timeout": 20, "agent": "docker"},
}


def config(**overrides: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    resolved, issues = validate(raw)
    assert not issues, issues
    return resolved


CFG = config()


def names(plan: dict[str, Any]) -> list[str]:
    return [s["name"] for s in plan["stages"]]


def suites(plan: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(s["name"], s["mode"], s["shards"]) for s in plan["accuracy"]["suites"]]


FULL = ["build", "unit", "acceptance", "accuracy"]

# (branch, cause, change_target) -> (stages, suites, deploy environment, crons)
MATRIX = [
    ("feature/login", "push", "", FULL, [("smoke", "every_build", 1)], "", []),
    ("feature/login", "user", "", FULL, [("smoke", "every_build", 1)], "", []),
    ("feature/login", "timer", "", ["build", "accuracy"], [("smoke", "every_build", 1)], "", []),
    ("PR-7", "pr", "develop", FULL, [("smoke", "every_build", 1)], "", []),
    ("PR-7", "push", "main", FULL, [("smoke", "every_build", 1)], "", []),
    ("develop", "push", "", [*FULL, "deploy"], [("smoke", "every_build", 1)], "staging", ["H 2 * * *", "H 4 * * 0"]),
    ("develop", "user", "", [*FULL, "deploy"], [("smoke", "every_build", 1)], "staging", ["H 2 * * *", "H 4 * * 0"]),
    ("develop", "timer", "", ["build", "accuracy"], [("full", "scheduled", 4), ("weekly", "scheduled", 1)], "",
     ["H 2 * * *", "H 4 * * 0"]),
    ("release/2.1", "push", "", FULL, [("smoke", "every_build", 1)], "", ["H 2 * * *"]),
    ("release/2.1", "timer", "", ["build", "accuracy"], [("full", "scheduled", 4)], "", ["H 2 * * *"]),
    ("main", "push", "", [*FULL, "deploy"], [("smoke", "every_build", 1)], "production", []),
    ("main", "user", "", [*FULL, "deploy"], [("smoke", "every_build", 1)], "production", []),
    ("main", "timer", "", ["build", "accuracy"], [("smoke", "every_build", 1)], "", []),
]


@pytest.mark.parametrize(("branch", "cause", "target", "stages", "want_suites", "env", "crons"), MATRIX)
def test_branch_cause_matrix(branch, cause, target, stages, want_suites, env, crons):
    plan = make_plan(CFG, branch, cause, target)
    assert names(plan) == stages
    assert suites(plan) == want_suites
    assert plan["deploy"]["enabled"] is bool(env)
    assert plan["deploy"]["environment"] == env
    assert plan["triggers"]["cron"] == crons
    # Cron is managed (set, or cleared) only on integration branches, never for pull requests.
    assert plan["triggers"]["manage"] is (branch in ("develop", "release/2.1") and cause != "pr" and not target)
    assert plan["schema"] == "mlci.plan/1"


def test_pull_request_never_deploys_even_from_a_deploy_branch():
    plan = make_plan(CFG, "main", "pr", "main")
    assert plan["kind"] == "pull-request" and not plan["deploy"]["enabled"]
    assert {"name": "deploy", "reason": "pull requests never deploy"} in plan["skipped"]
    assert plan["triggers"] == {"manage": False, "cron": []}
    assert plan["accuracy"]["post_report"] is True


def test_history_recorded_for_branch_builds_only():
    cfg = config(report={"history": "s3://bucket/history"})
    assert make_plan(cfg, "develop", "push")["accuracy"]["record_history"] is True
    assert make_plan(cfg, "develop", "timer")["accuracy"]["record_history"] is True
    assert make_plan(cfg, "PR-1", "pr", "main")["accuracy"]["record_history"] is False
    assert make_plan(CFG, "develop", "push")["accuracy"]["record_history"] is False  # no history store


def test_report_posted_only_for_pull_requests_with_a_token():
    assert make_plan(CFG, "develop", "push")["accuracy"]["post_report"] is False
    no_token = config(report__post={"provider": "github", "repo": "o/r"})
    assert make_plan(no_token, "PR-1", "pr", "main")["accuracy"]["post_report"] is False


def test_production_deploy_carries_approval_lock_and_timeouts():
    d = make_plan(CFG, "main", "push")["deploy"]
    assert d == {"enabled": True, "environment": "production", "namespace": "ml-prod", "branch": "main",
                 "approval": True, "approvers": "leads", "approval_timeout": 30, "lock": "mlci-digits-production",
                 "timeout": 20, "kubeconfig_credentials": "kube-prod", "order": 2}
    staging = make_plan(CFG, "develop", "push")["deploy"]
    assert staging["approval"] is False and staging["lock"] == "mlci-digits-staging" and staging["order"] == 1


def test_timer_build_never_deploys_and_says_why():
    plan = make_plan(CFG, "develop", "timer")
    assert {"name": "deploy", "reason": "timer builds never deploy"} in plan["skipped"]
    assert {"name": "unit", "reason": "a timer build runs only the build and the scheduled suites"} in plan["skipped"]


def test_suite_agent_and_timeouts():
    plan = make_plan(CFG, "develop", "timer")
    full, weekly = plan["accuracy"]["suites"]
    assert full["agent"] == "gpu" and full["timeout"] == 90
    assert weekly["agent"] == "docker"  # falls back to pipeline.agent
    timeouts = {s["name"]: s["timeout"] for s in plan["stages"]}
    assert timeouts == {"build": 20, "accuracy": 90 + 60 + 20}
    push = {s["name"]: s["timeout"] for s in make_plan(CFG, "feature/x")["stages"]}
    assert push == {"build": 20, "unit": 11, "acceptance": 12, "accuracy": 5 + 20}


def test_every_suite_is_available_for_hand_written_pipelines():
    available = make_plan(CFG, "feature/x")["accuracy"]["available"]
    assert {n: (s["mode"], s["shards"], s["agent"]) for n, s in available.items()} == {
        "smoke": ("every_build", 1, "docker"), "full": ("scheduled", 4, "gpu"), "weekly": ("scheduled", 1, "docker")}
    assert make_plan(CFG, "feature/x")["stage_timeout"] == 20


def test_stage_list_and_order_follow_config():
    cfg = config(pipeline__stages=["build", "accuracy", "unit"])
    assert names(make_plan(cfg, "develop")) == ["build", "accuracy", "unit"]


def test_unconfigured_tests_are_skipped_with_a_reason():
    cfg = config(tests={})
    plan = make_plan(cfg, "feature/x")
    assert names(plan) == ["build", "accuracy"]
    assert {"name": "unit", "reason": "tests.unit is not configured"} in plan["skipped"]


def test_no_suites_skips_accuracy():
    cfg = config(accuracy={"suites": {}})
    plan = make_plan(cfg, "feature/x")
    assert "accuracy" not in names(plan) and plan["accuracy"]["suites"] == []


def test_inconclusive_policy_and_runner():
    plan = make_plan(CFG, "feature/x")
    assert plan["accuracy"]["inconclusive"] == "fail"
    assert plan["runner"] == {"kind": "docker", "image": ""}  # Jenkins then uses $MLCI_RUNNER_IMAGE
    venv = make_plan(config(pipeline__runner="venv", pipeline__runner_image="reg/mlci:9"), "feature/x")
    assert venv["runner"] == {"kind": "venv", "image": "reg/mlci:9"}
    default = make_plan(config(accuracy__inconclusive="unstable"), "x")
    assert default["accuracy"]["inconclusive"] == "unstable"


def test_credentials_and_registry():
    plan = make_plan(CFG, "develop")
    assert plan["credentials"] == {"artifacts": "s3-cred", "registry": "reg-cred", "report_token": "gh-token",
                                   "git": ""}
    assert plan["image"]["registry"] == "registry.example.com:5000"
    assert registry_host("mlci/digits") == "" and registry_host("localhost/x") == "localhost"


def test_integration_branches_configurable():
    cfg = config(pipeline__integration_branches=["trunk"])
    # `full` defaults its branches to the integration branches; `weekly` names develop, which no longer qualifies.
    assert make_plan(cfg, "trunk", "push")["triggers"] == {"manage": True, "cron": ["H 2 * * *"]}
    assert make_plan(cfg, "develop", "push")["triggers"] == {"manage": False, "cron": []}


def test_plan_has_no_nulls():
    """Jenkins' readJSON makes null a truthy object; the plan uses '' and enabled:false instead."""
    def walk(v: Any) -> None:
        assert v is not None
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    for branch, cause, target, *_ in MATRIX:
        walk(make_plan(config(pipeline={}, report={}, image={}, artifacts={"data": {"t": {"uri": "s3://b/t.npz"}}}),
                       branch, cause, target))


TRAIN = {"command": "python train.py", "outputs": ["model.npz"], "in_pipeline": True, "schedule": "H 3 * * 1",
         "agent": "gpu-train", "timeout": 90.5, "git_credentials": "git-push"}
TRAIN_CFG = config(train=TRAIN)
SUITE_CRONS = {"develop": ["H 2 * * *", "H 4 * * 0"], "release/2.1": ["H 2 * * *"]}

# (branch, cause, change_target, train requested) -> trains?  Train branches default to the integration ones.
TRAIN_MATRIX = [
    ("develop", "timer", "", False, True),
    ("develop", "timer", "", True, True),
    ("release/2.1", "timer", "", False, True),
    ("develop", "user", "", True, True),
    ("develop", "user", "", False, False),
    ("develop", "push", "", True, False),
    ("develop", "push", "", False, False),
    ("PR-7", "pr", "develop", True, False),
    ("develop", "pr", "develop", True, False),
    ("develop", "user", "main", True, False),       # a change target makes it a pull request
    ("feature/x", "timer", "", True, False),
    ("feature/x", "user", "", True, False),
    ("main", "timer", "", True, False),
    ("main", "user", "", True, False),
]


@pytest.mark.parametrize(("branch", "cause", "target", "requested", "trains"), TRAIN_MATRIX)
def test_train_matrix(branch, cause, target, requested, trains):
    plan = make_plan(TRAIN_CFG, branch, cause, target, train_requested=requested)
    t = plan["train"]
    assert t["enabled"] is trains
    assert bool(t["reason"]) is not trains
    is_pr = cause == "pr" or bool(target)
    on_train_branch = branch in SUITE_CRONS and not is_pr
    # ONE cron list: the scheduled suites' specs plus train.schedule, registered wherever training applies.
    want = sorted(SUITE_CRONS.get(branch, []) + ["H 3 * * 1"]) if on_train_branch else []
    assert plan["triggers"] == {"manage": on_train_branch, "cron": want}
    if trains:
        assert t == {"enabled": True, "stage": "Train", "agent": "gpu-train", "timeout": 91 + 30, "trigger": cause,
                     "schedule": "H 3 * * 1", "reason": ""}
    if cause == "timer":
        assert not plan["deploy"]["enabled"] and "deploy" not in names(plan)
    if is_pr:
        assert t["reason"] == "pull requests never train"


def test_train_off_by_default_and_without_in_pipeline():
    for cfg in (CFG, config(train={**TRAIN, "in_pipeline": False})):
        plan = make_plan(cfg, "develop", "timer", train_requested=True)
        assert plan["train"]["enabled"] is False and plan["train"]["reason"] == "train.in_pipeline is not set"
        # train.schedule stays the train step's own job cron: mlPipeline does not register it.
        assert plan["triggers"]["cron"] == ["H 2 * * *", "H 4 * * 0"]


def test_train_branches_agent_fallback_and_git_credentials():
    cfg = config(train={**{k: v for k, v in TRAIN.items() if k != "agent"}, "branches": ["main"]})
    plan = make_plan(cfg, "main", "timer")
    assert plan["train"]["enabled"] and plan["train"]["agent"] == "docker"  # pipeline.agent
    # main is not an integration branch: the cron is managed for training alone.
    assert plan["triggers"] == {"manage": True, "cron": ["H 3 * * 1"]}
    assert not make_plan(cfg, "develop", "timer")["train"]["enabled"]
    assert make_plan(cfg, "develop", "timer")["triggers"]["cron"] == ["H 2 * * *", "H 4 * * 0"]
    assert plan["credentials"]["git"] == "git-push"
    no_schedule = config(train={k: v for k, v in TRAIN.items() if k != "schedule"})
    timer = make_plan(no_schedule, "develop", "timer")["train"]
    assert not timer["enabled"] and timer["reason"] == "train.schedule is not set"
    assert make_plan(no_schedule, "develop", "user", train_requested=True)["train"]["enabled"]
    bare = config(train=TRAIN, pipeline={})
    assert make_plan(bare, "develop", "user", train_requested=True)["train"]["agent"] == "gpu-train"


def test_train_plan_has_no_nulls_and_the_cli_flag():
    for branch, cause, target, requested, _ in TRAIN_MATRIX:
        text = json.dumps(make_plan(config(train={"command": "x", "outputs": ["m"], "in_pipeline": True}),
                                    branch, cause, target, train_requested=requested))
        assert "null" not in text


def test_cli_train_flag(tmp_path):
    cfg = tmp_path / "ml-ci.yaml"
    cfg.write_text(textwrap.dedent("""\
        service: s
        train: {command: "python train.py", outputs: [m.npz], in_pipeline: true, agent: gpu}
        """))
    base = ["pipeline", "plan", "-c", str(cfg), "--branch", "develop", "--cause", "user", "--json"]
    asked = json.loads(run_mlci(*base, "--train").stdout)["train"]
    assert asked["enabled"] and asked["trigger"] == "user" and asked["agent"] == "gpu"
    assert not json.loads(run_mlci(*base).stdout)["train"]["enabled"]
    text = run_mlci(*base[:-1], "--train").stdout
    assert "train user build on 'gpu'" in text


def test_ambiguous_and_bad_input():
    cfg = config(deploy={"environments": {"a": {"branch": "release/*", "namespace": "a"},
                                          "b": {"branch": "release/1", "namespace": "b"}}})
    with pytest.raises(UserError, match="more than one environment: a, b"):
        make_plan(cfg, "release/1")
    assert make_plan(cfg, "release/2")["deploy"]["environment"] == "a"
    with pytest.raises(UserError, match="unknown build cause"):
        make_plan(CFG, "main", "cron")
    with pytest.raises(UserError, match="no branch name"):
        make_plan(CFG, "")


def test_glob_matching():
    assert matches("release/1.2", ["release/*"]) and not matches("Release/1", ["release/*"])


def test_cli_json_for_the_example(tmp_path):
    proc = run_mlci("pipeline", "plan", "-c", str(EXAMPLE / "ml-ci.yaml"), "--branch", "develop",
                    "--cause", "timer", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert suites(plan) == [("full", "scheduled", 2)]
    assert names(plan) == ["build", "accuracy"]
    text = run_mlci("pipeline", "plan", "-c", str(EXAMPLE / "ml-ci.yaml"), "--branch", "main")
    assert text.returncode == 0 and "deploy production" in text.stdout and "approval" in text.stdout


def test_cli_user_errors_exit_2(tmp_path):
    cfg = tmp_path / "ml-ci.yaml"
    cfg.write_text(textwrap.dedent("""\
        service: s
        deploy:
          environments:
            a: {branch: "x*", namespace: a}
            b: {branch: "xy", namespace: b}
        """))
    proc = run_mlci("pipeline", "plan", "-c", str(cfg), "--branch", "xy", "--json")
    assert proc.returncode == 2 and "more than one environment" in proc.stderr and "Traceback" not in proc.stderr
    bad = run_mlci("pipeline", "plan", "-c", str(cfg), "--branch", "x", "--cause", "nightly")
    assert bad.returncode == 2
