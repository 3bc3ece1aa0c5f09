#!/usr/bin/env python
"""Benchmark of dataset access at scale: a 1,000,000-row test set, lazily opened, against a plain read.

    python tests/benchmarks/bench_data.py [--rows 1000000] [--features 32] [--formats parquet,npz,npz-compressed,csv]

Datasets (written once into a temp dir; labels from a noisy linear rule, 10 classes, an id column):
  parquet          --features float32 columns + label + id (the tabular case: inputs '*', batch_as array)
  npz              x (rows x --features*2 float32) + y + id, stored uncompressed (np.savez)
  npz-compressed   the same, np.savez_compressed
  csv              --features/4 float columns + label + id (text; one indexing pass)

1. Per format, each step in a fresh process (peak RSS = VmHWM minus the RSS after imports):
   plain     the baseline: read the file the plain way and take the first batch (pyarrow.parquet.read_table /
             np.load + fancy index / np.load of the unpacked array / pyarrow.csv.read_csv), then
   mmap      (npz only) the numpy memory-map baseline: np.load(.npy, mmap_mode='r') + the first batch
   mlci      what `mlci accuracy run` does before scoring: the controller's `prepare` (open the dataset, label
             codes, stratified order of all rows, gate plans) plus one worker's re-open + first batch.
   Ratios: mlci / plain (time and peak RSS).
2. End to end, `mlci accuracy run -n 2` with a trivial model: time from launch to the first batch scored, and
   peak memory summed over the whole process tree (controller + 2 xdist workers, sampled every 20 ms): RSS,
   PSS (the memory-mapped dataset's pages counted once, not once per process) and heap (anonymous memory), on
   the 1,000,000-row Parquet vs a 1,000-row slice of it (the difference is what the dataset's size costs).
Targets (issue): scoring starts within seconds; memory stays within a few hundred MB above the model's own.
Wall times need free cores (the load average is printed); CPU seconds and memory hold up under load better.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402

BATCH = 64
SERVICE = '''
import os, time
import numpy as np

_first = []

def predict(x):
    x = np.asarray(x, dtype=np.float64)
    out = (x.reshape(len(x), -1)[:, :10].argmax(axis=1)).tolist()
    if not _first:
        _first.append(1)
        with open(os.environ["BENCH_FIRST"], "a") as fh:
            fh.write(f"{time.time()}\\n")
    return out
'''


def vm(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def make_data(directory: Path, rows: int, features: int, formats: list[str]) -> dict[str, Path]:
    """The benchmark datasets (written in chunks: the writer itself stays small)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    out: dict[str, Path] = {}
    chunk = 100_000
    if "parquet" in formats:
        path = directory / "big.parquet"
        schema = pa.schema([*(pa.field(f"f{i}", pa.float32()) for i in range(features)),
                            pa.field("label", pa.int64()), pa.field("id", pa.string())])
        with pq.ParquetWriter(path, schema) as w:
            for start in range(0, rows, chunk):
                n = min(chunk, rows - start)
                x = rng.standard_normal((n, features), dtype=np.float32)
                y = np.where(rng.random(n) < 0.1, rng.integers(0, 10, n), x[:, :10].argmax(axis=1))
                cols = {f"f{i}": x[:, i] for i in range(features)}
                cols.update(label=y, id=[f"r{start + i:07d}" for i in range(n)])
                w.write_table(pa.table(cols, schema=schema), row_group_size=chunk)
        out["parquet"] = path
    if "npz" in formats or "npz-compressed" in formats:
        width = 2 * features
        x = rng.standard_normal((rows, width), dtype=np.float32)
        y = np.where(rng.random(rows) < 0.1, rng.integers(0, 10, rows), x[:, :10].argmax(axis=1))
        ids = np.arange(rows, dtype=np.int64)
        if "npz" in formats:
            np.savez(directory / "big.npz", x=x, y=y, id=ids)
            out["npz"] = directory / "big.npz"
        if "npz-compressed" in formats:
            np.savez_compressed(directory / "big-c.npz", x=x, y=y, id=ids)
            out["npz-compressed"] = directory / "big-c.npz"
        np.save(directory / "x.npy", x)  # the memory-map baseline reads this
        del x
    if "csv" in formats:
        path = directory / "big.csv"
        k = max(2, features // 4)
        with open(path, "w") as fh:
            fh.write(",".join([*(f"f{i}" for i in range(k)), "label", "id"]) + "\n")
            for start in range(0, rows, chunk):
                n = min(chunk, rows - start)
                x = rng.standard_normal((n, k)).round(4)
                y = x[:, :min(k, 10)].argmax(axis=1)
                lines = [",".join([*map(str, x[i].tolist()), str(y[i]), f"r{start + i}"]) for i in range(n)]
                fh.write("\n".join(lines) + "\n")
        out["csv"] = path
    return out


# --- one measurement per fresh process ----------------------------------------------------------------------------
PLAIN = {
    "parquet": "import pyarrow.parquet as pq\nt = pq.read_table(P)\nb = t.take(np.arange(BATCH) * 997 % t.num_rows)",
    "npz": "z = np.load(P)\nx = z['x']\ny = z['y']\nb = x[np.arange(BATCH) * 997 % len(x)]",
    "npz-compressed": "z = np.load(P)\nx = z['x']\ny = z['y']\nb = x[np.arange(BATCH) * 997 % len(x)]",
    "csv": "import pyarrow.csv as pc\nt = pc.read_csv(P)\nb = t.take(np.arange(BATCH) * 997 % t.num_rows)",
}
MMAP = "x = np.load(P, mmap_mode='r')\nb = np.asarray(x[np.arange(BATCH) * 997 % len(x)])"
MLCI = """
from mlci.config import load_config
from mlci.accuracy.data import reopen
from mlci.accuracy.engine import prepare
import json
cfg = load_config(CFG)
prep = prepare(cfg, 'big', seed=1, shard=None, data_override=None)
EXTRA['prepare_s'] = time.perf_counter() - t0
spec = json.loads(json.dumps(prep.spec()))
w = reopen(spec['data'])
from mlci.accuracy.plugin import Batches
b = w.take(Batches.of(spec)[0])
"""


def measure(code: str, env: dict[str, str]) -> dict[str, float]:
    """Run `code` in a fresh interpreter: seconds, and peak RSS above the RSS after imports."""
    prog = textwrap.dedent(f"""
        import json, os, sys, time
        sys.path.insert(0, {str(ROOT / 'python')!r})
        import numpy as np, pyarrow, pyarrow.parquet, pyarrow.csv
        try:
            import pandas  # pyarrow imports it on first use when installed: not part of either side's cost
        except ImportError:
            pass
        import mlci.accuracy.engine, mlci.accuracy.data, mlci.config
        sys.path.insert(0, {str(ROOT / 'tests' / 'benchmarks')!r})
        from bench_data import vm
        P = os.environ['BENCH_PATH']; CFG = os.environ.get('BENCH_CFG'); BATCH = {BATCH}; EXTRA = {{}}
        base = vm('VmRSS')
        t0, c0 = time.perf_counter(), time.process_time()
    """) + code + textwrap.dedent("""
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps({"seconds": dt, "cpu": cpu, "rss": vm('VmHWM') - base, **EXTRA}))
    """)
    proc = subprocess.run([sys.executable, "-c", prog], env={**os.environ, **env}, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def service(directory: Path, fmt: str, path: Path) -> Path:
    """A service repo whose only suite reads `path` (inputs '*' where the format has columns)."""
    repo = directory / f"svc-{fmt}"
    repo.mkdir(exist_ok=True)
    (repo / "bench_service.py").write_text(SERVICE)
    if not (repo / path.name).exists():
        os.link(path, repo / path.name)  # datasets live inside the repo (config paths may not escape it)
    entry = {"uri": path.name, "label": "y", "id": "id"}
    if fmt in ("parquet", "csv"):
        entry.update(inputs=["*"], label="label", batch_as="array")
    else:
        entry.update(inputs=["x"], format="npz")
    cfg = {"service": "bench", "artifacts": {"data": {"big": entry}},
           "accuracy": {"predict": "bench_service:predict", "batch_size": BATCH,
                        "suites": {"big": {"dataset": "big", "gates": [{"metric": "accuracy", "min": 0.5, "margin": 0.1}]}}}}
    (repo / "ml-ci.yaml").write_text(json.dumps(cfg))
    return repo


# --- end to end ----------------------------------------------------------------------------------------------------
def tree_memory(root_pid: int) -> dict[str, int]:
    """Memory of a process and its descendants (from /proc), summed: RSS, PSS (shared pages split between the
    processes that map them: the memory-mapped dataset counted once) and anonymous RSS (heap: what mapping a
    file never costs)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            status = Path(f"/proc/{d}/status").read_text()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0)
        children.setdefault(ppid, []).append(int(d))
    total = {"rss": 0, "pss": 0, "anon": 0}
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup.splitlines()[1:] if ":" in line}
        total["rss"] += fields.get("Rss", 0)
        total["pss"] += fields.get("Pss", 0)
        total["anon"] += fields.get("Anonymous", 0)
    return total


def end_to_end(repo: Path, first: Path) -> dict[str, float]:
    first.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_FIRST": str(first), "MLCI_CACHE": str(repo.parent / "cache"),
           "GIT_COMMIT": "0" * 40, "PYTHONPATH": str(repo)}
    t0 = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-m", "mlci", "accuracy", "run", "--suite", "big", "-n", "2",
                             "--out", str(repo / "out")], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = {"rss": 0, "pss": 0, "anon": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for k, v in tree_memory(proc.pid).items():
                peak[k] = max(peak[k], v)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate(timeout=1800)
    done.set()
    sampler.join()
    if proc.returncode not in (0, 1, 3) or not first.is_file():
        raise SystemExit(f"mlci accuracy run exited {proc.returncode}:\n{output[-3000:]}")
    t_first = min(float(v) for v in first.read_text().split())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the whole tree: xdist workers are waited for too
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"first_batch_s": t_first - t0, "total_s": time.time() - t0, "cpu_s": cpu,
            **{f"peak_{k}": v for k, v in peak.items()}}


def mb(n: float) -> str:
    return f"{n / 1e6:8.1f} MB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--formats", default="parquet,npz,npz-compressed,csv")
    args = ap.parse_args()
    formats = args.formats.split(",")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.rows:,} rows")
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        files = make_data(d, args.rows, args.features, formats)
        print(f"datasets written in {time.perf_counter() - t0:.1f}s: "
              + ", ".join(f"{k} {p.stat().st_size / 1e6:.0f} MB" for k, p in files.items()))
        print("\n1. before the first batch: plain read vs mlci (controller prepare + a worker's first batch)")
        print(f"{'format':<16}{'step':<8}{'seconds':>9}{'CPU s':>8}{'peak RSS':>12}   {'time ratio':>10}"
              f"{'CPU ratio':>10}{'RSS ratio':>10}")
        for fmt, path in files.items():
            env = {"BENCH_PATH": str(path)}
            plain = measure(PLAIN[fmt], env)
            rows = [("plain", plain)]
            if fmt.startswith("npz"):
                rows.append(("mmap", measure(MMAP, {"BENCH_PATH": str(d / "x.npy")})))
            repo = service(d, fmt, path)
            mine = measure(MLCI, {**env, "BENCH_CFG": str(repo / "ml-ci.yaml"), "MLCI_CACHE": str(d / "cache"),
                                  "GIT_COMMIT": "0" * 40})
            rows.append(("mlci", mine))
            for step, m in rows:
                ratio = (f"{m['seconds'] / plain['seconds']:>10.2f}{m['cpu'] / max(plain['cpu'], 1e-3):>10.2f}"
                         f"{m['rss'] / max(plain['rss'], 1):>10.3f}" if step != "plain" else "")
                note = (f"   (prepare {m['prepare_s']:.2f}s: sha256 of the file, labels, order, plans"
                        f"{', the inputs copied to a row file' if fmt == 'parquet' else ''}"
                        f"{', the index pass' if fmt == 'csv' else ''}; then a worker's open + first batch)"
                        if "prepare_s" in m else "")
                print(f"{fmt:<16}{step:<8}{m['seconds']:>9.2f}{m['cpu']:>8.2f}{mb(m['rss']):>12}   {ratio}{note}")
        if "parquet" in files:
            import pyarrow.parquet as pq

            small = d / "small" / "big.parquet"
            small.parent.mkdir()
            pq.write_table(pq.read_table(files["parquet"]).slice(0, 1000), small)
            print("\n2. end to end: `mlci accuracy run -n 2` (Parquet, inputs '*', batch_as array, trivial model)")
            print(f"{'rows':>10}{'first batch':>13}{'whole run':>11}{'run CPU':>9}{'peak RSS':>12}{'peak PSS':>12}"
                  f"{'peak heap':>12}   (CPU and memory summed over the process tree)")
            big = end_to_end(service(d, "parquet", files["parquet"]), d / "first-big")
            little = end_to_end(service(d / "small", "parquet", small), d / "first-small")
            for n, r in ((args.rows, big), (1000, little)):
                print(f"{n:>10,}{r['first_batch_s']:>12.2f}s{r['total_s']:>10.2f}s{r['cpu_s']:>8.2f}s"
                      f"{mb(r['peak_rss']):>12}{mb(r['peak_pss']):>12}{mb(r['peak_anon']):>12}")
            print(f"{'ratio':>10}{big['first_batch_s'] / little['first_batch_s']:>12.2f}x"
                  f"{big['total_s'] / little['total_s']:>10.2f}x{big['cpu_s'] / little['cpu_s']:>8.2f}x"
                  + "".join(f"{big[k] / little[k]:>11.2f}x" for k in ("peak_rss", "peak_pss", "peak_anon")))
            print(f"{'extra':>10}{big['first_batch_s'] - little['first_batch_s']:>12.2f}s"
                  f"{big['total_s'] - little['total_s']:>10.2f}s{big['cpu_s'] - little['cpu_s']:>8.2f}s"
                  + "".join(f"{mb(big[k] - little[k]):>12}" for k in ("peak_rss", "peak_pss", "peak_anon"))
                  + f"   for {args.rows:,} rows instead of 1,000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
