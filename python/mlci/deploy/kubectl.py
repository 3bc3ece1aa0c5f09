"""kubectl orchestration: preflight the context, apply server-side, wait for the rollout, undo on failure.

Why kubectl (not a client library): it is what operators run by hand, it honours every kubeconfig auth plugin,
and Jenkins binds the kubeconfig as a file credential into $KUBECONFIG. The kubeconfig therefore reaches
kubectl only through the environment, never through argv, and every line of kubectl output we print passes
through `Redactor`, which masks the kubeconfig's tokens, passwords and keys and the kubeconfig's path.

The context is resolved once (configured, else the current one) and passed as `--context` to every call, so a
context switch by someone else mid-deploy cannot redirect the rollout to another cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from ..errors import UserError

SECRET_KEYS = ("token", "password", "client-key-data", "client-certificate-data", "id-token", "refresh-token",
               "access-token", "client-secret", "secret")
SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)\S+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWTs (service-account tokens)
    # `token: x` / `password=x` as whole words (not automountServiceAccountToken: false)
    re.compile(r"(?i)((?<![A-Za-z0-9_-])(?:token|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
)
MASK = "***"
DIAG_PODS = 3
LOG_LINES = 30
DEFAULT_TIMEOUT = 120  # seconds for kubectl calls other than rollout status


def kubeconfig_paths(environ: dict[str, str] | os._Environ[str] | None = None) -> list[Path]:
    env = os.environ if environ is None else environ
    value = env.get("KUBECONFIG")
    if value:
        return [Path(p) for p in value.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _secret_values(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        # exec credential plugins pass secrets as env: [{name: AWS_SECRET_ACCESS_KEY, value: ...}]
        if isinstance(node.get("name"), str) and isinstance(node.get("value"), str) and \
                re.search(r"(?i)(secret|token|password|key|credential)", node["name"]) and len(node["value"]) >= 4:
            out.add(node["value"])
        for key, value in node.items():
            if isinstance(value, str) and any(s in str(key).lower() for s in SECRET_KEYS) and len(value) >= 4:
                out.add(value)
            else:
                _secret_values(value, out)
    elif isinstance(node, list):
        for item in node:
            _secret_values(item, out)


@dataclass
class Redactor:
    """Masks known secrets (read from the kubeconfig files) and secret-shaped strings in text we print."""

    secrets: list[str] = field(default_factory=list)

    @classmethod
    def from_kubeconfig(cls, environ: dict[str, str] | None = None) -> Redactor:
        secrets: set[str] = set()
        env = os.environ if environ is None else environ
        if env.get("KUBECONFIG"):
            secrets.add(env["KUBECONFIG"])
        for path in kubeconfig_paths(environ):
            secrets.add(str(path))
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            _secret_values(data, secrets)
        # Longest first, so a secret containing another is masked whole.
        return cls(sorted((s for s in secrets if s), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern in SECRET_PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
        return text


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error_text(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip() or f"exit code {self.returncode}")
        return text + (" (timed out)" if self.timed_out else "")


@dataclass(frozen=True)
class Target:
    context: str
    namespace: str

    def args(self) -> list[str]:
        return ["--context", self.context, "-n", self.namespace]


@dataclass(frozen=True)
class Rollout:
    """A Deployment to wait for, and the label selector of its new pods (for diagnostics)."""

    name: str
    selector: dict[str, str]


def find_kubectl() -> str:
    exe = shutil.which("kubectl")
    if not exe:
        raise UserError("kubectl not found on PATH", hint="install kubectl on the agent (or use the mlci runtime image)")
    return exe


class Kubectl:
    """Runs kubectl with the caller's environment (KUBECONFIG) and prints only redacted output."""

    def __init__(self, exe: str, *, redact: Redactor, stream: TextIO | None = None):
        self.exe = exe
        self.redact = redact
        self.stream = stream or sys.stderr

    def say(self, text: str) -> None:
        self.stream.write(self.redact(text).rstrip("\n") + "\n")
        self.stream.flush()

    def run(self, args: Sequence[str], *, stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            echo: bool = False) -> Result:
        """Run `kubectl args`; with echo, print stdout lines as they come (rollout progress in the Jenkins log)."""
        argv = [self.exe, *args]
        self.say("$ " + shlex.join(["kubectl", *args]))
        try:
            # Own process group: a timeout also kills auth plugins kubectl started, which would hold the pipes open.
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        except OSError as exc:
            raise UserError(f"cannot run kubectl: {exc.strerror}", hint="check kubectl on PATH") from None
        timed_out = threading.Event()

        def kill_group() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        def kill() -> None:
            timed_out.set()
            kill_group()

        timer = threading.Timer(timeout, kill)
        timer.start()
        err_chunks: list[str] = []
        reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read() if proc.stderr else ""))
        reader.start()
        try:
            if stdin is not None and proc.stdin:
                try:
                    proc.stdin.write(stdin)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            out_lines = []
            for line in proc.stdout or []:
                out_lines.append(line)
                if echo:
                    self.say("  " + line)
            proc.wait()
        except BaseException:  # Ctrl-C / abort: do not leave a rollout watcher behind
            kill_group()
            raise
        finally:
            timer.cancel()
            reader.join()
        return Result(list(args), proc.returncode, "".join(out_lines), "".join(err_chunks), timed_out.is_set())


