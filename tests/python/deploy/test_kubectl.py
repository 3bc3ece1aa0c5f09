"""`mlci deploy` end to end through the real CLI against the scripted kubectl: argv, exit codes, records, logs."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import yaml

from mlci.deploy.kubectl import Kubectl, Redactor

from .conftest import DIGEST, KEY_DATA, OTHER_DIGEST, TOKEN, accuracy_record, deploy, deploy_in_process

PROD = ["--context", "prod-ctx", "-n", "ml-prod"]
STAGING = ["--context", "staging-ctx", "-n", "ml-staging"]
APPLY = ["apply", "--server-side", "--field-manager=mlci", "--force-conflicts", "-f", "-"]


@dataclass
class Proc:
    """The in-process run, shaped like subprocess.CompletedProcess so assertions read the same."""

    returncode: int
    stdout: str
    stderr: str


def assert_no_secrets(proc, kube) -> None:
    text = proc.stdout + proc.stderr
    for secret in (TOKEN, KEY_DATA, str(kube.kubeconfig), "config-7c1d"):
        assert secret not in text, f"{secret!r} leaked into the output"


def passed_build(repo) -> None:
    repo.write_build()
    repo.write_accuracy(accuracy_record(DIGEST))


def test_success_runs_the_exact_kubectl_sequence(repo, kube):
    passed_build(repo)
    proc = deploy(repo, kube, "--env", "production")
    assert proc.returncode == 0, proc.stderr
    assert kube.argvs() == [
        ["config", "get-contexts", "-o", "name"],
        ["config", "current-context"],  # production names no context: the current one, pinned for every call
        [*PROD, *APPLY],
        [*PROD, "rollout", "status", "deployment/digits", "--timeout=45s"],
    ]
    assert all(c["kubeconfig_set"] for c in kube.calls())  # the kubeconfig travels in the environment only
    assert not any(str(kube.kubeconfig) in arg for argv in kube.argvs() for arg in argv)
    applied = [d for d in yaml.safe_load_all(kube.calls()[2]["stdin"]) if d]
    assert [f"{d['kind']}/{d['metadata']['name']}" for d in applied] == [
        "Deployment/digits", "HorizontalPodAutoscaler/digits", "PodDisruptionBudget/digits", "Service/digits"]
    dep = applied[0]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.example.com/ml/digits@{DIGEST}"
    assert "replicas" not in dep["spec"]  # the HPA owns replicas; applying them would fight it
    record = repo.deploy_record()
    assert record["schema"] == "mlci.deploy/1"
    assert (record["environment"], record["digest"], record["result"], record["forced"]) == (
        "production", DIGEST, "deployed", False)
    assert record["context"] == "prod-ctx" and record["gate"]["source"] == "build" and record["time"]
    assert "deployed registry.example.com/ml/digits@" in proc.stdout
    assert "successfully rolled out" in proc.stderr  # rollout progress reaches the Jenkins log
    assert_no_secrets(proc, kube)


def test_configured_context_is_checked_and_passed(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging"))
    assert proc.returncode == 0, proc.stderr
    assert kube.argvs() == [
        ["config", "get-contexts", "-o", "name"],
        [*STAGING, *APPLY],
        [*STAGING, "rollout", "status", "deployment/digits", "--timeout=45s"],
    ]


def test_rollout_timeout_undoes_prints_events_and_logs_and_fails(repo, kube):
    passed_build(repo)
    kube.script({"match": ["rollout", "status"], "rc": 1,
                 "stdout": 'Waiting for deployment "digits" rollout to finish: 0 of 2 updated replicas are available...\n',
                 "stderr": "error: timed out waiting for the condition\n"})
    proc = deploy(repo, kube, "--env", "staging")
    assert proc.returncode == 1, proc.stderr
    pods_selector = f"app.kubernetes.io/instance=digits,app.kubernetes.io/name=digits,mlci.dev/image={DIGEST[7:19]}"
    assert kube.argvs() == [
        ["config", "get-contexts", "-o", "name"],
        [*STAGING, *APPLY],
        [*STAGING, "rollout", "status", "deployment/digits", "--timeout=45s"],
        [*STAGING, "rollout", "undo", "deployment/digits"],
        [*STAGING, "get", "pods", "-l", pods_selector, "-o", "name"],
        [*STAGING, "get", "events", "--field-selector", "involvedObject.kind=Pod,involvedObject.name=digits-7d9f8b6c5-x2k4q"],
        [*STAGING, "logs", "pod/digits-7d9f8b6c5-x2k4q", "--all-containers=true", "--tail=30"],
    ]
    err = proc.stderr
    assert "timed out waiting for the condition" in err
    assert "rolled back" in err
    assert "Back-off restarting failed container" in err  # the pod's events
    assert "FileNotFoundError: models/digits.npz" in err  # its last log lines
    assert err.index("rollout undo") < err.index("Back-off restarting")
    assert "Traceback" in err and "mlci: deploy to staging failed" in err
    record = repo.deploy_record()
    assert record["result"] == "rolled-back" and record["rollout"] == {"failed": ["digits"], "undo": {"digits": True}}
    assert_no_secrets(proc, kube)


def test_failed_undo_is_reported_as_such(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    kube.script({"match": ["rollout", "status"], "rc": 1, "stderr": "error: deployment \"digits\" exceeded its progress deadline\n"},
                {"match": ["rollout", "undo"], "rc": 1, "stderr": "error: no rollout history found for deployment \"digits\"\n"})
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging"))
    assert proc.returncode == 1
    assert "exceeded its progress deadline" in proc.stderr and "no rollout history found" in proc.stderr
    assert repo.deploy_record()["result"] == "rollback-failed"


def test_apply_rejected_stops_before_rollout_and_hides_the_token(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    kube.script({"match": ["apply"], "rc": 1,
                 "stderr": 'Error from server (Forbidden): admission webhook "policy.example.com" denied the request: '
                           f'image not signed (request by token {TOKEN}; Authorization: Bearer {TOKEN})\n'})
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging"))
    assert proc.returncode == 1
    assert [a[len(STAGING)] if a[:2] == ["--context", "staging-ctx"] else a[0] for a in kube.argvs()] == ["config", "apply"]
    assert "denied the request: image not signed" in proc.stderr
    assert repo.deploy_record()["result"] == "apply-failed"
    assert TOKEN not in repo.deploy_record()["message"]
    assert_no_secrets(proc, kube)


def test_missing_context_is_a_user_error_before_anything_is_applied(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "broken"))
    assert proc.returncode == 2, proc.stderr
    assert "kube context 'no-such-ctx' is not in the kubeconfig" in proc.stderr
    assert "staging-ctx" in proc.stderr and "Traceback" not in proc.stderr  # says which contexts exist
    assert kube.argvs() == [["config", "get-contexts", "-o", "name"]]
    assert repo.deploy_record()["result"] == "preflight-failed"
    assert_no_secrets(proc, kube)


def test_no_current_context(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    kube.script({"match": ["current-context"], "rc": 1, "stderr": "error: current-context is not set\n"})
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "production"))
    assert proc.returncode == 2 and "no kube context" in proc.stderr
    assert not any("apply" in a for a in kube.argvs())


def test_dry_run_prints_manifests_and_commands_and_touches_nothing(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging", "--dry-run"))
    assert proc.returncode == 0, proc.stderr
    assert kube.calls() == []
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]  # the command lines are YAML comments
    assert {d["kind"] for d in docs} == {"Deployment", "Service"}
    assert "kubectl --context staging-ctx -n ml-staging apply --server-side" in proc.stdout
    assert "rollout status deployment/digits --timeout=45s" in proc.stdout
    assert not (repo.out / "deploy.json").exists()
    assert_no_secrets(proc, kube)


def test_dry_run_fails_when_the_gate_would_refuse(repo, kube, monkeypatch, capsys):
    repo.write_build()
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging", "--dry-run"))
    assert proc.returncode == 1
    assert "promotion gate: REFUSED" in proc.stdout and kube.calls() == []


def test_gate_refusal_never_reaches_the_cluster(repo, kube, monkeypatch, capsys):
    repo.write_build()
    repo.write_accuracy(accuracy_record(OTHER_DIGEST))  # a PASS, but for another image
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging"))
    assert proc.returncode == 1
    assert "refused by the promotion gate" in proc.stderr and "--force --reason" in proc.stderr
    assert kube.calls() == []
    record = repo.deploy_record()
    assert (record["result"], record["digest"], record["gate"]["passed"]) == ("refused", DIGEST, False)


def test_force_with_reason_deploys_and_records_the_reason(repo, kube, monkeypatch, capsys):
    repo.write_build()
    reason = 'hotfix: "INC-42": revert\n{{ 7*7 }} --- ok'
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging", "--force", "--reason", reason))
    assert proc.returncode == 0, proc.stderr
    applied = [d for d in yaml.safe_load_all(kube.calls()[1]["stdin"]) if d]
    annotations = applied[0]["metadata"]["annotations"]
    assert annotations["mlci.dev/force-reason"] == reason and annotations["mlci.dev/forced"] == "true"
    record = repo.deploy_record()
    assert (record["forced"], record["reason"], record["result"]) == (True, reason, "deployed")
    assert record["gate"]["source"] == "forced" and "no PASS accuracy record" in record["gate"]["message"]


def test_dry_run_prints_a_multi_line_reason_as_one_comment_line(repo, kube, monkeypatch, capsys):
    repo.write_build()
    reason = "INC-7\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: injected}\r\n\x1b[2J"
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging", "--dry-run", "--force",
                                   "--reason", reason))
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]  # no document smuggled in by the reason
    assert docs[0]["metadata"]["annotations"]["mlci.dev/force-reason"] == reason
    gate = [line for line in proc.stdout.splitlines() if line.startswith("# promotion gate")]
    assert len(gate) == 1 and "INC-7\\n---\\napiVersion" in gate[0] and "\x1b" not in proc.stdout
    assert kube.calls() == []


def test_force_needs_a_reason(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    for args in (["--force"], ["--force", "--reason", "  "], ["--reason", "why"]):
        code, _, err = deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging", *args)
        assert code == 2 and "reason" in err, args
    assert kube.calls() == []


def test_image_flag_overrides_build_record(repo, kube, monkeypatch, capsys):
    repo.write_accuracy(accuracy_record(OTHER_DIGEST))  # no build.json at all
    proc = Proc(*deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging", "--image", f"registry.example.com/ml/digits:v2@{OTHER_DIGEST}"))
    assert proc.returncode == 0, proc.stderr
    applied = [d for d in yaml.safe_load_all(kube.calls()[1]["stdin"]) if d]
    container = applied[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example.com/ml/digits:v2@{OTHER_DIGEST}"
    assert applied[0]["metadata"]["annotations"]["mlci.dev/commit"] == accuracy_record(OTHER_DIGEST)["git"]["commit"]


def test_bad_inputs_are_user_errors(repo, kube, monkeypatch, capsys):
    def run(*args):
        return deploy_in_process(repo, kube, monkeypatch, capsys, *args)

    code, _, err = run("--env", "staging")
    assert code == 2 and "no build record" in err and "mlci build" in err
    code, _, err = run("--env", "staging", "--image", "registry.example.com/ml/digits:latest")
    assert code == 2 and "not pinned by digest" in err
    code, _, err = run("--env", "qa", "--image", f"x@{DIGEST}")
    assert code == 2 and "no environment 'qa'" in err and "staging" in err
    repo.out.mkdir(parents=True, exist_ok=True)
    (repo.out / "build.json").write_text("{broken")
    code, _, err = run("--env", "staging")
    assert code == 2 and "cannot read the build record" in err
    assert kube.calls() == []


def test_kubectl_missing_from_path(repo, kube, monkeypatch, capsys):
    passed_build(repo)
    kube.env["PATH"] = str(repo.root / "no-bin")
    code, _, err = deploy_in_process(repo, kube, monkeypatch, capsys, "--env", "staging")
    assert code == 2 and "kubectl not found on PATH" in err
    assert repo.deploy_record()["result"] == "preflight-failed"


def test_kubectl_call_timeout_kills_the_process(tmp_path, kube, monkeypatch):
    """A hung kubectl cannot hang the deploy: the call (and any child holding its pipes, like an auth plugin)
    is killed at its timeout and reported as timed out."""
    kube.script({"match": ["hang"], "sleep": 30, "child_sleep": 30})
    monkeypatch.setenv("FAKE_KUBECTL_DIR", kube.env["FAKE_KUBECTL_DIR"])
    monkeypatch.setenv("KUBECONFIG", kube.env["KUBECONFIG"])
    kc = Kubectl(str(tmp_path / "bin" / "kubectl"), redact=Redactor([]), stream=sys.stderr)
    t0 = time.monotonic()
    res = kc.run(["hang"], timeout=1.5)
    assert res.timed_out and not res.ok and time.monotonic() - t0 < 10


def test_redactor_masks_every_secret_in_the_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text(yaml.safe_dump({"users": [
        {"name": "a", "user": {"token": "tok-aaaa-1111", "client-key-data": "S0VZREFUQQ=="}},
        {"name": "b", "user": {"auth-provider": {"config": {"id-token": "idt-bbbb", "refresh-token": "rft-cccc"}}}},
        {"name": "c", "user": {"exec": {"command": "aws", "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalr-dddd"}]}}},
        {"name": "d", "user": {"username": "admin", "password": "pw-eeee"}}]}))
    redact = Redactor.from_kubeconfig({"KUBECONFIG": str(kubeconfig)})
    text = redact(f"tok-aaaa-1111 S0VZREFUQQ== idt-bbbb rft-cccc wJalr-dddd pw-eeee {kubeconfig} admin aws")
    assert text.split() == ["***"] * 7 + ["admin", "aws"]
