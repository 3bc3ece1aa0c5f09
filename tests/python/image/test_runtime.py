"""The runtime image (docker/Dockerfile): mlci, the docker CLI, git and kubectl, and what the Jenkins steps run
in it, the way the runner starts it (Docker socket mounted, workspace and WORKSPACE@tmp mounted at the same
path, host network, environment by name): a stage, `mlci deploy` against a scripted kubectl, and the git push
`mlci train` publishes a model with, authenticated through a Jenkins-style GIT_ASKPASS script."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import DOCKER, run_mlci
from ..deploy.conftest import CONFIG as DEPLOY_CONFIG
from ..deploy.conftest import DIGEST, Repo, accuracy_record
from .service import image_group, prepared_service, service  # noqa: F401 (fixture)

GROUP = image_group(__name__)

FAKE_KUBECTL = Path(__file__).resolve().parents[1] / "deploy" / "fake_kubectl.py"


@pytest.fixture(scope="module")
def runtime() -> Iterator[str]:
    """Built once for this module, with the session's pinned mlci wheels."""
    svc = prepared_service()
    tag = f"mlci-t5-runtime-{uuid.uuid4().hex[:8]}:test"
    try:
        built = run_mlci("build", "--runtime", "--tag", tag, env=svc.env, timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        yield tag
    finally:
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True)