def resolve_context(kc: Kubectl, configured: str | None, env_name: str) -> str:
    """The context every call will use: the configured one (which must exist), else the current one."""
    where = f"deploy.environments.{env_name}.context"
    listing = kc.run(["config", "get-contexts", "-o", "name"])
    if not listing.ok:
        raise UserError(f"kubectl cannot read the kubeconfig: {kc.redact(listing.error_text())}",
                        hint="set KUBECONFIG (Jenkins binds it from deploy.environments.<env>.kubeconfig_credentials)")
    names = [n.strip() for n in listing.stdout.splitlines() if n.strip()]
    if configured:
        if configured not in names:
            raise UserError(f"kube context '{configured}' is not in the kubeconfig", where=where,
                            hint=f"available contexts: {', '.join(names) or '(none)'}; fix the context name or the "
                                 "kubeconfig credentials bound for this environment")
        return configured
    current = kc.run(["config", "current-context"])
    name = current.stdout.strip()
    if not current.ok or not name:
        raise UserError("no kube context: the kubeconfig has no current context", where=where,
                        hint=f"set {where} (available: {', '.join(names) or '(none)'})")
    return name


def plan(target: Target, rollouts: list[Rollout], timeout: int) -> list[list[str]]:
    """The kubectl argv (without 'kubectl') a deploy runs when everything succeeds; also printed by --dry-run."""
    steps = [[*target.args(), "apply", "--server-side", "--field-manager=mlci", "--force-conflicts", "-f", "-"]]
    steps += [[*target.args(), "rollout", "status", f"deployment/{r.name}", f"--timeout={timeout}s"]
              for r in rollouts]
    return steps


@dataclass
class Outcome:
    result: str  # deployed | apply-failed | rolled-back | rollback-failed
    message: str
    failed: list[str] = field(default_factory=list)
    undo: dict[str, bool] = field(default_factory=dict)


def _diagnose(kc: Kubectl, target: Target, rollout: Rollout) -> None:
    """Events and last log lines of the failed version's pods, so the Jenkins log says why."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(rollout.selector.items()))
    pods = kc.run([*target.args(), "get", "pods", "-l", selector, "-o", "name"])
    names = [p.strip().removeprefix("pod/") for p in pods.stdout.splitlines() if p.strip()] if pods.ok else []
    if not names:
        kc.say(f"no pods found for deployment/{rollout.name} ({selector})")
    for pod in names[:DIAG_PODS]:
        kc.say(f"--- events of pod/{pod}")
        events = kc.run([*target.args(), "get", "events", "--field-selector",
                         f"involvedObject.kind=Pod,involvedObject.name={pod}"])
        kc.say(events.stdout if events.ok and events.stdout.strip() else f"(no events: {events.error_text()})")
        kc.say(f"--- last {LOG_LINES} log lines of pod/{pod}")
        logs = kc.run([*target.args(), "logs", f"pod/{pod}", "--all-containers=true", f"--tail={LOG_LINES}"])
        kc.say(logs.stdout if logs.ok and logs.stdout.strip() else f"(no logs: {logs.error_text()})")


def deploy(kc: Kubectl, target: Target, manifests_yaml: str, rollouts: list[Rollout], timeout: int,
           log: Callable[[str], None]) -> Outcome:
    """Apply, wait, and on a failed rollout undo and diagnose. Returns what happened; raises nothing for
    cluster-side failures (the caller records them)."""
    apply_args, *status_steps = plan(target, rollouts, timeout)
    applied = kc.run(apply_args, stdin=manifests_yaml, echo=True)
    if not applied.ok:
        return Outcome("apply-failed", f"kubectl apply was rejected: {kc.redact(applied.error_text())}")
    failed: list[Rollout] = []
    for rollout, args in zip(rollouts, status_steps, strict=True):
        status = kc.run(args, timeout=timeout + 30, echo=True)
        if not status.ok:
            log(f"rollout of deployment/{rollout.name} failed: {kc.redact(status.error_text())}")
            failed.append(rollout)
            break  # later Deployments are rolled back too; no point waiting for them
    if not failed:
        return Outcome("deployed", "rollout complete")
    undo: dict[str, bool] = {}
    for rollout in rollouts:
        res = kc.run([*target.args(), "rollout", "undo", f"deployment/{rollout.name}"], echo=True)
        undo[rollout.name] = res.ok
        if not res.ok:
            log(f"rollout undo of deployment/{rollout.name} failed: {kc.redact(res.error_text())}")
    for rollout in failed:
        _diagnose(kc, target, rollout)
    names = ", ".join(f"deployment/{r.name}" for r in failed)
    if all(undo.values()):
        return Outcome("rolled-back", f"rollout of {names} did not complete within {timeout}s; rolled back",
                       [r.name for r in failed], undo)
    return Outcome("rollback-failed", f"rollout of {names} did not complete within {timeout}s and the undo "
                   "failed: the cluster may run the new version", [r.name for r in failed], undo)
