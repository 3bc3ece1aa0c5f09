"""The `docker run` line `mlci test unit|acceptance|accuracy` prints: run for real with the Docker engine and the S3
server, it must reproduce the stage -- the same sample, seed and verdict as `mlci test accuracy` on two services
(digits: labels; churn: probabilities, three gates), results owned by the caller with the caller's umask, no
credential value on the line, and the right command word for an image whose ENTRYPOINT is mlci."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from mlci.stages.docker_run import aws_by_reference, entry, run_line, shell_line

from ..conftest import DOCKER
from ..dockerimages import remove_images
from ..image.service import churn, image_group, names_with_prefix, service  # noqa: F401

GROUP = image_group(__name__)

SECRET = f"s3cr3t-{uuid.uuid4().hex}"  # the S3 server takes any key pair: a value we can look for


def _env(svc) -> dict[str, str]:  # noqa: ANN001
    return {**os.environ, **svc.env, "AWS_ACCESS_KEY_ID": f"key-{uuid.uuid4().hex[:8]}", "AWS_SECRET_ACCESS_KEY": SECRET,
            "PATH": f"{Path(DOCKER).parent}:{os.environ['PATH']}"}


def mlci(svc, root: Path, out: Path, *args: str, mask: int = 0o022, timeout: float = 900) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    """`mlci ARGS --out OUT` against the session image (its build.json copied into OUT unless --image is given),
    under umask `mask`."""
    if "--image" not in args:
        out.mkdir(parents=True, exist_ok=True)
        (out / "build.json").write_text((svc.out / "build.json").read_text())
    return subprocess.run([sys.executable, "-m", "mlci", *args, "--out", str(out)], cwd=root, env=_env(svc),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=lambda: os.umask(mask))


def sh(svc, line: str, mask: int, timeout: float = 900) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run(["/bin/sh", "-c", line], env=_env(svc), capture_output=True, text=True, timeout=timeout,
                           preexec_fn=lambda: os.umask(mask), cwd="/")


def printed(svc, root: Path, out: Path, *args: str, mask: int = 0o022) -> str:  # noqa: ANN001
    proc = mlci(svc, root, out, *args, "--print-docker-run", mask=mask)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.strip()
    assert SECRET not in line and SECRET not in proc.stderr
    return line


def record(out: Path, suite: str = "smoke") -> dict[str, Any]:
    return json.loads((out / "accuracy" / suite / "accuracy.json").read_text())


def same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two records of one image and suite describe the same judgement: seed, sample, predictions, verdict."""
    for key in ("seed", "seed_source", "verdict", "reason", "dataset", "model", "git", "image", "cache_key"):
        assert a[key] == b[key], key
    for key in ("drawn", "used", "available"):
        assert a["sample"][key] == b["sample"][key], key
    for key in ("positions", "ids", "labels", "predictions"):
        assert a["outcomes"][key] == b["outcomes"][key], key
    assert [(g["metric"], g["verdict"], g.get("estimate"), g["samples_used"]) for g in a["gates"]] == \
        [(g["metric"], g["verdict"], g.get("estimate"), g["samples_used"]) for g in b["gates"]]


