"""In-process CLI runs for the drift tests: the same `mlci.cli.main` (argument parsing, exit-code mapping,
UserError printing) without a new interpreter per call, which on a loaded 2-core agent costs seconds each
(scipy import). A few tests still run the real subprocess for the process-level contract."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlci.cli import main


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def mlci(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Run]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLCI_CONFIG", raising=False)
    monkeypatch.delenv("JENKINS_URL", raising=False)

    def run(*args: str, env: dict[str, str] | None = None, check: bool = False) -> Run:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        if check and code != 0:
            raise AssertionError(f"mlci {' '.join(args)} exited {code}\n{out}\n{err}")
        return Run(code, out, err)

    return run
