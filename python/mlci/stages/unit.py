"""`mlci test unit`: tests.unit.command inside the built image, JUnit XML to <out>/junit/unit.xml.

No network (`network_mode=none`): unit tests that need a service or S3 are acceptance tests.
"""

from __future__ import annotations

from pathlib import Path

from ..config.loader import Config
from ..errors import StageFailed, UserError
from ..paths import cache_dir
from ..progress import Progress
from .containers import bind, cleanup_always, client, host_user, leases_dir
from .docker_run import image_git_env, run_line, shell_line, with_umask
from .image import Image, resolve
from .run import OUT_IN_CONTAINER, collect_junit, git_env, junit_env, run_command


def docker_run_line(command: str, img: Image, out: Path) -> str:
    """The stage as one plain `docker run` line (docker_run.py): JUnit straight to <out>/junit/unit.xml."""
    out_abs = out.resolve()
    env = {"HOME": "/tmp", "MLCI_OUT": OUT_IN_CONTAINER, **image_git_env(img), **junit_env("junit/unit.xml")}
    line = run_line(image=img.ref, attrs=img.attrs, argv=["/bin/sh", "-c", with_umask(command)], env=env,
                    volumes=bind(out_abs, OUT_IN_CONTAINER), network="none", user=host_user())
    return shell_line(line, mkdirs=[out_abs])


def run_unit(cfg: Config, out: Path, *, image: str | None = None, print_only: bool = False) -> Path | None:
    """Run the unit tests; return the JUnit path; raise StageFailed (exit 1) when they fail or time out.
    `print_only`: print the equivalent `docker run` line and run nothing (returns None)."""
    unit = cfg["tests"]["unit"]
    if not unit:
        raise UserError("no unit tests configured", where=str(cfg.path),
                        hint="add tests.unit.command (e.g. python3 -m pytest tests/unit -q) or skip the stage")
    dc = client()
    img = resolve(out, image, dc, root=cfg.root)
    line = docker_run_line(unit["command"], img, out)
    if print_only:
        print(line, flush=True)
        return None
    progress = Progress(0, "unit")
    progress.log(f"the same tests with plain docker (JUnit in {out / 'junit'}):\n  {line}")
    timeout_s = unit["timeout"] * 60
    progress.log(f"running `{unit['command']}` in {img.name} ({img.ref[:19]})")
    with cleanup_always(dc, leases=leases_dir(cache_dir(cfg["artifacts"]["cache"])), log=progress.log) as tracker:
        result = run_command(dc, tracker, image=img.ref, command=unit["command"], stage="unit", out=out,
                             env={**git_env(cfg.root), **junit_env()}, timeout_s=timeout_s,
                             name=f"mlci-{cfg['service']}-unit-{tracker.run_id}", network_mode="none")
    report = collect_junit(result, out, "unit", unit["command"], timeout_s)
    if result.exit_code is None:
        raise StageFailed(f"unit tests timed out after {unit['timeout']} min (tests.unit.timeout) and were "
                          f"killed; JUnit: {report}")
    if result.exit_code != 0:
        raise StageFailed(f"unit tests failed: `{unit['command']}` exited {result.exit_code} in {img.name}; "
                          f"JUnit: {report}")
    progress.close(f"passed in {result.duration_s:.1f}s; JUnit: {report}")
    return report