def in_image(tag: str, workspace: Path, *args: str, env: dict[str, str] | None = None,
             mounts: tuple[str, ...] = (), entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """`docker run` as org.mlci.Mlci starts the runtime image: same-path mounts, host network, env by name."""
    tmp = Path(f"{workspace}@tmp")
    tmp.mkdir(exist_ok=True)
    cmd = [DOCKER, "run", "--rm", "--network", "host", "-u", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp",
           "-v", f"{workspace}:{workspace}", "-v", f"{tmp}:{tmp}", "-w", str(workspace)]
    for m in mounts:
        cmd += ["-v", m]
    for name in env or {}:
        cmd += ["-e", name]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return subprocess.run([*cmd, tag, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@GROUP
def test_runtime_image_runs_a_stage_like_jenkins(service, runtime: str, tmp_path: Path) -> None:  # noqa: F811
    version = run_mlci("--version").stdout.strip()
    out = subprocess.run([DOCKER, "run", "--rm", runtime, "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == version
    for tool, expect in (("docker", "Docker version"), ("git", "git version"), ("kubectl", "Client Version")):
        cli = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", tool, runtime, "version" if tool == "kubectl"
                              else "--version", *(["--client"] if tool == "kubectl" else [])],
                             capture_output=True, text=True)
        assert cli.returncode == 0 and expect in cli.stdout, (tool, cli.stdout, cli.stderr)
    wheels = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "sh", runtime, "-c", "ls $MLCI_WHEELHOUSE"],
                            capture_output=True, text=True).stdout.split()
    assert any(w.startswith("mlci-") for w in wheels) and any(w.startswith("scipy-") for w in wheels)

    # Jenkins: workspace at the same path, socket mounted, `mlci test unit` inside the runtime image
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "build.json").write_text((service.out / "build.json").read_text())
    root = str(service.root)
    proc = subprocess.run([DOCKER, "run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                           "-v", f"{root}:{root}", "-v", f"{out_dir}:{out_dir}", "-w", root, runtime,
                           "test", "unit", "--out", str(out_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout
    assert (out_dir / "junit" / "unit.xml").is_file()

    # the accuracy stage the same way, with the agent's cache mounted at the same path (as the Jenkins runner
    # does): the S3 credentials reach the suite's container as files copied into it, from inside a container
    cache = tmp_path / "cache"
    cache.mkdir()
    aws = ["-e", "AWS_ENDPOINT_URL", "-e", "AWS_ACCESS_KEY_ID", "-e", "AWS_SECRET_ACCESS_KEY", "-e", "AWS_DEFAULT_REGION"]
    proc = subprocess.run([DOCKER, "run", "--rm", "--network", "host", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                           "-v", f"{root}:{root}", "-v", f"{out_dir}:{out_dir}", "-v", f"{cache}:{cache}",
                           "-e", f"MLCI_CACHE={cache}", *aws, "-w", root, runtime,
                           "test", "accuracy", "--suite", "smoke", "--out", str(out_dir)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((out_dir / "accuracy" / "smoke" / "accuracy.json").read_text())["verdict"] == "PASS"
    secret = os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    assert not [p for p in out_dir.rglob("*") if p.is_file() and b"aws_secret_access_key" in p.read_bytes()
                and secret in p.read_bytes()]
    assert not list(out_dir.glob(".stage-*"))


@GROUP
def test_deploy_runs_inside_the_runtime_image_against_kubectl(runtime: str, tmp_path: Path) -> None:
    """`mlci deploy` in the image: gate, render, offline validation, then kubectl (the scripted one, mounted over
    the image's /usr/local/bin/kubectl) with the kubeconfig from a Jenkins file credential under WORKSPACE@tmp."""
    ws = tmp_path / "ws"
    repo = Repo(ws, ws / ".mlci")
    ws.mkdir()
    repo.write_config(DEPLOY_CONFIG)
    repo.write_build(DIGEST)
    repo.write_accuracy(accuracy_record(DIGEST))
    secret = Path(f"{ws}@tmp") / "secretFiles" / "a1b2" / "kubeconfig"
    secret.parent.mkdir(parents=True)
    secret.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "staging-ctx",
                                  "contexts": [{"name": "staging-ctx", "context": {"cluster": "c", "user": "ci"}}],
                                  "users": [{"name": "ci", "user": {"token": "kube-secret-token"}}]}))
    state = tmp_path / "kubectl-state"
    state.mkdir()
    shim = tmp_path / "kubectl"
    shim.write_text("#!/opt/mlci/bin/python\nimport runpy\nrunpy.run_path('/opt/fake_kubectl.py', run_name='__main__')\n")
    shim.chmod(0o755)
    env = {"KUBECONFIG": str(secret), "FAKE_KUBECTL_DIR": str(state), "MLCI_GIT_COMMIT": "c" * 40}
    proc = in_image(runtime, ws, "deploy", "--env", "staging", env=env,
                    mounts=(f"{shim}:/usr/local/bin/kubectl:ro", f"{FAKE_KUBECTL}:/opt/fake_kubectl.py:ro",
                            f"{state}:{state}"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    applied = [c for c in calls if "apply" in c["argv"]]
    assert applied and DIGEST in applied[0]["stdin"] and all(c["kubeconfig_set"] for c in calls)
    assert applied[0]["argv"][:2] == ["--context", "staging-ctx"]
    record = repo.deploy_record()
    assert record["environment"] == "staging" and DIGEST in json.dumps(record["image"])
    assert "kube-secret-token" not in proc.stdout + proc.stderr


class GitServer(http.server.BaseHTTPRequestHandler):
    """git's smart HTTP protocol through `git http-backend`, behind HTTP basic authentication."""

    root: Path
    user = "robot"
    password = "s3cr3t-push-token"

    def _serve(self) -> None:
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {"GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1", "REMOTE_USER": self.user,
               "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "PATH": os.environ["PATH"]}
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(": ")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve

    def log_message(self, *args: object) -> None:
        pass


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@GROUP
def test_train_publish_pushes_with_git_inside_the_runtime_image(runtime: str, tmp_path: Path) -> None:
    """The model branch and tag `mlci train` publishes (mlci.train.gitops.publish, with the image's git) reach an
    origin that demands a password, given through the Git plugin's gitUsernamePassword binding: GIT_ASKPASS
    is a script under WORKSPACE@tmp, GIT_USERNAME/GIT_PASSWORD are passed by name."""
    GitServer.root = tmp_path / "srv"
    origin = GitServer.root / "svc.git"
    origin.parent.mkdir()
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/svc.git"
        seed = tmp_path / "seed"
        _git(tmp_path, "init", "-q", "-b", "main", str(seed))
        (seed / "models.lock").write_text("version: 1\nfiles: []\n")
        _git(seed, "add", "-A")
        _git(seed, "commit", "-q", "-m", "service")
        _git(seed, "push", "-q", str(origin), "main")
        ws = tmp_path / "ws"
        _git(tmp_path, "clone", "-q", str(origin), str(ws))
        _git(ws, "remote", "set-url", "origin", url)
        _git(ws, "checkout", "-q", "--detach")  # as Jenkins checks out
        (ws / "models.lock").write_text("version: 1\nfiles: [new]\n")
        askpass = Path(f"{ws}@tmp") / "secretFiles" / "c3d4" / "pass.sh"
        askpass.parent.mkdir(parents=True)
        askpass.write_text('#!/bin/sh\ncase "$1" in\n  Username*) echo "$GIT_USERNAME" ;;\n  *) echo "$GIT_PASSWORD" ;;\nesac\n')
        askpass.chmod(0o700)
        env = {"GIT_ASKPASS": str(askpass), "GIT_USERNAME": GitServer.user, "GIT_PASSWORD": GitServer.password,
               "GIT_TERMINAL_PROMPT": "false"}
        script = ("from pathlib import Path\nfrom mlci.train import gitops\n"
                  "p = gitops.publish(Path('.'), [Path('models.lock')], service='svc', tag_pattern='{service}-model-{n}',"
                  " branch_prefix='mlci/train/', message='svc: new model {tag}', remote='origin', push=True)\n"
                  "print(p.tag, p.branch, p.pushed)\n")
        proc = in_image(runtime, ws, "-c", script, env=env, entrypoint="/opt/mlci/bin/python")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.split() == ["svc-model-1", "mlci/train/svc-model-1", "True"]
        assert _git(origin, "tag", "-l") == "svc-model-1"
        assert _git(origin, "show", "svc-model-1:models.lock") == "version: 1\nfiles: [new]"
        assert "mlci/train/svc-model-1" in _git(origin, "branch", "--list")
        # Without the password the same push is refused: the credential really went through GIT_ASKPASS.
        (ws / "models.lock").write_text("version: 1\nfiles: [other]\n")
        refused = in_image(runtime, ws, "-c", script, env={**env, "GIT_PASSWORD": "wrong"},
                           entrypoint="/opt/mlci/bin/python")
        assert refused.returncode != 0 and "Authentication failed" in refused.stderr + refused.stdout
        assert GitServer.password not in proc.stdout + proc.stderr + refused.stdout + refused.stderr
    finally:
        server.shutdown()
