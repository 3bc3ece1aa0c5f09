"""`mlci test unit`: tests.unit.command inside the built image, JUnit XML to <out>/junit/unit.xml.

No network (`network_mode=none`): unit tests that need a service or S3 are acceptance tests.
"""

from __future__ import annotations

from pathlib import Path

from ..config.loader import Config
from ..errors import StageFailed, UserError
from ..paths import cache_dir
from ..progress import Progress
from .containers import cleanup_always, client, leases_dir
from .image import resolve
from .run import collect_junit, git_env, junit_env, run_command


def run_unit(cfg: Config, out: Path, *, image: str | None = None) -> Path:
    """Run the unit tests; return the JUnit path; raise StageFailed (exit 1) when they fail or time out."""
    unit = cfg["tests"]["unit"]
    if not unit:
        raise UserError("no unit tests configured", where=str(cfg.path),
                        hint="add tests.unit.command (e.g. python3 -m pytest tests/unit -q) or skip the stage")
    dc = client()
    img = resolve(out, image, dc, root=cfg.root)
    progress = Progress(0, "unit")
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
