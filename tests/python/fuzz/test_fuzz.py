"""Hostile configs, lock files, `.dvc` files, `dvc.lock`, DVC configs and datasets against the real CLI and S3
server (tests/python/fuzz/harness.py): no traceback, no hang, no exit code but 0 or 2 (or a model's verdict).

The seed is fixed, so a failure reproduces; MLCI_FUZZ_SEED explores other cases, and
`python tests/python/fuzz/harness.py --seed N --cases M --keep` keeps the case files for a closer look.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import harness

CASES = 2400
SEED = int(os.environ.get("MLCI_FUZZ_SEED") or 1)


def test_fuzzed_inputs_exit_0_or_2_without_traceback_or_hang(tmp_path: Path, s3_endpoint: str) -> None:
    summary = harness.run(tmp_path, CASES, SEED)
    print(f"seed {SEED}: {summary.line()}")
    assert summary.cases >= 2000 and set(summary.by_kind) == {k for k, _ in harness.KINDS}
    assert not (summary.tracebacks or summary.hangs or summary.crashes or summary.bad_exits), \
        f"seed {SEED}: {summary.line()}\n{summary.examples()}"