def assert_modes(top: Path, mask: int) -> int:
    """Every file and directory under `top` belongs to this user and has the modes the umask gives."""
    seen = 0
    for p in [top, *top.rglob("*")]:
        st = p.stat()
        assert st.st_uid == os.getuid() and st.st_gid == os.getgid(), p
        want = (0o777 if p.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(st.st_mode) == want, f"{p}: {oct(stat.S_IMODE(st.st_mode))} != {oct(want)}"
        seen += 1
    return seen


def check_accuracy_line(svc, tmp_path: Path) -> tuple[dict[str, Any], str]:  # noqa: ANN001
    """The stage, then its printed line run by hand under umask 027: the same judgement, the caller's files."""
    root = svc.root
    staged = mlci(svc, root, tmp_path / "stage", "test", "accuracy", "--suite", "smoke", "--force", mask=0o027)
    assert staged.returncode == 0, staged.stdout[-2000:] + staged.stderr[-3000:]
    assert "the same run with plain docker" in staged.stderr and SECRET not in staged.stderr + staged.stdout
    stage_rec = record(tmp_path / "stage")
    dups = stage_rec["dataset"]["duplicates"]  # the examples' test sets hold no repeated inputs: no warning
    assert dups["checked"] == min(stage_rec["sample"]["drawn"], 20_000) and dups["exact"] == 0 and dups["share"] < 0.05
    assert "repeat another" not in staged.stderr
    assert_modes(tmp_path / "stage" / "accuracy", 0o027)  # the stage honours the umask too (MLCI_UMASK)

    out = tmp_path / "plain" / "results"  # does not exist yet: the line creates it as the caller
    line = printed(svc, root, out, "test", "accuracy", "--suite", "smoke", mask=0o027)
    words = shlex.split(line)
    assert words[:2] == ["mkdir", "-p"] and "docker" in words and "run" in words
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        assert words[words.index(name) - 1] == "-e", name  # by reference: `-e NAME`, no value
    image = stage_rec["image"]
    assert f"MLCI_IMAGE_COMMIT={svc.record['git']['commit']}" in words  # from the image's revision label
    assert not any(w.startswith(("GIT_COMMIT=", "MLCI_RUN_ID=")) for w in words)
    ran = sh(svc, line, 0o027)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    plain_rec = record(out)
    same_run(stage_rec, plain_rec)
    assert plain_rec["image"] == image and plain_rec["git"]["commit"] == svc.record["git"]["commit"]
    assert plain_rec["run"]["id"] != stage_rec["run"]["id"]
    assert assert_modes(out / "accuracy", 0o027) >= 4  # accuracy/, accuracy/smoke/, accuracy.json, junit
    return stage_rec, line


@GROUP
def test_printed_accuracy_line_reproduces_the_digits_stage_and_runs_in_an_mlci_entrypoint_image(
        service, tmp_path: Path) -> None:  # noqa: F811
    stage_rec, line = check_accuracy_line(service, tmp_path)
    words = shlex.split(line)
    ref = service.record["image"]["id"]
    assert words[words.index(ref) + 1:words.index(ref) + 4] == ["mlci", "accuracy", "run"]  # no ENTRYPOINT

    # the same image with ENTRYPOINT ["mlci"] (as the runtime image has): the line must not say `mlci` twice
    tag = f"mlci-t16-{uuid.uuid4().hex[:8]}/entry:latest"
    try:
        build = subprocess.run([DOCKER, "build", "-q", "-t", tag, "-"], input=f'FROM {service.record["image"]["tags"][0]}\nENTRYPOINT ["mlci"]\n',
                               capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=300)
        assert build.returncode == 0, build.stderr
        out = tmp_path / "entry"
        line2 = printed(service, service.root, out, "test", "accuracy", "--suite", "smoke", "--image", tag)
        words2 = shlex.split(line2)
        image_id = next(w for w in words2 if w.startswith("sha256:"))
        assert words2[words2.index(image_id) + 1:words2.index(image_id) + 3] == ["accuracy", "run"]
        ran = sh(service, line2, 0o022)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
        rec = record(out)
        assert (rec["seed"], rec["verdict"], rec["outcomes"]["ids"]) == \
            (stage_rec["seed"], stage_rec["verdict"], stage_rec["outcomes"]["ids"])
    finally:
        remove_images(DOCKER, tag)


@GROUP
def test_printed_accuracy_line_reproduces_the_churn_stage(churn, tmp_path: Path) -> None:  # noqa: F811
    rec, _ = check_accuracy_line(churn, tmp_path)
    assert [g["metric"] for g in rec["gates"]] == ["accuracy", "macro_f1", "auc"] and rec["verdict"] == "PASS"


@GROUP
def test_printed_unit_and_acceptance_lines_run_the_tests(service, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"  # does not exist: the line creates it, as the caller and with the umask
    ref = service.record["image"]["id"]
    unit = printed(service, service.root, out, "test", "unit", "--image", ref, mask=0o027)
    assert not out.exists()
    ran = sh(service, unit, 0o027)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    junit = out / "junit" / "unit.xml"
    assert 'failures="0"' in junit.read_text() and 'errors="0"' in junit.read_text()
    assert_modes(out, 0o027)

    lines = printed(service, service.root, out, "test", "acceptance", "--image", ref, mask=0o027)
    assert len(lines.splitlines()) == 5
    ran = sh(service, lines, 0o027, timeout=300)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    text = (out / "junit" / "acceptance.xml").read_text()
    assert 'failures="0"' in text and 'tests="0"' not in text
    assert_modes(out, 0o027)
    assert names_with_prefix(f"mlci-{service.name}-local") == []  # the last line removed container and network


@GROUP
def test_change_gated_suite_has_no_single_line(service, tmp_path: Path) -> None:  # noqa: F811
    proc = mlci(service, service.root, tmp_path / "o", "test", "accuracy", "--suite", "change", "--print-docker-run")
    assert proc.returncode == 2 and "change gate" in proc.stderr and "Traceback" not in proc.stderr


# --- pure --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("entrypoint", "pre", "post"), [
    (None, [], ["mlci", "accuracy", "run"]),
    ([], [], ["mlci", "accuracy", "run"]),
    (["mlci"], [], ["accuracy", "run"]),
    (["/opt/mlci/bin/mlci"], [], ["accuracy", "run"]),
    (["/docker-entrypoint.sh"], ["--entrypoint", "mlci"], ["accuracy", "run"]),
    (["mlci", "--verbose"], ["--entrypoint", "mlci"], ["accuracy", "run"]),
])
def test_entry_runs_the_command_whatever_the_entrypoint(entrypoint, pre, post) -> None:  # noqa: ANN001
    assert entry({"Config": {"Entrypoint": entrypoint}}, ["mlci", "accuracy", "run"]) == (pre, post)


