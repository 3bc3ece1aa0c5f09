#!/usr/bin/env python
"""Benchmark of `mlci models pull` against raw boto3 on the same S3 server and files, printed side by side.

    python tests/benchmarks/bench_artifacts.py [--size 2G] [--files 100] [--jobs 8] [--repeat 3] [--lock-entries 2000]

A private S3 server process (moto) serves ~100 files (a few large ones, the rest 1-10 MB). Figures:
- cold pull (empty cache, empty DEST, sha256 verified, temp+rename, cache + a copy or reflink in DEST) vs a
  hand-written parallel boto3 download of the same files (same parallelism: files and 16 MiB parts; no
  hashing); target <= 1.1x;
- sha256 of a large file by mlci's hasher vs `hashlib.file_digest` on one core; target >= 90%;
- warm no-op pull (DEST already matches) through the `mlci` CLI, interpreter start-up and imports included;
  target < 0.5 s; baseline: the bare interpreter's start-up; and whether boto3 was imported (it must not be:
  no S3 call is needed);
- a lock file of --lock-entries entries (small files): parsing it (mlci) vs PyYAML's pure-Python safe_load of
  the same text (a plain implementation; mlci read such a file twice that way before), and a warm no-op pull of
  it through the CLI; target: parse < 0.1 s, warm pull < 1 s.
Best of --repeat runs each (default 3), alternating which side goes first. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests" / "python"))

from s3server import free_port, start_moto  # noqa: E402

from mlci.units import parse_size  # noqa: E402


def file_sizes(total: int, count: int) -> list[int]:
    """A few large files carrying ~70% of the bytes, the rest small-to-medium."""
    n_large = max(1, min(4, count // 25))
    large = int(total * 0.7) // n_large
    n_small = max(0, count - n_large)
    rest = total - large * n_large
    weights = [1 + (i % 10) for i in range(n_small)]
    small = [max(1, rest * w // sum(weights)) for w in weights] if n_small else []
    return [large] * n_large + small


def baseline_download(endpoint: str, bucket: str, keys: list[tuple[str, int]], dest: Path, jobs: int,
                      psize: int) -> None:
    """Hand-written parallel boto3: a pool over files, large ones as parallel ranged GETs; no hashing.

    It creates its client like any script would (a new session loads botocore's service model: ~0.3 s of
    CPU), and mlci's cached client is cleared before each mlci run, so both sides pay that once per run.
    The connection pool is the size mlci uses, so both run the same number of requests at once."""
    import boto3
    from botocore.config import Config as BotoConfig

    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint,
                                        config=BotoConfig(max_pool_connections=2 * jobs + 4))
    parts_pool = ThreadPoolExecutor(jobs)

    def get_range(key: str, fd: int, start: int, end: int) -> None:
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"]
        pos = start
        while chunk := body.read(1 << 20):
            os.pwrite(fd, chunk, pos)
            pos += len(chunk)

    def one(item: tuple[str, int]) -> None:
        key, size = item
        target = dest / key.rsplit("/", 1)[1]
        if size <= psize:
            with open(target, "wb") as fh:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"]
                while chunk := body.read(1 << 20):
                    fh.write(chunk)
            return
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, size)
            n = math.ceil(size / psize)
            futs = [parts_pool.submit(get_range, key, fd, i * psize, min(size, (i + 1) * psize)) for i in range(n)]
            for f in futs:
                f.result()
        finally:
            os.close(fd)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, keys))
    parts_pool.shutdown()


def best_of(n: int, argv: list[str]) -> float:
    times = []
    for _ in range(n):
        t = time.monotonic()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.monotonic() - t)
    return min(times)


# `mlci models pull` as the CLI runs it, reporting afterwards whether boto3 was imported
PULL_AND_REPORT = ("import sys\nfrom mlci.cli import main\nrc = main(['models', 'pull', '-c', sys.argv[1]])\n"
                   "print('boto3' in sys.modules)\nsys.exit(rc)\n")


def warm_cli(config: Path, repeat: int) -> tuple[float, bool]:
    """Best wall time of a warm no-op `mlci models pull` (a new interpreter each time), and whether it imported
    boto3."""
    best = best_of(repeat, [sys.executable, "-m", "mlci", "models", "pull", "-c", str(config)])
    out = subprocess.run([sys.executable, "-c", PULL_AND_REPORT, str(config)], capture_output=True, text=True,
                         check=True).stdout
    return best, out.strip().endswith("True")


def big_lock(work: Path, s3: Any, bucket: str, n: int, repeat: int) -> dict[str, float]:
    """A repo whose lock names `n` small files: parse time (mlci vs PyYAML's pure-Python loader) and a warm
    no-op pull through the CLI."""
    import yaml

    from mlci.artifacts import api, lockfile
    from mlci.artifacts.entries import Entry
    from mlci.config import load_config

    repo = work / "biglock"
    repo.mkdir()
    (repo / "ml-ci.yaml").write_text(f"service: bench\nartifacts:\n  remote: s3://{bucket}/lock\n"
                                     f"  cache: {work / 'biglock-cache'}\n  jobs: 8\n")
    entries = []
    t0 = time.monotonic()
    pool = ThreadPoolExecutor(16)

    def put(i: int) -> Entry:
        body = f"model part {i}\n".encode() * 16
        digest = hashlib.sha256(body).hexdigest()
        uri = lockfile.object_uri(f"s3://{bucket}/lock", digest)
        s3.put_object(Bucket=bucket, Key=uri.split("/", 3)[3], Body=body)
        return Entry(f"part{i // 100:02d}/m{i:05d}.bin", "sha256", digest, len(body), uri, "bench")

    entries = list(pool.map(put, range(n)))
    pool.shutdown()
    lockfile.write(repo / "models.lock", entries)
    cfg = load_config(repo / "ml-ci.yaml")
    saved = sys.stderr
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    try:
        api.pull_models(cfg)
    finally:
        sys.stderr.close()
        sys.stderr = saved
    print(f"# lock of {n} entries: setup {time.monotonic() - t0:.1f}s", flush=True)
    text = (repo / "models.lock").read_text()
    parse, plain = [], []
    for _ in range(repeat):
        t = time.monotonic()
        api.load_entries(cfg)
        parse.append(time.monotonic() - t)
        t = time.monotonic()
        yaml.load(text, Loader=yaml.SafeLoader)
        plain.append(time.monotonic() - t)
    warm = best_of(repeat, [sys.executable, "-m", "mlci", "models", "pull", "-c", str(repo / "ml-ci.yaml")])
    return {"parse": min(parse), "yaml": min(plain), "warm": warm}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="2G", help="total bytes, e.g. 2G, 300M (default 2G)")
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lock-entries", type=int, default=2000)
    args = ap.parse_args()
    total = parse_size(args.size, "--size")

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("MLCI_CACHE", None)
    import boto3
    from boto3.s3.transfer import TransferConfig

    from mlci import s3 as s3mod
    from mlci.artifacts import api, lockfile
    from mlci.artifacts.entries import Entry
    from mlci.artifacts.hashing import hash_file
    from mlci.artifacts.transfer import part_size
    from mlci.config import load_config

    server = start_moto(port)
    work = Path(tempfile.mkdtemp(prefix="mlci-bench-artifacts-"))
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        bucket = "bench-artifacts"
        s3.create_bucket(Bucket=bucket)
        sizes = file_sizes(total, args.files)
        print(f"# {len(sizes)} files, {sum(sizes) / 2**30:.2f} GiB ({len(sizes) - sum(s < max(sizes) for s in sizes)} "
              f"large of {max(sizes) / 2**20:.0f} MiB), jobs {args.jobs}, private moto S3 server, "
              f"{os.cpu_count()} CPUs", flush=True)
        src = work / "src"
        src.mkdir()
        entries, keys = [], []
        rng_block = os.urandom(8 << 20)
        t0 = time.monotonic()
        upload_cfg = TransferConfig(max_concurrency=args.jobs)
        for i, size in enumerate(sizes):
            p = src / f"f{i:03d}.bin"
            with open(p, "wb") as fh:  # distinct content per file: a random prefix, then repeated random blocks
                fh.write(os.urandom(64))
                left = size - 64
                while left > 0:
                    fh.write(rng_block[: min(left, len(rng_block))])
                    left -= len(rng_block)
            digest = hash_file(p)
            uri = lockfile.object_uri(f"s3://{bucket}/m", digest)
            key = uri.split("/", 3)[3]
            s3.upload_file(str(p), bucket, key, Config=upload_cfg)
            p.unlink()
            entries.append(Entry(p.name, "sha256", digest, size, uri, "bench"))
            keys.append((key, size))
        print(f"# setup (generate + upload) {time.monotonic() - t0:.1f}s", flush=True)

        repo = work / "repo"
        repo.mkdir()
        cache = work / "cache"
        (repo / "ml-ci.yaml").write_text(
            f"service: bench\nartifacts:\n  remote: s3://{bucket}/m\n  cache: {cache}\n  jobs: {args.jobs}\n")
        lockfile.write(repo / "models.lock", entries)
        cfg = load_config(repo / "ml-ci.yaml")
        psize = part_size()

        base_times, mlci_times = [], []

        def run_baseline() -> None:
            d = work / "baseline"
            d.mkdir()
            t, c = time.monotonic(), time.process_time()
            baseline_download(endpoint, bucket, keys, d, args.jobs, psize)
            base_times.append(time.monotonic() - t)
            cpu["baseline"] = time.process_time() - c
            shutil.rmtree(d)

        def run_mlci() -> None:
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(repo / "models", ignore_errors=True)
            s3mod.client.cache_clear()
            devnull = open(os.devnull, "w")  # noqa: SIM115 - the per-file log lines are not the benchmark's output
            saved, sys.stderr = sys.stderr, devnull
            c = time.process_time()
            try:
                summary = api.pull_models(cfg)
            finally:
                cpu["mlci"] = time.process_time() - c
                sys.stderr = saved
                devnull.close()
            mlci_times.append(summary["seconds"])
            assert summary["downloaded_files"] == len(entries), summary

        cpu: dict[str, float] = {}
        for r in range(args.repeat):
            order = (run_baseline, run_mlci) if r % 2 == 0 else (run_mlci, run_baseline)  # neither always first
            for fn in order:
                fn()
            print(f"# run {r + 1}: baseline {base_times[-1]:.2f}s (client CPU {cpu['baseline']:.1f}s), "
                  f"mlci cold pull {mlci_times[-1]:.2f}s (client CPU {cpu['mlci']:.1f}s)", flush=True)

        # hashing, one core, file in page cache
        big = repo / "models" / entries[0].path
        hash_file(big)
        h_base, h_mlci = [], []
        for _ in range(3):
            t = time.monotonic()
            with open(big, "rb") as fh:
                hashlib.file_digest(fh, "sha256")
            h_base.append(time.monotonic() - t)
            t = time.monotonic()
            hash_file(big)
            h_mlci.append(time.monotonic() - t)
        size_big = big.stat().st_size

        # warm no-op pull
        warm = []
        saved = sys.stderr
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        try:
            for _ in range(3):
                warm.append(api.pull_models(cfg)["seconds"])
        finally:
            sys.stderr.close()
            sys.stderr = saved
        cli_warm, boto_imported = warm_cli(repo / "ml-ci.yaml", args.repeat)
        cli_start = best_of(args.repeat, [sys.executable, "-c", "pass"])
        big = big_lock(work, s3, bucket, args.lock_entries, args.repeat)

        gb = sum(sizes) / 1e9
        cold_b, cold_m = min(base_times), min(mlci_times)
        hb, hm = size_big / min(h_base) / 1e6, size_big / min(h_mlci) / 1e6
        rows = [
            ("cold pull (s)", f"{cold_m:.2f}", f"{cold_b:.2f}", f"{cold_m / cold_b:.2f}x", "<= 1.10x",
             cold_m / cold_b <= 1.10),
            ("cold pull (MB/s)", f"{gb * 1e3 / cold_m:.0f}", f"{gb * 1e3 / cold_b:.0f}", "", "", None),
            ("sha256, 1 core (MB/s)", f"{hm:.0f}", f"{hb:.0f}", f"{hm / hb:.0%}", ">= 90%", hm / hb >= 0.9),
            ("warm no-op pull, CLI (s)", f"{cli_warm:.3f}", f"{cli_start:.3f}", f"{cli_warm / cli_start:.2f}x",
             "< 0.5 s (baseline: python start-up)", cli_warm < 0.5),
            ("  in-process (s)", f"{min(warm):.3f}", "-", "", "", None),
            ("  boto3 imported", "yes" if boto_imported else "no", "-", "", "no", not boto_imported),
            (f"lock of {args.lock_entries}: parse (s)", f"{big['parse']:.3f}", f"{big['yaml']:.3f}",
             f"{big['parse'] / big['yaml']:.3f}x", "< 0.1 s (baseline: PyYAML safe_load)", big["parse"] < 0.1),
            (f"lock of {args.lock_entries}: warm CLI (s)", f"{big['warm']:.3f}", f"{cli_start:.3f}",
             f"{big['warm'] / cli_start:.2f}x", "< 1 s (baseline: python start-up)", big["warm"] < 1.0),
        ]
        print(f"{'metric':<30}{'mlci':>10}{'baseline':>10}{'ratio':>9}  {'target':<38}ok")
        for name, m, b, ratio, target, ok in rows:
            mark = "" if ok is None else ("yes" if ok else "NO")
            print(f"{name:<30}{m:>10}{b:>10}{ratio:>9}  {target:<38}{mark}")
        print("# baseline: hand-written parallel boto3 (files + 16 MiB ranged parts, no hashing); "
              "hashlib.file_digest for sha256")
        return 0
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
