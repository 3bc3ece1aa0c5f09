"""Docker image cleanup for tests and benchmarks. Plain module: the benchmarks import it by path too."""

from __future__ import annotations

import subprocess


def remove_images(docker: str, reference: str) -> None:
    """Remove every image matching `reference`, a `docker images` pattern such as `mlci-t5-ab12cd34/*`: each test
    or benchmark tags its images under a unique prefix, so cleanup never touches anyone else's."""
    refs = subprocess.run([docker, "images", "--format", "{{.Repository}}:{{.Tag}}", reference],
                          capture_output=True, text=True).stdout.split()
    if refs:
        subprocess.run([docker, "rmi", "-f", *refs], capture_output=True)
