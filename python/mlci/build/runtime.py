"""The mlci runtime image (docker/Dockerfile): what Jenkins runs every mlci step in.

Built from the same wheelhouse as service images plus the agent's docker client, air-gapped, tagged
mlci:<version> (the default of pipeline.runner_image).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .. import __version__
from ..errors import StageFailed, UserError
from ..paths import cache_dir
from ..progress import Progress
from .dockercli import docker_bin, last_error_lines, run_build
from .wheelhouse import Wheelhouse, ensure_image, mlci_source_dir, mlci_wheelhouses


def runtime_dockerfile() -> Path:
    src = mlci_source_dir()
    path = src.parent / "docker" / "Dockerfile" if src else None
    if not path or not path.is_file():
        raise UserError("docker/Dockerfile not found next to the mlci sources",
                        hint="run `mlci build --runtime` from an mlci checkout")
    return path


def tools_wheelhouse(progress: Progress) -> Wheelhouse:
    """A directory holding the docker client binary, keyed by its digest (wrapped in an image like the wheels)."""
    docker = Path(docker_bin())
    key = hashlib.sha256(docker.read_bytes()).hexdigest()
    d = cache_dir() / "wheelhouse" / f"tools-{key[:16]}"
    if not (d / "docker").is_file():
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy2(docker, d / ".docker.tmp")
        (d / ".docker.tmp").replace(d / "docker")
    return Wheelhouse("tools", key, d)


def build_runtime(base: str, tag: str | None = None) -> str:
    progress = Progress(0, "runtime")
    dockerfile = runtime_dockerfile()
    deps_wh, mlci_wh = mlci_wheelhouses(progress)
    deps, wheels = ensure_image(deps_wh, progress), ensure_image(mlci_wh, progress)
    tools = ensure_image(tools_wheelhouse(progress), progress)
    tag = tag or f"mlci:{__version__}"
    args = ["--file", str(dockerfile), "--tag", tag, "--build-arg", f"BASE_IMAGE={base}",
            "--build-arg", f"MLCI_DEPS_WHEELS={deps}", "--build-arg", f"MLCI_WHEELS={wheels}", "--build-arg", f"MLCI_TOOLS={tools}",
            "--build-arg", f"MLCI_VERSION={__version__}", str(dockerfile.parent)]
    result = run_build(args)
    if result.returncode != 0:
        raise StageFailed(f"runtime image build failed:\n{last_error_lines(result.output)}")
    progress.close(f"built {tag}")
    return tag
