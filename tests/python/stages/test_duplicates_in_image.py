"""The duplicate-input warning on the real path: a test set with repeated rows, uploaded to the S3 server and pinned
in ml-ci.yaml, judged by `mlci test accuracy` in the image built by the real Docker engine -- on digits (labels) and
churn (probabilities, three gates). The clean test sets raise no warning (tests/python/stages/test_docker_run.py)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import boto3
import numpy as np

from ..conftest import run_mlci
from ..image.service import churn, copy_service, git, image_group, service  # noqa: F401

GROUP = image_group(__name__)


def with_repeats(src: Path, dst: Path, share: float) -> None:
    """The test set with `share` of its rows overwritten by verbatim copies of other rows (labels and ids kept
    with their inputs, so the copies are real repeats of a labelled example, each with an id of its own)."""
    z = dict(np.load(src))
    rng = np.random.default_rng(0)
    n = len(z["y"])
    k = int(n * share)
    perm = rng.permutation(n)
    targets, sources = perm[:k], perm[k:][rng.integers(0, n - k, k)]
    for name in ("x", "y"):
        z[name][targets] = z[name][sources]
    np.savez(dst, **z)


def judged_with_repeats(svc, tmp_path: Path, example: str, share: float) -> tuple[dict, str]:  # noqa: ANN001
    root = copy_service(svc.root, tmp_path / "service")
    s3 = boto3.client("s3")
    original, repeated = tmp_path / "test.npz", tmp_path / "repeated.npz"
    s3.download_file(svc.bucket, f"{example}/data/{example}-test.npz", str(original))
    with_repeats(original, repeated, share)
    key = f"{example}/data/{example}-test-repeated.npz"
    s3.upload_file(str(repeated), svc.bucket, key)
    cfg = (root / "ml-ci.yaml").read_text()
    cfg, count = re.subn(rf"uri: s3://{svc.bucket}/{example}/data/{example}-test\.npz\n(\s+)sha256: [0-9a-f]{{64}}",
                         rf"uri: s3://{svc.bucket}/{key}\n\g<1>sha256: {hashlib.sha256(repeated.read_bytes()).hexdigest()}",
                         cfg)
    assert count == 1
    (root / "ml-ci.yaml").write_text(cfg)
    git(root, "commit", "-qam", "a test set with repeated rows")
    out = tmp_path / "out"
    built = run_mlci("build", "--out", str(out), cwd=root, env=svc.env, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    proc = run_mlci("test", "accuracy", "--suite", "smoke", "--out", str(out), cwd=root, env=svc.env, timeout=900)
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    return json.loads((out / "accuracy" / "smoke" / "accuracy.json").read_text()), proc.stdout + proc.stderr


@GROUP
def test_repeated_digits_inputs_are_reported(service, tmp_path: Path) -> None:  # noqa: F811
    rec, log = judged_with_repeats(service, tmp_path, "digits", 0.25)
    dups = rec["dataset"]["duplicates"]
    assert dups["checked"] == rec["sample"]["drawn"] and dups["exact"] > 0.05 * dups["checked"], dups
    assert "mlci: warning: dataset digits-test" in log and f"{dups['exact']} exactly" in log


@GROUP
def test_repeated_churn_inputs_are_reported(churn, tmp_path: Path) -> None:  # noqa: F811
    rec, log = judged_with_repeats(churn, tmp_path, "churn", 0.4)
    dups = rec["dataset"]["duplicates"]
    assert dups["exact"] > 0.05 * dups["checked"] and "mlci: warning: dataset churn-test" in log, dups
