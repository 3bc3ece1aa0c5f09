"""The training record: the answer to "which code, which data, which parameters made this model?".

Written next to the dependency file (`train.publish.record`, default training.json) and committed with it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import yaml

from .. import __version__

SCHEMA = "mlci.train/1"


def trigger(explicit: str | None = None) -> str:
    """Why this run happened: --trigger, $MLCI_TRAIN_TRIGGER (the Jenkins step sets timer/user/drift), else
    'jenkins' under Jenkins, else 'manual'."""
    return explicit or os.environ.get("MLCI_TRAIN_TRIGGER") or ("jenkins" if os.environ.get("JENKINS_URL") else "manual")


def read_params(path: Path | None) -> Any:
    """The parameters as data for the record (YAML is a superset of JSON); None without a params file."""
    if path is None:
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def build(*, service: str, model_files: dict[str, str], git: dict[str, Any], code_digest: str,
          data: dict[str, dict[str, str]], params_file: str | None, params_digest: str | None, params: Any,
          image: dict[str, Any], evaluation: dict[str, Any], durations: dict[str, float], run_key: str,
          cache_hit: bool, trigger_name: str, runner: str,
          drift_reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pure: the record from its facts. `drift_reference` ({uri, sha256, dataset, rows, features}) is what
    `mlci drift check` uses by default."""
    return {
        "schema": SCHEMA,
        "service": service,
        "model": {"files": {k: f"sha256:{v.removeprefix('sha256:')}" for k, v in sorted(model_files.items())}},
        "code": {**git, "digest": code_digest},
        "data": data,
        "params": {"file": params_file, "sha256": params_digest, "values": params},
        "image": image,
        "evaluation": evaluation,
        "drift_reference": drift_reference,
        "metrics": evaluation.get("metrics", {}),
        "duration_s": {k: round(v, 3) for k, v in durations.items()},
        "run": {"key": run_key, "cache_hit": cache_hit, "runner": runner},
        "trigger": trigger_name,
        "mlci_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
