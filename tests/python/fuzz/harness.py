#!/usr/bin/env python
"""Fuzz the real `mlci` CLI with hostile configs, lock files, DVC files and datasets; count what goes wrong.

    python tests/python/fuzz/harness.py [--cases 2400] [--seed 1] [--mlci-path DIR]

Setup: a service repo (a rich ml-ci.yaml, an mlci lock file, `.dvc` files, `dvc.lock` and `.dvc/config` whose
objects are uploaded to a fresh bucket on the S3 server at $AWS_ENDPOINT_URL, three small datasets and a predict
function). Case i is generated from `random.Random(f"{seed}:{i}")` alone, so any case can be replayed. Each case
writes one mutated file and runs the command that reads it:

    config    mlci config check|show -c FILE; mlci pipeline plan -c FILE --branch B --cause C --json
    lock      mlci models pull --lock FILE --dest DIR        (.dvc files and dvc.lock likewise)
    dvcconfig mlci models pull --lock DIR/m.dvc              (with DIR/.dvc/config mutated)
    dataset   mlci accuracy run --suite fz --data FILE -n 0  (.npz, .jsonl, .csv)

Cases run in-process in a worker subprocess (`main()` of the CLI, one interpreter for all cases: a process per
case would cost more than the cases) under a memory limit, each with a deadline. Counted as defects:
- traceback: an exception escaping `main()`, a thread dying with one, or "Traceback" in the output;
- hang: a case past its deadline (the worker is killed and restarted at the next case);
- crash: the worker died (segfault, memory limit);
- bad exit: anything but 0 or 2 -- except a dataset case's 1 or 3 when the accuracy record says FAIL or
  INCONCLUSIVE (a model failing on odd data is a verdict, not bad input).
`--mlci-path` puts another checkout's python/ first on the path (to measure the code before a change).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import mutate  # noqa: E402 (by path: the worker runs this file as a script)

CASE_SECONDS = {"dataset": 30.0}
DEFAULT_CASE_SECONDS = 10.0
MEMORY_LIMIT = 3 << 30
KINDS = [("config", 40), ("lock", 22), ("dvc", 14), ("dvclock", 8), ("dvcconfig", 4), ("dataset", 12)]

CONFIG = """\
service: fz
version: 1
image: {{name: reg.example.com/ml/fz, dockerfile: Dockerfile, context: ., base: "python:3.11-slim",
        build_args: {{PIP_INDEX: "x"}}}}
artifacts:
  remote: s3://{bucket}/models
  cache: {cache}
  jobs: 2
  models: {{lock: models.lock, dest: models/}}
  data:
    small: {{uri: data/base.npz, inputs: x, label: y}}
tests:
  unit: {{command: python3 -m pytest tests/unit -q, timeout: 5}}
  acceptance:
    command: python3 -m pytest tests/acceptance -q
    serve: {{command: python3 -m svc.server, port: 8080, health: /healthz, timeout: 60}}
accuracy:
  predict: fuzzsvc:predict
  batch_size: 20
  workers: 1
  suites:
    fz:
      dataset: data/base.npz
      gates:
        - {{metric: accuracy, min: 0.6, margin: 0.3, alpha: 0.1, beta: 0.2}}
    full:
      dataset: small
      schedule: "H 2 * * *"
      branches: [develop, "release/*"]
      shards: 2
      sequential: false
      gates:
        - {{metric: accuracy, min: 0.9, margin: 0.02}}
        - {{metric: macro_f1, min: 0.88}}
report:
  history: s3://{bucket}/history
  post: {{provider: github, repo: org/fz, token_credentials: gh-token}}
deploy:
  rollout_timeout: 120
  environments:
    production:
      branch: main
      namespace: ml-prod
      replicas: 3
      env: {{LOG_LEVEL: info, API_KEY: abc123}}
      resources: {{requests: {{cpu: 100m, memory: 128Mi}}, limits: {{cpu: "1", memory: 256Mi}}}}
      hpa: {{min: 3, max: 10, cpu: 75}}
      pdb: {{min_available: 2}}
      tolerations: [{{key: gpu, operator: Exists, effect: NoSchedule}}]
train:
  dockerfile: training/Dockerfile
  context: training
  command: python3 train.py --token "$TOKEN"
  params: params.json
  outputs: [model.npz]
  timeout: 30
  resources: {{limits: {{memory: 1Gi}}}}
drift:
  logs: s3://{bucket}/logs
  window: 7d
  features: {{x0: {{kind: numeric, psi: 0.3}}}}
  retrain: {{job: folder/train, parameters: {{MODE: full}}}}
pipeline:
  stages: [build, unit, accuracy]
  integration_branches: [develop]
