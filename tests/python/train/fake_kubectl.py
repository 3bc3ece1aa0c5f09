"""A scripted kubectl for the training-Job tests: it plays the API server *and* the kubelet.

`apply -f job.yaml` stores the manifests and runs the pod for real, in order, the way a cluster would: the
runtime-image containers (`mlci train-io get|put`) run as host processes against the real S3 server, the
training container runs on the real Docker engine with the pod's emptyDir volumes bound to temp directories.
`logs`, `get job -o json` and `delete` answer from what happened. Every call is appended to calls.jsonl.
The first `logs -f` answers "waiting to start" (as kubectl does while init containers run).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

STATE = Path(os.environ["FAKE_KUBE_STATE"])
DOCKER = os.environ.get("MLCI_DOCKER", "docker")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _strip_globals(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--context", "--namespace", "-n"):
            skip = True
        else:
            out.append(a)
    return out


def _run_pod(job: dict, configmaps: dict[str, dict]) -> dict:
    pod = job["spec"]["template"]["spec"]
    root = STATE / "pod"
    vols: dict[str, Path] = {}
    for v in pod["volumes"]:
        d = root / v["name"]
        d.mkdir(parents=True, exist_ok=True)
        if "configMap" in v:
            for fname, text in configmaps[v["configMap"]["name"]]["data"].items():
                (d / fname).write_text(text)
        vols[v["name"]] = d
    train_log = STATE / "train.log"
    for c in pod["initContainers"] + pod["containers"]:
        mounts = {m["mountPath"]: vols[m["name"]] for m in c.get("volumeMounts", [])}
        env = {e["name"]: e["value"] for e in c.get("env", [])}
        if c["command"][0] == "mlci":  # the mlci runtime image: run the same command on the host
            argv = list(c["command"][1:])
            for mount, host in mounts.items():
                argv = [str(host) + a[len(mount):] if a.startswith(mount) else a for a in argv]
            proc = subprocess.run([sys.executable, "-m", "mlci", *argv], capture_output=True, text=True,
                                  env={**os.environ, **env})
            (STATE / f"{c['name']}.log").write_text(proc.stdout + proc.stderr)
        else:  # the training image, on the real Docker engine
            cmd = [DOCKER, "run", "--rm"]
            for mount, host in mounts.items():
                cmd += ["-v", f"{host}:{mount}"]
            for k, v in env.items():
                cmd += ["-e", f"{k}={v}"]
            proc = subprocess.run([*cmd, c["image"], *c["command"]], capture_output=True, text=True)
            with train_log.open("a") as fh:
                for line in (proc.stdout + proc.stderr).splitlines():
                    fh.write(f"{_now()} {line}\n")
        if proc.returncode != 0:
            return {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                                 "message": f"container {c['name']} exited {proc.returncode}"}]}
    return {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}


def main() -> int:
    args = _strip_globals(sys.argv[1:])
    with (STATE / "calls.jsonl").open("a") as fh:
        fh.write(json.dumps(sys.argv[1:]) + "\n")
    verb = args[0]
    if args[:2] == ["config", "current-context"]:
        print("fake-ctx")
        return 0
    if verb == "apply":
        docs = list(yaml.safe_load_all(Path(args[args.index("-f") + 1]).read_text()))
        configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        for d in docs:
            print(f"{d['kind'].lower()}/{d['metadata']['name']} created")
        job = next(d for d in docs if d["kind"] == "Job")
        (STATE / "status.json").write_text(json.dumps(_run_pod(job, configmaps)))
        return 0
    if verb == "logs":
        text = (STATE / "train.log").read_text() if (STATE / "train.log").exists() else ""
        if "-f" in args:
            flag = STATE / "logs-waited"
            if not flag.exists():
                flag.touch()
                print('Error from server (BadRequest): container "train" in pod "x" is waiting to start: '
                      "PodInitializing", file=sys.stderr)
                return 1
            sys.stdout.write(text)
            return 0
        tail = next((int(a.split("=", 1)[1]) for a in args if a.startswith("--tail=")), None)
        lines = text.splitlines()
        print("\n".join(lines[-tail:] if tail else lines))
        return 0
    if verb == "get":
        polls = STATE / "polls"
        n = int(polls.read_text()) if polls.exists() else 0
        polls.write_text(str(n + 1))
        status = {"active": 1} if n == 0 else json.loads((STATE / "status.json").read_text())
        print(json.dumps({"kind": "Job", "status": status}))
        return 0
    if verb == "delete":
        print(f"{args[1]} deleted")
        return 0
    print(f"fake kubectl: unsupported {args}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
