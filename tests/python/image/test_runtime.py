"""The runtime image (docker/Dockerfile): mlci + docker CLI, and a stage run from inside it the way Jenkins does
(Docker socket mounted, workspace mounted at the same path)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from ..conftest import DOCKER, run_mlci
from .service import GROUP, service  # noqa: F401 (fixture)


@GROUP
def test_runtime_image_runs_a_stage_like_jenkins(service, tmp_path: Path) -> None:  # noqa: F811
    tag = f"mlci-t5-runtime-{uuid.uuid4().hex[:8]}:test"
    try:
        built = run_mlci("build", "--runtime", "--tag", tag, env=service.env, timeout=900)
        assert built.returncode == 0, built.stderr[-3000:]
        version = run_mlci("--version").stdout.strip()
        out = subprocess.run([DOCKER, "run", "--rm", tag, "--version"], capture_output=True, text=True)
        assert out.stdout.strip() == version
        cli = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "docker", tag, "--version"],
                             capture_output=True, text=True)
        assert cli.returncode == 0 and "Docker version" in cli.stdout
        wheels = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "sh", tag, "-c", "ls $MLCI_WHEELHOUSE"],
                                capture_output=True, text=True).stdout.split()
        assert any(w.startswith("mlci-") for w in wheels) and any(w.startswith("scipy-") for w in wheels)

        # Jenkins: workspace at the same path, socket mounted, `mlci test unit` inside the runtime image
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        (out_dir / "build.json").write_text((service.out / "build.json").read_text())
        root = str(service.root)
        proc = subprocess.run([DOCKER, "run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                               "-v", f"{root}:{root}", "-v", f"{out_dir}:{out_dir}", "-w", root, tag,
                               "test", "unit", "--out", str(out_dir)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "3 passed" in proc.stdout
        assert (out_dir / "junit" / "unit.xml").is_file()
    finally:
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True)