"""

PREDICT = '''\
def predict(batch):
    """Label = first input > 0.5 (the rule the fuzz datasets were made with); anything odd -> 0."""
    out = []
    for x in batch:
        try:
            v = x if isinstance(x, (int, float)) else x[0]
            out.append(int(float(v) > 0.5))
        except Exception:
            out.append(0)
    return out
'''


@dataclass
class Summary:
    cases: int = 0
    by_kind: Counter = field(default_factory=Counter)
    exits: Counter = field(default_factory=Counter)
    tracebacks: list[dict[str, Any]] = field(default_factory=list)
    hangs: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    bad_exits: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    kind_seconds: Counter = field(default_factory=Counter)

    def line(self) -> str:
        return (f"{self.cases} cases in {self.seconds:.0f}s ({dict(sorted(self.by_kind.items()))}): "
                f"{len(self.tracebacks)} tracebacks, {len(self.hangs)} hangs, {len(self.crashes)} crashes, "
                f"{len(self.bad_exits)} exit codes other than 0/2; exits {dict(sorted(self.exits.items()))}")

    def examples(self, n: int = 8) -> str:
        rows = []
        for name, items in (("traceback", self.tracebacks), ("hang", self.hangs), ("crash", self.crashes),
                            ("bad exit", self.bad_exits)):
            kinds = Counter(f"{r['kind']}: {r.get('error', r.get('exit'))}"[:160] for r in items)
            rows += [f"  {name} x{c}: {k}" for k, c in kinds.most_common(n)]
        return "\n".join(rows)


# --- setup ---------------------------------------------------------------------------------------------------
def _upload(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def setup(work: Path, bucket: str) -> dict[str, Any]:
    """The service repo and the S3 objects its dependency files name; returns the base texts."""
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    repo = work / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / ".dvc").mkdir()
    cfg = CONFIG.format(bucket=bucket, cache=work / "cache")
    (repo / "ml-ci.yaml").write_text(cfg)
    (repo / "fuzzsvc.py").write_text(PREDICT)
    datasets = mutate.base_datasets()
    (repo / "data" / "base.npz").write_bytes(datasets["npz"])

    models = {"a.bin": os.urandom(2048), "sub/b.bin": os.urandom(100), "empty.bin": b""}
    lock = ["# mlci model dependency file\nversion: 1\nfiles:\n"]
    for path, body in models.items():
        sha = hashlib.sha256(body).hexdigest()
        key = f"models/sha256/{sha[:2]}/{sha[2:]}"
        _upload(s3, bucket, key, body)
        lock.append(f"- path: {path}\n  sha256: {sha}\n  size: {len(body)}\n  uri: s3://{bucket}/{key}\n")
    dvc_config = f"[core]\n    remote = store\n['remote \"store\"']\n    url = s3://{bucket}/dvc\n"
    (repo / ".dvc" / "config").write_text(dvc_config)
    outs = []
    for path, body in (("m.bin", os.urandom(512)), ("n.txt", b"hello\n")):
        md5 = hashlib.md5(body).hexdigest()
        _upload(s3, bucket, f"dvc/files/md5/{md5[:2]}/{md5[2:]}", body)
        outs.append((path, md5, len(body)))
    manifest_items = []
    for rel, body in (("d1.bin", b"one"), ("sub/d2.bin", b"two")):
        md5 = hashlib.md5(body).hexdigest()
        _upload(s3, bucket, f"dvc/files/md5/{md5[:2]}/{md5[2:]}", body)
        manifest_items.append({"md5": md5, "relpath": rel})
    manifest = json.dumps(manifest_items).encode()
    dmd5 = hashlib.md5(manifest).hexdigest()
    _upload(s3, bucket, f"dvc/files/md5/{dmd5[:2]}/{dmd5[2:]}.dir", manifest)
    dvc = "outs:\n" + "".join(f"- md5: {m}\n  size: {s}\n  hash: md5\n  path: {p}\n" for p, m, s in outs)
    dvc += f"- md5: {dmd5}.dir\n  size: 6\n  nfiles: 2\n  hash: md5\n  path: dirout\n"
    dvclock = ("schema: '2.0'\nstages:\n  train:\n    cmd: python train.py\n    deps:\n    - path: train.py\n"
               "      md5: " + "0" * 32 + "\n    outs:\n" +
               "".join(f"    - path: {p}\n      md5: {m}\n      size: {s}\n      hash: md5\n" for p, m, s in outs))
    (repo / "cases").mkdir()
    return {"repo": str(repo), "config": cfg, "lock": "".join(lock), "dvc": dvc, "dvclock": dvclock,
            "dvcconfig": dvc_config, "datasets": {k: v.decode("latin-1") for k, v in datasets.items()}}


def make_case(base: dict[str, Any], seed: int, i: int) -> dict[str, Any]:
    """Case i: its file(s) on disk and the command lines that read them."""
    rng = random.Random(f"{seed}:{i}")
    kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
    repo = Path(base["repo"])
    d = repo / "cases" / str(i)
    d.mkdir(parents=True, exist_ok=True)
    cfg = str(repo / "ml-ci.yaml")
    dest = str(d / "dest")
    if kind == "config":
        f = d / "ml-ci.yaml"
        f.write_bytes(mutate.yaml_case(rng, base["config"]))
        argvs = [["config", "check", "-c", str(f)], ["config", "show", "-c", str(f)],
                 ["pipeline", "plan", "-c", str(f), "--branch", rng.choice(["main", "develop", "release/1"]),
                  "--cause", rng.choice(["push", "timer", "user", "pr"]), "--json"]]
    elif kind in ("lock", "dvc", "dvclock"):
        f = d / {"lock": "models.lock", "dvc": "m.dvc", "dvclock": "dvc.lock"}[kind]
        f.write_bytes(mutate.yaml_case(rng, base[kind]))
        argvs = [["models", "pull", "-c", cfg, "--lock", str(f), "--dest", dest]]
    elif kind == "dvcconfig":
        (d / ".dvc").mkdir(exist_ok=True)
        f = d / ".dvc" / "config"
        f.write_bytes(mutate.bytewise(rng, base["dvcconfig"].encode()))
        (d / "m.dvc").write_text(base["dvc"])
        argvs = [["models", "pull", "-c", cfg, "--lock", str(d / "m.dvc"), "--dest", dest]]
    else:
        fmt = rng.choice(["npz", "npz", "jsonl", "csv"])
        data = base["datasets"][fmt].encode("latin-1")
        data = {"npz": mutate.npz_case, "jsonl": mutate.jsonl_case, "csv": mutate.csv_case}[fmt](rng, data)
        f = d / f"data.{fmt}"
        f.write_bytes(data)
        argvs = [["accuracy", "run", "--suite", "fz", "-c", cfg, "--data", str(f), "-n", "0", "--seed", "1",
                  "--out", str(d / "out")]]
    return {"i": i, "kind": kind, "file": str(f), "argvs": argvs, "out": str(d / "out")}


# --- worker --------------------------------------------------------------------------------------------------
class Deadline(BaseException):
    """Raised in the main thread by SIGALRM: the case ran past its deadline."""


def _judge(case: dict[str, Any], code: int) -> str | None:
    """Why an exit code is wrong for this case, or None."""
    if code in (0, 2):
        return None
    if case["kind"] == "dataset" and code in (1, 3):
        record = Path(case["out"]) / "accuracy" / "fz" / "accuracy.json"
        try:
            verdict = json.loads(record.read_text()).get("verdict")
        except (OSError, ValueError):
            verdict = None
        if verdict == {1: "FAIL", 3: "INCONCLUSIVE"}[code]:
            return None
        return f"exit {code} without a {'FAIL' if code == 1 else 'INCONCLUSIVE'} record"
    return f"exit {code}"


def worker(manifest: Path, start: int, fd: int) -> None:
    import resource
    import signal
    import traceback

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    from mlci.cli import main

    cases = json.loads(manifest.read_text())
    thread_errors: list[str] = []
    threading.excepthook = lambda a: thread_errors.append(f"{a.exc_type.__name__}: {a.exc_value}")

    def alarm(signum: int, frame: Any) -> None:
        raise Deadline()

    signal.signal(signal.SIGALRM, alarm)
    results = os.fdopen(fd, "w", buffering=1)
    for case in cases[start:]:
        results.write(json.dumps({"i": case["i"], "started": True}) + "\n")
        outcome: dict[str, Any] = {"i": case["i"], "kind": case["kind"], "file": case["file"]}
        t0 = time.monotonic()
        thread_errors.clear()
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS.get(case["kind"], DEFAULT_CASE_SECONDS))
        try:
            for argv in case["argvs"]:
                err = io.StringIO()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                    try:
                        code = main(argv)
                    except SystemExit as exc:
                        code = exc.code if isinstance(exc.code, int) else 2
                outcome.update(exit=code, argv=argv[:2], stderr=err.getvalue()[-2000:])
                if "Traceback (most recent call last)" in err.getvalue():
                    outcome["error"] = "Traceback printed: " + err.getvalue().strip().splitlines()[-1][:200]
                    break
                if thread_errors:
                    outcome["error"] = "thread died: " + thread_errors[0][:200]
                    break
                if code != 0:
                    break
        except Deadline:
            outcome["hang"] = True
        except BaseException as exc:  # noqa: BLE001 - that is what is being counted
            tb = traceback.extract_tb(exc.__traceback__)
            at = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
            outcome["error"] = f"{type(exc).__name__}: {str(exc)[:160]}{at}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        outcome["seconds"] = round(time.monotonic() - t0, 3)
        results.write(json.dumps(outcome) + "\n")
        if outcome.get("hang"):
            return  # threads of the hung case may still run: start afresh


# --- runner --------------------------------------------------------------------------------------------------
def run(work: Path, cases: int, seed: int, mlci_path: str | None = None, log: Any = None, first: int = 0) -> Summary:
    """Generate cases first .. first + cases - 1 under `work`, run them, return the counts. (Disjoint ranges run
    side by side -- the suite runs two halves on two xdist workers -- and together count as one run.)"""
    bucket = f"fz-{uuid.uuid4().hex[:10]}"
    base = setup(work, bucket)
    t0 = time.monotonic()
    all_cases = [make_case(base, seed, first + j) for j in range(cases)]  # results are keyed by position
    manifest = work / "cases.json"
    manifest.write_text(json.dumps(all_cases))
    env = {**os.environ, "MLCI_S3_RETRY_SECONDS": "3", "PYTHONPATH": os.pathsep.join(
        filter(None, [mlci_path, base["repo"], os.environ.get("PYTHONPATH")]))}
    summary = Summary(cases=cases)
    results: dict[int, dict[str, Any]] = {}
    nxt = 0
    try:
        while nxt < cases:
            r, w = os.pipe()
            proc = subprocess.Popen([sys.executable, __file__, "--worker", str(manifest), str(nxt), str(w)],
                                    pass_fds=(w,), env=env, cwd=base["repo"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            os.close(w)
            reader = os.fdopen(r)
            current, started, in_flight = nxt, time.monotonic(), False
            buf = ""
            while current < cases:
                limit = 3 * CASE_SECONDS.get(all_cases[current]["kind"], DEFAULT_CASE_SECONDS) + 30
                ready, _, _ = select.select([reader], [], [], 1.0)
                if ready:
                    chunk = os.read(reader.fileno(), 1 << 16).decode()
                    if not chunk:
                        break
                    buf += chunk
                    while "\n" in buf:
                        line, buf = buf.split("\n", 1)
                        msg = json.loads(line)
                        pos = msg["i"] - first
                        if msg.get("started"):
                            current, started, in_flight = pos, time.monotonic(), True
                        else:
                            results[pos] = msg
                            current, in_flight = pos + 1, False
                elif time.monotonic() - started > limit:
                    proc.kill()
                    results[current] = {**_brief(all_cases[current]), "hang": True, "error": "no answer (killed)"}
                    in_flight = False
                    break
                if proc.poll() is not None and not ready:
                    break
            proc.wait()
            reader.close()
            if in_flight:
                results[current] = {**_brief(all_cases[current]), "crash": True,
                                    "error": f"worker died (exit {proc.returncode})"}
            nxt = max(results) + 1 if results else current + 1
            if log:
                log(f"[fuzz] {len(results)}/{cases} cases done")
    finally:
        with contextlib.suppress(Exception):
            import boto3

            sys.path.insert(0, str(HERE.parent))
            from s3server import remove_bucket

            remove_bucket(boto3.client("s3"), bucket)
    summary.seconds = time.monotonic() - t0
    (work / "results.json").write_text(json.dumps([results.get(i) for i in range(cases)], indent=1))
    for i in range(cases):
        res = results.get(i) or {**_brief(all_cases[i]), "crash": True, "error": "no result"}
        summary.by_kind[res["kind"]] += 1
        summary.kind_seconds[res["kind"]] += res.get("seconds", 0.0)
        if res.get("hang"):
            summary.hangs.append(res)
        elif res.get("crash"):
            summary.crashes.append(res)
        elif res.get("error"):
            summary.tracebacks.append(res)
        else:
            summary.exits[res["exit"]] += 1
            why = _judge(all_cases[i], res["exit"])
            if why:
                summary.bad_exits.append({**res, "error": why})
    return summary


def _brief(case: dict[str, Any]) -> dict[str, Any]:
    return {"i": case["i"], "kind": case["kind"], "file": case["file"]}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mlci-path", help="a python/ directory whose mlci package is fuzzed instead")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (case files) for replay")
    args = ap.parse_args()
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))  # generating cases must stay cheap too
    work = Path(tempfile.mkdtemp(prefix="mlci-fuzz-"))
    try:
        summary = run(work, args.cases, args.seed, args.mlci_path, log=lambda m: print(m, file=sys.stderr))
        print(summary.line())
        print("# seconds per kind: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(summary.kind_seconds.items())))
        print(summary.examples(20))
        return 0 if not (summary.tracebacks or summary.hangs or summary.crashes or summary.bad_exits) else 1
    finally:
        if args.keep:
            print(f"case files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
