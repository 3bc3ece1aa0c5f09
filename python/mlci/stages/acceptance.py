"""`mlci test acceptance`: the service in one container, the acceptance command in a second one.

Both sit on a private (internal) network created for this run; the tests reach the service by its container
name through $MLCI_SERVICE_URL. Health is probed by Docker's own healthcheck running inside the service
container (python3 is there: mlci is installed in the image), so this works the same from a laptop and from
Jenkins' runtime container, which cannot reach the private network itself. On a health timeout or an early
exit the stage fails with the service's logs and state. Containers and the network are removed whatever
happens (failure, Ctrl-C, Jenkins' SIGTERM).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container

import docker

from ..config.loader import Config
from ..errors import StageFailed, UserError
from ..paths import cache_dir
from ..progress import Progress
from .containers import (
    Cleanup,
    bind,
    cleanup_always,
    client,
    host_user,
    leases_dir,
    new_run_id,
    state_summary,
    stream_logs,
    tail_logs,
)
from .docker_run import image_git_env, run_line, shell_line, with_umask
from .image import Image, resolve
from .run import OUT_IN_CONTAINER, collect_junit, git_env, junit_env, run_command

PROBE = ("import sys, urllib.request\n"
         "try:\n"
         "    r = urllib.request.urlopen(sys.argv[1], timeout=2)\n"
         "    sys.exit(0 if 200 <= r.status < 400 else 1)\n"
         "except Exception as e:\n"
         "    print(type(e).__name__, e)\n"
         "    sys.exit(1)\n")
NS = 1_000_000_000
# the same probe on one line (a printed health command must be one shell line); an exception exits 1
PROBE_LINE = ("import sys, urllib.request; "
              "sys.exit(0 if 200 <= urllib.request.urlopen(sys.argv[1], timeout=2).status < 400 else 1)")


@dataclass
class AcceptanceResult:
    junit: Path
    healthy_after_s: float  # container start -> first healthy probe
    tests_s: float


def healthcheck(port: int, path: str, interval_s: float = 0.25) -> dict:
    """Docker healthcheck spec: probe every `interval_s`; retries are unbounded because mlci owns the timeout."""
    return {"test": ["CMD", "python3", "-c", PROBE, f"http://127.0.0.1:{port}{path}"],
            "interval": int(interval_s * NS), "timeout": 2 * NS, "retries": 1_000_000, "start_period": 0}


def wait_healthy(container: Container, timeout_s: float, poll_s: float = 0.1, *, stage: str = "acceptance",
                 key: str = "tests.acceptance.serve") -> float:
    """Seconds until Docker reports healthy; StageFailed with logs and state on timeout or early exit."""
    t0 = time.monotonic()
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        if (state.get("Health") or {}).get("Status") == "healthy":
            return time.monotonic() - t0
        if state.get("Status") in ("exited", "dead"):
            raise StageFailed(_service_failure(container, "the service exited before it became healthy", stage, key))
        if time.monotonic() - t0 > timeout_s:
            raise StageFailed(_service_failure(
                container, f"the service did not become healthy within {timeout_s:.0f}s ({key}.timeout)", stage, key))
        time.sleep(poll_s)


def _service_failure(container: Container, what: str, stage: str = "acceptance",
                     key: str = "tests.acceptance.serve") -> str:
    logs = tail_logs(container, 60).rstrip() or "(no output)"
    return (f"{stage}: {what}\n  container {container.name}: {state_summary(container)}\n"
            f"  last service logs:\n    " + logs.replace("\n", "\n    ") +
            f"\n  fix: check {key} (command, port, health path) and the service's start-up")


@dataclass
class Served:
    """A running, healthy service on a private network of its own."""

    container: Container
    network: str  # the network's name: containers that talk to the service join it
    url: str  # http://<container name>:<port>, as seen from that network
    healthy_after_s: float


@contextmanager
def serving(cfg: Config, dc: docker.DockerClient, tracker: Cleanup, img: Image, serve: dict[str, Any], *,
            stage: str, key: str, lifetime_s: float, progress: Progress) -> Iterator[Served]:
    """Start the service from `img` on a new internal network and wait until Docker's healthcheck passes. The
    network and the container belong to `tracker` (removed on every exit path by `cleanup_always`)."""
    service = cfg["service"]
    run_id = tracker.run_id
    svc_name = f"mlci-{service}-svc-{run_id}"
    labels = tracker.labels(stage, serve["timeout"] + lifetime_s)
    net = dc.networks.create(f"mlci-{service}-{run_id}", driver="bridge", internal=True, labels=labels)
    tracker.networks.append(net)
    command = ["/bin/sh", "-c", serve["command"]] if serve["command"] else None
    t_create = time.monotonic()
    try:
        svc = dc.containers.create(img.ref, command, name=svc_name, network=net.name, labels=labels,
                                   environment={"PORT": str(serve["port"]), **git_env(cfg.root)},
                                   healthcheck=healthcheck(serve["port"], serve["health"]))
    except docker.errors.APIError as exc:
        raise StageFailed(f"{stage}: could not create the service container: {exc}") from None
    tracker.containers.append(svc)
    progress.log(f"starting {svc_name} from {img.name}; waiting for {serve['health']} on port {serve['port']} "
                 f"(timeout {serve['timeout']}s)")
    svc.start()
    stream_logs(svc, "[service] ")
    wait_healthy(svc, float(serve["timeout"]), stage=stage, key=key)
    yield Served(svc, net.name, f"http://{svc_name}:{serve['port']}", time.monotonic() - t_create)


def docker_run_lines(cfg: Config, img: Image, out: Path) -> str:
    """The stage as plain docker commands, one per line (docker_run.py): a private network, the service with the
    same healthcheck, a wait for it to be healthy, the tests from a second container (JUnit straight to
    <out>/junit/acceptance.xml), and the clean-up."""
    acc = cfg["tests"]["acceptance"]
    serve = acc["serve"]
    net, svc = f"mlci-{cfg['service']}-local", f"mlci-{cfg['service']}-local-svc"
    url = f"http://{svc}:{serve['port']}"
    out_abs = out.resolve()
    git = image_git_env(img)
    probe = shlex.join(["python3", "-c", PROBE_LINE, f"http://127.0.0.1:{serve['port']}{serve['health']}"])
    serve_argv = ["/bin/sh", "-c", serve["command"]] if serve["command"] else []
    start = run_line(image=img.ref, attrs=img.attrs, argv=serve_argv, env={"PORT": str(serve["port"]), **git},
                     volumes={}, network=net, name=svc, detach=True, remove=False,
                     extra=["--health-cmd", probe, "--health-interval", "1s", "--health-timeout", "2s"])
    healthy = (f"until [ \"$(docker inspect -f {shlex.quote('{{.State.Health.Status}}')} {shlex.quote(svc)})\" "
               "= healthy ]; do sleep 1; done")
    tests = run_line(image=img.ref, attrs=img.attrs, argv=["/bin/sh", "-c", with_umask(acc["command"])],
                     env={"HOME": "/tmp", "MLCI_OUT": OUT_IN_CONTAINER, **git, **junit_env("junit/acceptance.xml"),
                          "MLCI_SERVICE_URL": url},
                     volumes=bind(out_abs, OUT_IN_CONTAINER), network=net, user=host_user())
    return "\n".join([shell_line(["docker", "network", "create", "--internal", net], mkdirs=[out_abs]),
                      shell_line(start),
                      shell_line(["timeout", str(serve["timeout"]), "sh", "-c", healthy]),
                      shell_line(tests),
                      shell_line(["docker", "rm", "-f", svc]) + "; " + shell_line(["docker", "network", "rm", net])])


def run_acceptance(cfg: Config, out: Path, *, image: str | None = None,
                   print_only: bool = False) -> AcceptanceResult | None:
    """Run the acceptance tests; `print_only`: print the equivalent plain docker commands, run nothing."""
    acc = cfg["tests"]["acceptance"]
    if not acc:
        raise UserError("no acceptance tests configured", where=str(cfg.path),
                        hint="add tests.acceptance.command (the service URL is $MLCI_SERVICE_URL) or skip the stage")
    serve = acc["serve"]
    dc = client()
    img = resolve(out, image, dc, root=cfg.root)
    lines = docker_run_lines(cfg, img, out)
    if print_only:
        print(lines, flush=True)
        return None
    progress = Progress(0, "acceptance")
    progress.log("the same tests with plain docker (JUnit in " f"{out / 'junit'}):\n  " + lines.replace("\n", "\n  "))
    run_id = new_run_id()
    timeout_s = acc["timeout"] * 60
    leases = leases_dir(cache_dir(cfg["artifacts"]["cache"]))
    with cleanup_always(dc, leases=leases, run_id=run_id, log=progress.log) as tracker, \
            serving(cfg, dc, tracker, img, serve, stage="acceptance", key="tests.acceptance.serve",
                    lifetime_s=timeout_s, progress=progress) as served:
        url = served.url
        healthy_after = served.healthy_after_s  # container create + start -> first healthy probe
        progress.log(f"service healthy after {healthy_after:.2f}s; running `{acc['command']}` against {url}")
        result = run_command(dc, tracker, image=img.ref, command=acc["command"], stage="acceptance",
                             out=out, timeout_s=timeout_s, network=served.network,
                             name=f"mlci-{cfg['service']}-acc-{run_id}",
                             env={**git_env(cfg.root), **junit_env(), "MLCI_SERVICE_URL": url})
        if result.exit_code != 0:
            svc_logs = tail_logs(served.container, 30).rstrip()
    report = collect_junit(result, out, "acceptance", acc["command"], timeout_s)
    if result.exit_code is None:
        raise StageFailed(f"acceptance tests timed out after {acc['timeout']} min (tests.acceptance.timeout); "
                          f"JUnit: {report}")
    if result.exit_code != 0:
        raise StageFailed(f"acceptance tests failed: `{acc['command']}` exited {result.exit_code} against {url}; "
                          f"JUnit: {report}\n  last service logs:\n    " + svc_logs.replace("\n", "\n    "))
    progress.close(f"passed in {result.duration_s:.1f}s (service healthy after {healthy_after:.2f}s); "
                   f"JUnit: {report}")
    return AcceptanceResult(report, healthy_after, result.duration_s)
