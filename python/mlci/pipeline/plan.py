"""`mlci pipeline plan`: the branch policy, decided here so the Jenkins Groovy stays thin.

The Jenkins steps (vars/*.groovy) ask this command what to do for a (branch, build cause) pair and execute the
answer: which stages run in which order, which accuracy suites (every-build smoke vs scheduled heavy, sharded
across which agent label), which cron specs to register, which environment to deploy to and behind which
approval, every timeout, and how mlci itself is run. Keeping the policy in Python means it is unit-tested over
the whole branch x cause matrix without a Jenkins, and a laptop sees the same decision
(`mlci pipeline plan --branch develop --cause timer`).

The plan never holds nulls: absent strings are "" and absent sections carry `enabled: false`, because Jenkins'
JSON reader turns null into an object that is truthy in Groovy.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
from typing import Any

from ..config import load_config
from ..errors import UserError

PLAN_SCHEMA = "mlci.plan/1"
CAUSES = ("push", "timer", "user", "pr")
# Stage names in the plan are the config's stage names (pipeline.stages); the Jenkins steps map 1:1 onto them.
STAGE_STEP = {"build": "buildImage", "unit": "unitTests", "acceptance": "acceptanceTests",
              "accuracy": "accuracyTests", "deploy": "deploy"}


def matches(branch: str, patterns: list[str]) -> bool:
    """Branch globs as in ml-ci.yaml ('release/*'); case-sensitive, like git refs."""
    return any(fnmatch.fnmatchcase(branch, p) for p in patterns)


def registry_host(image_name: str) -> str:
    """The registry part of an image name ('' for Docker Hub), for `docker login` in Jenkins."""
    first, sep, _ = image_name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return ""


def _environment(cfg: dict[str, Any], name: str, env: dict[str, Any]) -> dict[str, Any]:
    return {
        "enabled": True,
        "environment": name,
        "namespace": env["namespace"],
        "branch": env["branch"],
        "approval": bool(env["approval"]),
        "approvers": env["approvers"] or "",
        "approval_timeout": env["approval_timeout"],
        # One lock per service and environment: two builds never roll out to the same place at once.
        "lock": f"mlci-{cfg['service']}-{name}",
        "timeout": cfg["pipeline"]["stage_timeout"],
        "kubeconfig_credentials": env["kubeconfig_credentials"] or "",
        # 1-based position in deploy.environments: Jenkins' milestone ordinals and input ids per environment
        # (the JSON's keys are sorted, so the order travels as data).
        "order": list(cfg["deploy"]["environments"]).index(name) + 1,
    }


NO_DEPLOY: dict[str, Any] = {"enabled": False, "environment": "", "namespace": "", "branch": "", "approval": False,
                             "approvers": "", "approval_timeout": 0, "lock": "", "timeout": 0,
                             "kubeconfig_credentials": ""}


def deploy_target(cfg: dict[str, Any], branch: str) -> dict[str, Any]:
    """The environment this branch deploys to, or NO_DEPLOY. Two environments for one branch is ambiguous."""
    hits = [name for name, env in cfg["deploy"]["environments"].items() if matches(branch, [env["branch"]])]
    if len(hits) > 1:
        raise UserError(f"branch '{branch}' deploys to more than one environment: {', '.join(hits)}",
                        where="deploy.environments", hint="give each environment a distinct `branch`")
    if not hits:
        return dict(NO_DEPLOY)
    return _environment(cfg, hits[0], cfg["deploy"]["environments"][hits[0]])


def _suite(cfg: dict[str, Any], name: str, suite: dict[str, Any], mode: str) -> dict[str, Any]:
    return {"name": name, "mode": mode, "shards": suite["shards"],
            "agent": suite["agent"] or cfg["pipeline"]["agent"] or "", "timeout": suite["timeout"]}


def scheduled_suites(cfg: dict[str, Any], branch: str, integration: bool) -> list[tuple[str, dict[str, Any]]]:
    """Suites with a schedule that applies to this branch (only ever on integration branches)."""
    if not integration:
        return []
    out = []
    for name, suite in cfg["accuracy"]["suites"].items():
        branches = suite["branches"] or cfg["pipeline"]["integration_branches"]
        if suite["schedule"] and matches(branch, branches):
            out.append((name, suite))
    return out


# Minutes on top of train.timeout for the training image build, data pull, evaluation and publishing.
TRAIN_OVERHEAD_MINUTES = 30
NO_TRAIN: dict[str, Any] = {"enabled": False, "stage": "Train", "agent": "", "timeout": 0, "trigger": "",
                            "schedule": "", "reason": ""}


def train_entry(cfg: dict[str, Any], branch: str, cause: str, is_pr: bool, requested: bool) -> dict[str, Any]:
    """Whether mlPipeline trains in this build, and where/how long; `reason` says why not (never null).

    Only with train.in_pipeline, only on train.branches (default the integration branches): a timer build
    there trains on train.schedule (the job has ONE cron list, so a timer build cannot tell which spec fired:
    it runs the scheduled suites and the training); a user build trains when it asks for it. Pull requests
    never train: a model published from unreviewed code would bypass review.
    """
    t = cfg.get("train")
    out = dict(NO_TRAIN)
    if not t or not t["in_pipeline"]:
        out["reason"] = "train.in_pipeline is not set"
        return out
    branches = t["branches"] or cfg["pipeline"]["integration_branches"]
    on_branch = not is_pr and matches(branch, branches)
    out["schedule"] = (t["schedule"] or "") if on_branch else ""
    if is_pr:
        out["reason"] = "pull requests never train"
    elif not on_branch:
        out["reason"] = f"branch '{branch}' is not in train.branches"
    elif cause == "timer" and not t["schedule"]:
        out["reason"] = "train.schedule is not set"
    elif cause == "user" and not requested:
        out["reason"] = "not requested (mlPipeline(train: true) or the MLCI_TRAIN build parameter)"
    elif cause not in ("timer", "user"):
        out["reason"] = "only timer builds (train.schedule) and user builds that ask for it train"
    else:
        out.update(enabled=True, trigger=cause, agent=t["agent"] or cfg["pipeline"]["agent"] or "",
                   timeout=math.ceil(t["timeout"]) + TRAIN_OVERHEAD_MINUTES)
    return out


def make_plan(cfg: dict[str, Any], branch: str, cause: str = "push", change_target: str = "",
              train_requested: bool = False) -> dict[str, Any]:
    """The whole decision for one build. Pure: resolved config in, plan out.

    - pull requests (cause 'pr' or a change target) and feature branches: the stages, smoke suites, no deploy;
    - a branch named by a deploy environment (develop -> staging, main -> production): the same, then deploy;
    - integration branches (pipeline.integration_branches) register the heavy suites' cron; a timer-triggered
      build there runs build + the scheduled suites and never deploys;
    - train.in_pipeline: a `train` entry (see train_entry) whose schedule joins the cron list, so that one
      properties() call registers every schedule (a second call would replace the first).
    """
    if cause not in CAUSES:
        raise UserError(f"unknown build cause '{cause}'", hint=f"one of {', '.join(CAUSES)}")
    if not branch:
        raise UserError("no branch name", hint="pass --branch (Jenkins: BRANCH_NAME)")
    pipe = cfg["pipeline"]
    is_pr = cause == "pr" or bool(change_target)
    integration = not is_pr and matches(branch, pipe["integration_branches"])
    timer = cause == "timer" and not is_pr
    scheduled = scheduled_suites(cfg, branch, integration)
    every = [(n, s) for n, s in cfg["accuracy"]["suites"].items() if s["every_build"]]

    if timer and scheduled:
        suites = [_suite(cfg, n, s, "scheduled") for n, s in scheduled]
    else:
        suites = [_suite(cfg, n, s, "every_build") for n, s in every]
    deploy = dict(NO_DEPLOY) if (is_pr or timer) else deploy_target(cfg, branch)

    tests = cfg["tests"]
    stage_timeout = pipe["stage_timeout"]
    wanted = ("build", "accuracy") if timer else tuple(pipe["stages"])
    stages: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for name in pipe["stages"]:
        reason = ""
        timeout = stage_timeout
        if name == "deploy" and (is_pr or timer):
            reason = "pull requests never deploy" if is_pr else "timer builds never deploy"
        elif name not in wanted:
            reason = "a timer build runs only the build and the scheduled suites"
        elif name in ("unit", "acceptance"):
            if tests[name] is None:
                reason = f"tests.{name} is not configured"
            else:
                timeout = tests[name]["timeout"]
        elif name == "accuracy":
            if not suites:
                reason = "no accuracy suite applies (every_build suites, or scheduled ones on a timer build)"
            else:
                # Suites run one after another; each also has its own timeout inside the stage.
                timeout = sum(s["timeout"] for s in suites) + stage_timeout
        elif name == "deploy" and not deploy["enabled"]:
            reason = f"no deploy environment for branch '{branch}'"
        if reason:
            skipped.append({"name": name, "reason": reason})
        else:
            stages.append({"name": name, "step": STAGE_STEP[name], "timeout": timeout})
    if not any(s["name"] == "deploy" for s in stages):
        deploy = dict(NO_DEPLOY)

    train = train_entry(cfg, branch, cause, is_pr, train_requested)
    crons = sorted({s["schedule"] for _, s in scheduled} | ({train["schedule"]} if train["schedule"] else set()))
    post = cfg["report"]["post"]
    image = cfg["image"]
    return {
        "schema": PLAN_SCHEMA,
        "service": cfg["service"],
        "branch": branch,
        "cause": "pr" if is_pr else cause,
        "change_target": change_target or "",
        "kind": "pull-request" if is_pr else "integration" if integration else "branch",
        "stages": stages,
        "stage_timeout": stage_timeout,
        "skipped": skipped,
        "accuracy": {
            "suites": suites if any(s["name"] == "accuracy" for s in stages) else [],
            "inconclusive": cfg["accuracy"]["inconclusive"],
            # Every configured suite, for a hand-written `accuracyTests(suites: [...])`.
            "available": {n: _suite(cfg, n, s, "scheduled" if s["schedule"] else "every_build" if s["every_build"]
                                    else "manual") for n, s in cfg["accuracy"]["suites"].items()},
            "post_report": bool(is_pr and post["provider"] and post["token_credentials"]),
            # Branch builds append their records to the history store (baselines, trends, the deploy gate);
            # pull requests do not, so a PR's image never counts as a passed one.
            "record_history": bool(cfg["report"]["history"] and not is_pr),
        },
        # `manage`: Jenkins sets the job's triggers (possibly to none, removing a stale cron) only on
        # integration branches; elsewhere it leaves the job's properties alone.
        # Also on train branches outside the integration ones, so train.schedule is registered there too.
        "triggers": {"manage": integration or bool(train["schedule"]), "cron": crons},
        "train": train,
        "deploy": deploy,
        "environments": {name: _environment(cfg, name, env) for name, env in cfg["deploy"]["environments"].items()},
        # No runner_image: "" and Jenkins uses the MLCI_RUNNER_IMAGE its administrator set (docs/jenkins.md).
        "runner": {"kind": pipe["runner"], "image": pipe["runner_image"] or ""},
        "agent": pipe["agent"] or "",
        "credentials": {
            "artifacts": cfg["artifacts"]["credentials"] or "",
            "registry": image["registry_credentials"] or "",
            "report_token": post["token_credentials"] or "",
            "git": ((cfg.get("train") or {}).get("git_credentials")) or "",
        },
        "image": {"name": image["name"], "registry": registry_host(image["name"]), "push": bool(image["push"])},
    }


def render_text(plan: dict[str, Any]) -> str:
    """A person's view of the plan (the JSON is for Jenkins)."""
    lines = [f"{plan['service']}: branch {plan['branch']} ({plan['kind']}), cause {plan['cause']}"]
    for s in plan["stages"]:
        lines.append(f"  run   {s['name']:<11} timeout {s['timeout']} min")
    for s in plan["skipped"]:
        lines.append(f"  skip  {s['name']:<11} {s['reason']}")
    for s in plan["accuracy"]["suites"]:
        where = f" on '{s['agent']}'" if s["agent"] else ""
        lines.append(f"  suite {s['name']} ({s['mode']}, {s['shards']} shard(s){where}, {s['timeout']} min)")
    if plan["triggers"]["cron"]:
        lines.append(f"  cron  {' | '.join(plan['triggers']['cron'])}")
    t = plan["train"]
    if t["enabled"]:
        lines.append(f"  train {t['trigger']} build on '{t['agent'] or 'any agent but the controller'}', "
                     f"{t['timeout']} min")
    d = plan["deploy"]
    if d["enabled"]:
        gate = f", approval by {d['approvers'] or 'anyone'} within {d['approval_timeout']} min" if d["approval"] else ""
        lines.append(f"  deploy {d['environment']} (namespace {d['namespace']}{gate}, lock {d['lock']})")
    image = plan["runner"]["image"] or "$MLCI_RUNNER_IMAGE"
    lines.append(f"  runner {plan['runner']['kind']} {image if plan['runner']['kind'] == 'docker' else ''}".rstrip())
    return "\n".join(lines) + "\n"


def register(cmds: argparse._SubParsersAction) -> None:
    p = cmds.add_parser("plan", help="what Jenkins runs for a branch and build cause (the branch policy)")
    p.add_argument("-c", "--config", help="path to ml-ci.yaml (default ./ml-ci.yaml or $MLCI_CONFIG)")
    p.add_argument("--branch", help="branch being built (default: BRANCH_NAME, else git's current branch)")
    p.add_argument("--cause", choices=CAUSES, default="push", help="what started the build (default push)")
    p.add_argument("--change-target", default="", help="target branch of a pull request (Jenkins CHANGE_TARGET)")
    p.add_argument("--train", action="store_true",
                   help="a user build asks for the Train stage (mlPipeline(train: true) / MLCI_TRAIN)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON (what the Jenkins steps read)")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from ..gitinfo import branch as git_branch

    cfg = load_config(args.config)
    plan = make_plan(cfg.data, args.branch or git_branch(cfg.root) or "", args.cause, args.change_target or "",
                     train_requested=args.train)
    print(json.dumps(plan, indent=2, sort_keys=True) if args.json else render_text(plan), end="\n" if args.json else "")
    return 0
