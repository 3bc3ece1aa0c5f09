"""Files mlci writes honour the umask like any other program's (they were 0600 whatever the umask): the real CLI
in a subprocess with a given umask, against the real S3 server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .report.samples import accuracy_record, write_results


def _mlci(umask: int, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlci", *args], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(umask), timeout=300)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_lock_file_report_and_placed_models_follow_the_umask(tmp_path: Path, s3_bucket: str, umask: int) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "ml-ci.yaml").write_text(f"service: svc\nartifacts:\n  remote: s3://{s3_bucket}/m\n"
                                     f"  cache: {tmp_path / 'cache'}\n")
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(1000))
    added = _mlci(umask, "models", "add", str(model), cwd=repo)
    assert added.returncode == 0, added.stderr
    pulled = _mlci(umask, "models", "pull", "--dest", str(tmp_path / "placed"), cwd=repo)
    assert pulled.returncode == 0, pulled.stderr
    res = write_results(tmp_path / "res", accuracy_record("PASS"))
    rendered = _mlci(umask, "report", "render", "--results", str(res), "--no-history", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    want = 0o666 & ~umask
    for f in (repo / "models.lock", tmp_path / "placed" / "model.bin", res / "report" / "report.html",
              res / "report" / "report.md"):
        assert _mode(f) == want, f"{f}: {oct(_mode(f))} with umask {oct(umask)}"
