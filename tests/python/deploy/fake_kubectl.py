"""A scripted `kubectl` for the deploy tests (no API server can run on the CI machines).

Installed as an executable named `kubectl` first on PATH. Every call appends one JSON line to
$FAKE_KUBECTL_DIR/calls.jsonl: argv, stdin, and whether KUBECONFIG was set. It behaves like kubectl where the
orchestration depends on it:
- contexts come from the real kubeconfig file in $KUBECONFIG; `--context X` for an unknown X fails exactly as
  kubectl does (`error: context "X" does not exist`, exit 1), `config get-contexts -o name` and
  `config current-context` answer from the file;
- `apply -f -` parses stdin as YAML (a malformed manifest fails the call) and prints one line per object;
- other commands answer with plausible defaults.
$FAKE_KUBECTL_DIR/scenario.json overrides answers: {"rules": [{"match": ["rollout", "status"], "rc": 1,
"stdout": "...", "stderr": "...", "sleep": 0, "child_sleep": 0}]}: the first rule whose tokens all occur in argv wins.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

GLOBAL_FLAGS = {"--context": "context", "-n": "namespace", "--namespace": "namespace", "--kubeconfig": "kubeconfig"}


def _kubeconfig() -> dict:
    path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        text = Path(path).read_text()
    except OSError:
        return {}
    try:
        return json.loads(text)  # the tests write JSON (valid YAML); skip importing yaml on every call
    except ValueError:
        import yaml

        return yaml.safe_load(text) or {}


def _split_globals(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in GLOBAL_FLAGS:
            flags[GLOBAL_FLAGS[arg]] = next(it, "")
        elif arg.startswith("--context="):
            flags["context"] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return flags, rest


def main() -> int:
    state = Path(os.environ["FAKE_KUBECTL_DIR"])
    argv = sys.argv[1:]
    stdin = sys.stdin.read() if "-" in argv and "-f" in argv else None
    with open(state / "calls.jsonl", "a") as fh:
        fh.write(json.dumps({"argv": argv, "stdin": stdin, "kubeconfig_set": bool(os.environ.get("KUBECONFIG"))}) + "\n")
    flags, rest = _split_globals(argv)
    kubeconfig = _kubeconfig()
    contexts = [c.get("name") for c in kubeconfig.get("contexts") or []]

    if "context" in flags and flags["context"] not in contexts:
        print(f'error: context "{flags["context"]}" does not exist', file=sys.stderr)
        return 1
    scenario_file = state / "scenario.json"
    rules = json.loads(scenario_file.read_text()).get("rules", []) if scenario_file.exists() else []
    for rule in rules:
        if all(token in argv for token in rule["match"]):
            if rule.get("child_sleep"):  # like an exec auth plugin: a child holding our stdout/stderr open
                import subprocess

                subprocess.Popen(["sleep", str(rule["child_sleep"])])
            time.sleep(rule.get("sleep", 0))
            sys.stdout.write(rule.get("stdout", ""))
            sys.stderr.write(rule.get("stderr", ""))
            return int(rule.get("rc", 0))

    if rest[:2] == ["config", "get-contexts"]:
        print("\n".join(contexts))
        return 0
    if rest[:2] == ["config", "current-context"]:
        current = kubeconfig.get("current-context")
        if not current:
            print("error: current-context is not set", file=sys.stderr)
            return 1
        print(current)
        return 0
    if rest[:1] == ["apply"]:
        import yaml

        try:
            docs = [d for d in yaml.safe_load_all(stdin or "") if d]
        except yaml.YAMLError as exc:
            print(f"error: error parsing STDIN: {exc}", file=sys.stderr)
            return 1
        for d in docs:
            print(f"{d['kind'].lower()}/{d['metadata']['name']} serverside-applied")
        return 0
    if rest[:2] == ["rollout", "status"]:
        name = rest[2].split("/", 1)[1]
        print(f'Waiting for deployment "{name}" rollout to finish: 0 of 1 updated replicas are available...')
        print(f'deployment "{name}" successfully rolled out')
        return 0
    if rest[:2] == ["rollout", "undo"]:
        print(f"deployment.apps/{rest[2].split('/', 1)[1]} rolled back")
        return 0
    if rest[:2] == ["get", "pods"]:
        print("pod/digits-7d9f8b6c5-x2k4q")
        return 0
    if rest[:2] == ["get", "events"]:
        print("LAST SEEN   TYPE      REASON    OBJECT                        MESSAGE")
        print("12s         Warning   BackOff   pod/digits-7d9f8b6c5-x2k4q   Back-off restarting failed container")
        return 0
    if rest[:1] == ["logs"]:
        print("Traceback (most recent call last):")
        print("FileNotFoundError: models/digits.npz")
        return 0
    print(f"fake kubectl: unscripted command {argv}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
