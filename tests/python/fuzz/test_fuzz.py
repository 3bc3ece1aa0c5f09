"""Hostile configs, lock files, `.dvc` files, `dvc.lock`, DVC configs and datasets against the real CLI and S3
server (tests/python/fuzz/harness.py): no traceback, no hang, no exit code but 0 or 2 (or a model's verdict).

The seed is fixed, so a failure reproduces; MLCI_FUZZ_SEED explores other cases, and
`python tests/python/fuzz/harness.py --seed N --cases M --keep` keeps the case files for a closer look.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from . import harness

CASES = 2400  # one run: two halves, side by side on two xdist workers
SEED = int(os.environ.get("MLCI_FUZZ_SEED") or 1)


@pytest.mark.parametrize("half", [0, 1])
def test_fuzzed_inputs_exit_0_or_2_without_traceback_or_hang(half: int, tmp_path: Path, s3_endpoint: str) -> None:
    summary = harness.run(tmp_path, CASES // 2, SEED, first=half * CASES // 2)
    print(f"seed {SEED}, cases {half * CASES // 2}..{(half + 1) * CASES // 2 - 1}: {summary.line()}")
    assert summary.cases == CASES // 2 and set(summary.by_kind) == {k for k, _ in harness.KINDS}
    assert not (summary.tracebacks or summary.hangs or summary.crashes or summary.bad_exits), \
        f"seed {SEED}: {summary.line()}\n{summary.examples()}"
