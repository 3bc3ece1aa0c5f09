"""Hostile input through the real CLI: each named case exits 2 with the file, the line where there is one and
a fix, within seconds, never a traceback (the fuzz test, tests/python/fuzz, covers thousands more)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..conftest import run_mlci

MERGE_BOMB = "a0: &a0 {k0: 1}\n" + "".join(f"a{i}: &a{i}\n  <<: [*a{i - 1}, *a{i - 1}]\n  k{i}: 1\n" for i in range(1, 30))
BOMB = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else '"lol"'] * 10) + "]\n" for i in range(10))
GATE = "accuracy:\n  predict: m:f\n  suites:\n    s: {dataset: t.npz, gates: [{metric: accuracy, min: 0.9, %s}]}\n"
TRAIN = "train:\n  command: python3 train.py\n  outputs: [model.npz]\n  %s\n"


@pytest.mark.parametrize("body, expected", [
    ("service: digits\n" + BOMB, "aliases expand this document by"),  # 700 bytes that mean 10^10 nodes
    ("service: digits\n" + MERGE_BOMB, "aliases expand this document by"),  # merge keys doubling 29 times
    ("service: digits\nx: " + "[" * 500 + "]" * 500 + "\n", "nesting deeper than 64 levels"),
    ("service: digits\n? [a, b]\n: 1\n", "a list or mapping used as a key"),
    ("service: digits\n{a: 1}: 2\n", "a list or mapping used as a key"),
    ("service: digits\nx: &a [*a]\n", "a recursive alias"),
    ("service: digits\nversion: " + "9" * 5000 + "\n", "cannot read"),
    ("service: digits\nx: !!timestamp yesterday\n", "cannot read 'yesterday'"),
    ("service: digits\n" + GATE % "margin: .nan", "margin: nan is not a finite number"),
    ("service: digits\n" + GATE % "alpha: .inf", "alpha: inf is not a finite number"),
    ("service: digits\n" + GATE % "beta: -.inf", "beta: -inf is not a finite number"),
    ("service: digits\nimage: {dockerfile: ../../Dockerfile}\n", "image.dockerfile: '../../Dockerfile' escapes"),
    ("service: digits\nimage: {context: /etc}\n", "image.context: '/etc' escapes the repository (an absolute path)"),
    ("service: digits\n" + TRAIN % "params: ../secrets.json", "train.params: '../secrets.json' escapes"),
    ("service: digits\n" + TRAIN % "dockerfile: training/../../Dockerfile", "train.dockerfile"),
    ("service: digits\ntrain:\n  command: x\n  outputs: [../../model.npz]\n", "train.outputs[0]: '../../model.npz'"),
    ("service: digits\ndeploy:\n  environments:\n    prod: {branch: main, namespace: p, resources: {limits: {memory: -1Gi}}}\n",
     "deploy.environments.prod.resources.limits.memory"),
    ("service: digits\ndeploy:\n  environments:\n    prod: {branch: main, namespace: p, resources: {requests: {cpu: -0.5}}}\n",
     "deploy.environments.prod.resources.requests.cpu"),
    ("service: digits\n" + TRAIN % "resources: {limits: {cpu: '-2'}}", "train.resources.limits.cpu"),
])
def test_hostile_configs_exit_2_at_config_check(tmp_path: Path, body: str, expected: str) -> None:
    p = tmp_path / "ml-ci.yaml"
    p.write_text(body)
    t0 = time.monotonic()
    proc = run_mlci("config", "check", "-c", str(p), timeout=60)
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr and str(p) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_valid_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    p = tmp_path / "ml-ci.yaml"
    p.write_text("service: digits\naccuracy:\n  predict: m:f\n  suites:\n"
                 "    a: {dataset: t.npz, gates: &gates [{metric: accuracy, min: 0.9}]}\n"
                 "    b: {dataset: t.npz, gates: *gates}\n"
                 "deploy:\n  environments:\n    staging: &env {branch: develop, namespace: ml-staging}\n"
                 "    production:\n      <<: *env\n      branch: main\n")
    proc = run_mlci("config", "show", "--json", "-c", str(p))
    assert proc.returncode == 0, proc.stderr
    assert '"branch": "main"' in proc.stdout and '"namespace": "ml-staging"' in proc.stdout