def test_credentials_go_by_reference(tmp_path: Path) -> None:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {SECRET}\n")
    opts = aws_by_reference({"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "eu-west-1", "AWS_PROFILE": ""},
                            home=tmp_path)
    assert opts == ["-e", "AWS_SECRET_ACCESS_KEY", "-e", "AWS_REGION",
                    "-v", f"{tmp_path}/.aws/credentials:/run/secrets/aws_credentials:ro",
                    "-e", "AWS_SHARED_CREDENTIALS_FILE=/run/secrets/aws_credentials"]
    assert SECRET not in " ".join(opts)


def test_line_is_shell_quoted() -> None:
    argv = ["/bin/sh", "-c", "umask 0027 && python3 -m pytest 'tests/unit' -q; echo $HOME"]
    line = shell_line(run_line(image="sha256:abc", attrs={}, argv=argv, env={"A": "it's"}, network="none",
                               volumes={"/tmp/o u t": {"bind": "/mlci-out", "mode": "rw"}}), mkdirs=[Path("/tmp/o u t")])
    words = shlex.split(line)
    assert words[:3] == ["mkdir", "-p", "/tmp/o u t"] and words[3] == "&&"
    assert words[4:] == ["docker", "run", "--rm", "--network", "none", "-e", "A=it's", "-v", "/tmp/o u t:/mlci-out",
                         "sha256:abc", *argv]


def test_a_bad_mlci_umask_is_an_input_error(tmp_path: Path) -> None:
    from ..conftest import run_mlci

    for bad in ("0999", "9z", "01000"):
        proc = run_mlci("config", "docs", "--prefix", "tests", env={"MLCI_UMASK": bad}, cwd=tmp_path)
        assert proc.returncode == 2 and f"MLCI_UMASK='{bad}' is not an octal umask" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert run_mlci("config", "docs", "--prefix", "tests", env={"MLCI_UMASK": "0027"}, cwd=tmp_path).returncode == 0
