"""`mlci test unit|acceptance|accuracy` inside the built image, on the real Docker engine.

Failures must name the stage and the cause, and no container or network may be left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlci.errors import UserError
from mlci.stages.image import check_version
from mlci.stages.run import synth_junit

from ..conftest import DOCKER, run_mlci
from ..image.service import copy_service, docker_leftovers, image_group, names_with_prefix, service  # noqa: F401

GROUP = image_group(__name__)


def junit_counts(path: Path) -> tuple[int, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return (sum(int(s.get("tests", 0)) for s in suites),
            sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites))


def with_config(root: Path, old: str, new: str) -> None:
    cfg = root / "ml-ci.yaml"
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new))


def signal_stage_when(svc, root: Path, out: Path, args: list[str], ready, sig: int = signal.SIGINT,
                      env: dict[str, str] | None = None, settle: float = 1.0) -> tuple[int, str]:
    """Start `mlci ARGS --out OUT` for the session image, wait until `ready(container names)` (60 s at most),
    send `sig`; returns (exit code, stderr)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.json").write_text((svc.out / "build.json").read_text())
    proc = subprocess.Popen([sys.executable, "-m", "mlci", *args, "--out", str(out)], cwd=root,
                            env={**os.environ, **svc.env, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ready(names_with_prefix(svc.prefix)):
            time.sleep(0.05)
        assert ready(names_with_prefix(svc.prefix)), f"no container of mlci {' '.join(args)} appeared"
        time.sleep(settle)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def stage(svc, root: Path, out: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a stage against the session image (its build.json is copied into `out`)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.json").write_text((svc.out / "build.json").read_text())
    return run_mlci(*args, "--out", str(out), cwd=root, env=svc.env, timeout=timeout)


# --- pure -----------------------------------------------------------------------------------------------------
def test_result_key_moves_with_every_setting_that_judges_predictions(tmp_path: Path) -> None:
    """The image is one part of the result key (tests/python/stages/test_verdict.py builds real images); the
    settings that turn predictions into a verdict are another: each one moves the key, labels and Cmd do not."""
    from mlci.config import load_config
    from mlci.stages.accuracy_inputs import image_identity, result_key

    base = {"service": "s", "artifacts": {"data": {"d": {"uri": "s3://b/d.npz", "sha256": "a" * 64}}},
            "accuracy": {"predict": "m:predict", "load": "m:load", "suites": {"smoke": {
                "dataset": "d", "gates": [{"metric": "accuracy", "min": 0.9, "margin": 0.02}]}}}}
    attrs = {"Os": "linux", "Architecture": "amd64", "RootFS": {"Layers": ["sha256:" + "1" * 64]},
             "Config": {"Env": ["PATH=/bin"], "WorkingDir": "/app", "Labels": {"org.opencontainers.image.revision": "c1"},
                        "Cmd": ["serve"]}}

    def key(cfg: dict, image: dict = attrs, **kw: object) -> str | None:
        (tmp_path / "ml-ci.yaml").write_text(json.dumps(cfg))
        return result_key(load_config(tmp_path / "ml-ci.yaml"), "smoke", image_identity(image), **kw)

    k0 = key(base)
    assert k0 and k0 == key(base)
    relabelled = {**attrs, "Config": {**attrs["Config"], "Labels": {"org.opencontainers.image.revision": "c2"},
                                      "Cmd": ["other"]}}
    assert key(base, relabelled) == k0  # labels and the replaced Cmd cannot change a prediction
    seen = {k0}
    for what, change in (
            ("predict", {"predict": "m:other"}), ("load", {"load": "m:other_load"}), ("on_error", {"on_error": "exclude"}),
            ("batch size", {"batch_size": 7}), ("output", {"output": "scores", "threshold": 0.3}),
            ("threshold", {"output": "scores", "threshold": 0.4})):
        cfg = json.loads(json.dumps(base))
        cfg["accuracy"].update(change)
        if "output" in change:
            cfg["accuracy"]["suites"]["smoke"]["gates"] = [{"metric": "auc", "min": 0.9, "margin": 0.02}]
        k = key(cfg)
        assert k not in seen, what
        seen.add(k)
    for what, image in (("a layer", {**attrs, "RootFS": {"Layers": ["sha256:" + "2" * 64]}}),
                        ("Env", {**attrs, "Config": {**attrs["Config"], "Env": ["PATH=/bin", "OMP_NUM_THREADS=1"]}}),
                        ("the platform", {**attrs, "Architecture": "arm64"})):
        k = key(base, image)
        assert k not in seen, what
        seen.add(k)
    for what, kw in (("--seed", {"seed": 3}), ("the baseline", {"baseline": {"image": "sha256:" + "3" * 64}}),
                     ("candidate models", {"candidate_models": {"models/m": "sha256:" + "4" * 64}})):
        k = key(base, **kw)
        assert k not in seen, what
        seen.add(k)
    unpinned = json.loads(json.dumps(base))
    unpinned["artifacts"]["data"]["d"].pop("sha256")
    assert key(unpinned) is None  # the dataset's bytes unknown: nothing is reused


def test_version_mismatch_names_both_versions() -> None:
    with pytest.raises(UserError) as err:
        check_version("img", "0.9.1", outer="0.1.0")
    assert "mlci 0.9.1" in str(err.value) and "mlci 0.1.0" in str(err.value)
    with pytest.raises(UserError, match="no org.mlci.version label"):
        check_version("img", None)
    check_version("img", "0.1.5", outer="0.1.0")


def test_synthesised_junit_reports_the_failure() -> None:
    xml = synth_junit("unit", "make test", 4, "boom <&>", 1.5, 60)
    root = ET.fromstring(xml)
    case = root.find(".//testcase")
    assert case is not None and case.find("failure") is not None
    assert "exited with code 4" in case.find("failure").get("message")
    assert junit_counts_from_text(xml) == (1, 1)
    assert ET.fromstring(synth_junit("unit", "x", 0, "", 1, 60)).find(".//failure") is None


def junit_counts_from_text(xml: str) -> tuple[int, int]:
    s = ET.fromstring(xml).find("testsuite")
    assert s is not None
    return int(s.get("tests")), int(s.get("failures"))


# --- real engine ------------------------------------------------------------------------------------------------
@GROUP
def test_unit_and_acceptance_pass_and_write_junit(service, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    unit = stage(service, service.root, out, "test", "unit")
    assert unit.returncode == 0, unit.stderr
    assert junit_counts(out / "junit" / "unit.xml") == (3, 0)
    acc = stage(service, service.root, out, "test", "acceptance")
    assert acc.returncode == 0, acc.stderr
    assert "service healthy after" in acc.stderr
    assert junit_counts(out / "junit" / "acceptance.xml") == (3, 0)
    assert not list(out.glob(".stage-*")), "staging directories left behind"
    assert names_with_prefix(service.prefix) == []


@GROUP
def test_failing_unit_test_fails_the_unit_stage(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    (root / "tests" / "unit" / "test_broken.py").write_text(
        "def test_deliberately_broken():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n")
    out = tmp_path / "out"
    assert run_mlci("build", "--out", str(out), cwd=root, env=service.env, timeout=600).returncode == 0
    proc = run_mlci("test", "unit", "--out", str(out), cwd=root, env=service.env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "unit tests failed" in proc.stderr and "exited 1" in proc.stderr
    assert "test_deliberately_broken" in proc.stdout  # the test output is streamed
    tests, failures = junit_counts(out / "junit" / "unit.xml")
    assert (tests, failures) == (4, 1)
    assert names_with_prefix(service.prefix) == []


@GROUP
def test_health_never_ok_fails_acceptance_with_logs_and_state(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    with_config(root, "serve: {command: python3 -m digits_service.server, port: 8080, health: /healthz, timeout: 60}",
                "serve: {command: 'echo starting-but-wrong-port; PORT=9999 python3 -m digits_service.server', "
                "port: 8080, health: /healthz, timeout: 4}")
    t0 = time.monotonic()
    proc = stage(service, root, tmp_path / "out", "test", "acceptance")
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - t0 < 60
    err = proc.stderr
    assert "did not become healthy within 4s" in err
    assert "starting-but-wrong-port" in err and "digits serving on :9999" in err  # the service's logs
    assert "running, health" in err and "last probe" in err  # its state and the probe's output
    assert names_with_prefix(service.prefix) == []
    assert [n for n in docker_leftovers() if n.startswith(service.prefix)] == []


@GROUP
def test_service_that_exits_fails_fast(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    with_config(root, "serve: {command: python3 -m digits_service.server,",
                "serve: {command: 'echo model-load-failed >&2; exit 3',")
    t0 = time.monotonic()
    proc = stage(service, root, tmp_path / "out", "test", "acceptance")
    assert proc.returncode == 1
    assert time.monotonic() - t0 < 45  # not the 60 s health timeout
    assert "exited before it became healthy" in proc.stderr and "exit code 3" in proc.stderr
    assert "model-load-failed" in proc.stderr
    assert names_with_prefix(service.prefix) == []


@GROUP
def test_failing_acceptance_command_reports_and_cleans_up(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    with_config(root, "command: python3 -m pytest tests/acceptance -q",
                "command: python3 -m pytest tests/acceptance -q -k 'nothing_matches or healthz' --maxfail=1 "
                "&& curl-is-not-installed")
    out = tmp_path / "out"
    proc = stage(service, root, out, "test", "acceptance")
    assert proc.returncode == 1
    assert "acceptance tests failed" in proc.stderr and "exited 127" in proc.stderr
    assert (out / "junit" / "acceptance.xml").is_file()
    assert names_with_prefix(service.prefix) == []


@GROUP
def test_ctrl_c_during_acceptance_removes_containers_and_network(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    with_config(root, "serve: {command: python3 -m digits_service.server,", "serve: {command: 'sleep 120',")
    code, err = signal_stage_when(service, root, tmp_path / "out", ["test", "acceptance"],
                                  lambda names: any("-svc-" in n for n in names))
    assert code == 130, err
    assert "interrupted" in err
    assert names_with_prefix(service.prefix) == []


@GROUP
def test_image_with_other_mlci_version_is_refused(service, tmp_path: Path) -> None:  # noqa: F811
    tag = f"{service.image_name}:other-version"
    df = f"FROM {service.record['image']['tags'][0]}\nLABEL org.mlci.version=9.4.0\n"
    built = subprocess.run([DOCKER, "build", "-q", "-t", tag, "-"], input=df, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    proc = run_mlci("test", "unit", "--image", tag, "--out", str(tmp_path / "out"), cwd=service.root,
                    env=service.env)
    assert proc.returncode == 2
    assert "contains mlci 9.4.0, but this is mlci 0.1" in proc.stderr and "Traceback" not in proc.stderr


@GROUP
def test_accuracy_stage_runs_the_suite_in_the_image(service, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    proc = stage(service, service.root, out, "test", "accuracy", "--suite", "smoke", "-n", "2", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rec = json.loads((out / "accuracy" / "smoke" / "accuracy.json").read_text())
    assert rec["verdict"] == "PASS" and rec["suite"] == "smoke"
    assert rec["image"]["digest"] == service.record["image"]["digest"]
    assert rec["git"]["commit"] == service.record["git"]["commit"]
    assert (out / "accuracy" / "smoke" / "junit-accuracy.xml").is_file()
    assert not list(out.glob(".stage-*")) and not list(out.glob(".mlci-aws-*"))  # staging and secret files gone
    assert names_with_prefix(service.prefix) == []


@GROUP
def test_ctrl_c_during_unit_removes_containers_and_staging(service, tmp_path: Path) -> None:  # noqa: F811
    root = copy_service(service.root, tmp_path / "digits")
    with_config(root, "unit: {command: python3 -m pytest tests/unit -q}", "unit: {command: 'sleep 120'}")
    out = tmp_path / "out"
    code, err = signal_stage_when(service, root, out, ["test", "unit"], bool)
    assert code == 130, err
    assert names_with_prefix(service.prefix) == []
    assert not list(out.glob(".stage-*")), "staging directory left behind after Ctrl-C"


@GROUP
def test_sigkill_leaves_no_secret_and_the_next_run_reaps_what_it_left(service, tmp_path: Path) -> None:  # noqa: F811
    """SIGKILL of `mlci test accuracy` while its container runs: the AWS secret key is in no file under the
    output directory or the repo, and the next stage run removes the container and the staging directory."""
    secret = f"mlci-secret-{uuid.uuid4().hex}"
    out = tmp_path / "out"
    signal_stage_when(service, service.root, out, ["test", "accuracy", "--suite", "smoke"],
                      lambda names: any("-accuracy-" in n for n in names), sig=signal.SIGKILL,
                      env={"AWS_SECRET_ACCESS_KEY": secret}, settle=0)
    left = [n for n in names_with_prefix(service.prefix) if "-accuracy-" in n]
    assert left, "the accuracy container never appeared (or was removed despite SIGKILL)"
    for where in (out, service.root):
        holding = [str(p) for p in where.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert holding == [], f"secret key in {holding}"
    inspect = subprocess.run([DOCKER, "inspect", *left], capture_output=True, text=True).stdout
    assert secret not in inspect  # not in the environment
    mounts = [m["Destination"] for c in json.loads(inspect) for m in c["Mounts"]]
    assert not any(m.startswith("/run/secrets") for m in mounts), mounts  # no host file bound in either
    assert list(out.glob(".stage-*")), "a SIGKILL cannot clean up: the staging directory is the debris to reap"

    nxt = run_mlci("test", "unit", "--out", str(out), cwd=service.root, env=service.env, timeout=300)
    assert nxt.returncode == 0, nxt.stderr
    assert "a killed run left behind" in nxt.stderr and left[0] in nxt.stderr
    assert names_with_prefix(service.prefix) == []
    assert not list(out.glob(".stage-*"))


def test_reaping_removes_only_what_dead_or_expired_runs_left(base_image: str, tmp_path: Path) -> None:
    """On the real engine: a container whose lease is abandoned or whose expiry passed goes; one of a live run
    (lease held), one whose lease this process cannot see but that has not expired, and one without mlci's
    lease label (another tool's, or an older mlci's) stay."""
    import docker
    from mlci.fsutil import OwnerLock
    from mlci.stages.containers import EXPIRES_LABEL, LEASE_LABEL, RUN_LABEL, leases_dir, reap_stale

    dc = docker.from_env()
    leases = leases_dir(tmp_path / "cache")
    leases.mkdir(parents=True)
    live = OwnerLock.take(leases / "live.lock")
    dead = leases / "dead.lock"
    dead.write_text("")  # a lease file nobody holds: its run was SIGKILLed
    tag = uuid.uuid4().hex[:8]
    future, past = str(int(time.time()) + 3600), str(int(time.time()) - 1)
    specs = {"dead": {LEASE_LABEL: str(dead), EXPIRES_LABEL: future},
             "expired": {LEASE_LABEL: "/nowhere/visible/x.lock", EXPIRES_LABEL: past},
             "live": {LEASE_LABEL: str(live.path), EXPIRES_LABEL: future},
             "unseen": {LEASE_LABEL: "/nowhere/visible/y.lock", EXPIRES_LABEL: future},
             "foreign": {}}
    made = {}
    try:
        for name, labels in specs.items():
            made[name] = dc.containers.create(base_image, ["true"], name=f"mlci-reap-{tag}-{name}",
                                              labels={RUN_LABEL: tag, **labels})
        removed = reap_stale(dc, leases)
        assert sorted(removed) == [f"mlci-reap-{tag}-dead", f"mlci-reap-{tag}-expired"]
        left = {c.name for c in dc.containers.list(all=True, filters={"label": f"{RUN_LABEL}={tag}"})}
        assert left == {f"mlci-reap-{tag}-{n}" for n in ("live", "unseen", "foreign")}
        assert not dead.exists() and live.path.exists()
    finally:
        live.release()
        for c in made.values():
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)
