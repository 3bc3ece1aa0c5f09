#!/usr/bin/env python
"""Benchmark of `mlci build` layer reuse and of acceptance orchestration, figures side by side in one run.

    python tests/benchmarks/bench_build.py [--model-mb 50] [--repeat 2]

Set-up (not timed): the digits example in a temp git working copy wired to a fresh bucket on the S3 server
of tests/infra/up, with its trained model plus a --model-mb random "weights" file (a realistic model size:
the 5 KB digits model alone would make a re-download free), registered with `mlci models add`; one full build.
Figures, best of --repeat, each checked against BuildKit's own CACHED markers:
1. no-change rebuild (everything cached) -- the baseline;
2. code-only change rebuild (only the final COPY re-runs); target <= 1.3x the no-change rebuild;
3. rebuild that re-downloads the models (a new model file of the same size: the pull step re-runs and
   fetches --model-mb from S3; its upload by `mlci models add` is not timed);
4. acceptance orchestration: container start -> first healthy answer as mlci sees it (Docker healthcheck
   inside the service container, polled), vs a hand-written baseline (docker run + polling the container's
   IP from the host every 20 ms); and the whole stage's overhead (network + 2 containers + cleanup) on top of
   the acceptance command's own run time.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests" / "python"))

import boto3  # noqa: E402
from dockerimages import remove_images  # noqa: E402
from s3server import remove_bucket  # noqa: E402

from mlci.build.image import build, cached_steps  # noqa: E402
from mlci.build.wheelhouse import mlci_wheelhouses  # noqa: E402
from mlci.config.loader import load_config  # noqa: E402
from mlci.progress import Progress  # noqa: E402
from mlci.stages.acceptance import run_acceptance  # noqa: E402

DOCKER = os.environ.get("MLCI_DOCKER", "docker")
PULL = "mlci models pull"


def sh(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}
    return subprocess.run(list(args), cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def quiet_build(root: Path, out: Path) -> tuple[float, dict[str, bool]]:
    cfg = load_config(root / "ml-ci.yaml")
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        build(cfg, out, echo=io.StringIO())
    seconds = time.perf_counter() - t0
    return seconds, cached_steps((out / "logs" / "build.log").read_text())


def step(steps: dict[str, bool], needle: str) -> bool:
    return next(v for k, v in steps.items() if needle in k)


def write_weights(path: Path, mb: int) -> None:
    path.write_bytes(os.urandom(mb << 20))


def baseline_health(image: str, port: int = 8080) -> float:
    """docker run -d + poll the container IP from the host: the least a hand-written script would do."""
    name = f"bench5-base-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    sh(DOCKER, "run", "-d", "--name", name, "-e", f"PORT={port}", image, "python3", "-m", "digits_service.server")
    try:
        ip = sh(DOCKER, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).strip()
        while True:
            try:
                with urllib.request.urlopen(f"http://{ip}:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.02)
            if time.perf_counter() - t0 > 60:
                raise RuntimeError("baseline service never healthy")
    finally:
        subprocess.run([DOCKER, "rm", "-f", name], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-mb", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    assert os.environ.get("AWS_ENDPOINT_URL"), "source .infra/env.sh (tests/infra/up) first"
    for k in ("GIT_COMMIT", "BRANCH_NAME", "GIT_BRANCH", "MLCI_OUT", "MLCI_CONFIG", "MLCI_IMAGE"):
        os.environ.pop(k, None)

    tag = uuid.uuid4().hex[:8]
    bucket, image = f"bench5-{tag}", f"mlci-bench5-{tag}/digits"
    base = Path(tempfile.mkdtemp(prefix="mlci-bench5-"))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    try:
        root = base / "digits"
        shutil.copytree(ROOT / "examples" / "digits", root,
                        ignore=shutil.ignore_patterns("models", ".mlci", "__pycache__", "models.lock"))
        cfg = (root / "ml-ci.yaml").read_text().replace("mlci-demo", bucket)
        (root / "ml-ci.yaml").write_text(cfg.replace("name: mlci/digits", f"name: {image}"))
        (root / "models").mkdir()
        sh(sys.executable, str(root / "training" / "train.py"), "--out", str(base / "trained"))
        shutil.copy2(base / "trained" / "digits.npz", root / "models" / "digits.npz")
        write_weights(root / "models" / "weights.bin", args.model_mb)
        sh("mlci", "models", "add", "models/digits.npz", "models/weights.bin", cwd=root)
        sh("git", "init", "-q", "-b", "main", cwd=root)
        (root / ".gitignore").write_text("models/\n")
        sh("git", "add", "-A", cwd=root)
        sh("git", "commit", "-q", "-m", "bench", cwd=root)
        # Pin the mlci wheels for the run: mlci sources edited meanwhile would (rightly) invalidate every layer.
        pinned = base / "wheelhouse"
        pinned.mkdir()
        with contextlib.redirect_stderr(io.StringIO()):
            for wh in mlci_wheelhouses(Progress(0, "bench"), need_files=True):
                for wheel in wh.directory.glob("*.whl"):
                    shutil.copy2(wheel, pinned / wheel.name)
        os.environ["MLCI_WHEELHOUSE"] = str(pinned)
        out = base / "out"
        print(f"set-up: first build (wheelhouses, base layers, {args.model_mb} MB of models) ...", flush=True)
        first, _ = quiet_build(root, out)
        print(f"  first build {first:.1f}s")

        nochange, code, redl = [], [], []
        server = root / "digits_service" / "server.py"
        for i in range(args.repeat):
            s, steps = quiet_build(root, out)
            rerun = [k for k, v in steps.items() if k.startswith("[stage") and " FROM " not in k and not v]
            assert not rerun, f"no-change rebuild re-ran {rerun}"
            nochange.append(s)
            server.write_text(server.read_text() + f"\n# code change {i}\n")
            s, steps = quiet_build(root, out)
            assert step(steps, PULL) and not step(steps, "COPY . ."), "code-only change: wrong layers re-ran"
            code.append(s)
            write_weights(root / "models" / "weights.bin", args.model_mb)
            sh("mlci", "models", "add", "models/weights.bin", cwd=root)
            s, steps = quiet_build(root, out)
            assert not step(steps, PULL), "model change: the pull step did not re-run"
            assert "weights.bin" in (out / "logs" / "build.log").read_text()
            redl.append(s)

        cfg_obj = load_config(root / "ml-ci.yaml")
        ours, stage_total, tests_time, base_h = [], [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                res = run_acceptance(cfg_obj, out)
            stage_total.append(time.perf_counter() - t0)
            ours.append(res.healthy_after_s)
            tests_time.append(res.tests_s)
            base_h.append(baseline_health(f"{image}:main"))

        b_no, b_code, b_re = min(nochange), min(code), min(redl)
        print(f"\nmlci build, best of {args.repeat} (model files: digits.npz 5.5 KB + weights.bin {args.model_mb} MB)")
        print(f"  {'no-change rebuild (baseline)':46s} {b_no:7.2f}s  1.00x")
        print(f"  {'code-only change (model layer CACHED)':46s} {b_code:7.2f}s  {b_code / b_no:4.2f}x   target <= 1.3x"
              f"  {'OK' if b_code / b_no <= 1.3 else 'MISSED'}")
        print(f"  {'re-download rebuild (new model, pull re-runs)':46s} {b_re:7.2f}s  {b_re / b_no:4.2f}x")
        print(f"  code-only / re-download: {b_code / b_re:4.2f}x  (the re-download costs {b_re - b_code:.2f}s more)")
        o, b = min(ours), min(base_h)
        overhead = min(t - x for t, x in zip(stage_total, tests_time, strict=True))
        print(f"\nacceptance orchestration, best of {args.repeat}")
        print(f"  {'start -> first healthy (mlci: Docker healthcheck)':52s} {o:6.2f}s  {o / b:4.2f}x")
        print(f"  {'start -> first healthy (baseline: poll IP, 20 ms)':52s} {b:6.2f}s  1.00x")
        print(f"  {'whole stage minus the acceptance command':52s} {overhead:6.2f}s  "
              f"(network, service + test containers, health wait, cleanup; command {min(tests_time):.2f}s)")
    finally:
        remove_bucket(s3, bucket)
        remove_images(DOCKER, f"mlci-bench5-{tag}/*")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
