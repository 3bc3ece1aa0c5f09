"""Resolve the `train:` section into one typed value, with the checks that span sections.

Why here and not in the config loader: the cross-checks (inputs name pinned datasets, the evaluate suite exists)
matter only to `mlci train`, and keeping them next to their only user keeps the loader owned by the config part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.loader import Config
from ..deploy.render import pod_scheduling
from ..errors import UserError


@dataclass(frozen=True)
class Input:
    """A training dataset, pinned by digest."""

    name: str
    uri: str
    sha256: str


@dataclass(frozen=True)
class TrainSettings:
    service: str
    root: Path
    image: str
    dockerfile: Path
    context: Path
    base: str
    build_args: dict[str, str]
    command: str
    inputs: tuple[Input, ...]
    params: Path | None
    outputs: tuple[str, ...]
    resources: dict[str, Any]
    scheduling: dict[str, Any]  # nodeSelector/tolerations of the Job's pod (runner: kubernetes)
    timeout_s: float
    runner: str
    namespace: str
    context_name: str | None
    image_pull_policy: str
    image_pull_secret: str | None
    service_account: str | None
    cache_uri: str | None
    evaluate: str | None
    lock: Path
    models_dest: str
    publish: dict[str, Any] = field(default_factory=dict)
    report_post: dict[str, Any] = field(default_factory=dict)

    @property
    def record_path(self) -> Path:
        """The training record lives next to the dependency file, so one commit carries both."""
        return self.lock.parent / self.publish["record"]

    def model_path(self, output: str) -> str:
        """Repo-relative path a training output is published under (its key in the lock file)."""
        return f"{self.models_dest.rstrip('/')}/{output}" if self.models_dest.strip("./") else output


def resolve(cfg: Config) -> TrainSettings:
    """Config -> TrainSettings; every mistake is a UserError naming the ml-ci.yaml key and the fix."""
    t = cfg.data.get("train")
    where = str(cfg.path)
    if not t:
        raise UserError("ml-ci.yaml has no `train:` section", where=where,
                        hint="add train: {command: ..., outputs: [...], evaluate: SUITE} (see README 'Training')")
    datasets = cfg["artifacts"]["data"]
    inputs = []
    for name in t["inputs"]:
        ds = datasets.get(name)
        if ds is None:
            raise UserError(f"train.inputs: '{name}' is not a dataset under artifacts.data", where=where,
                            hint="valid: " + (", ".join(datasets) or "(none defined)"))
        if not ds.get("sha256"):
            raise UserError(f"train.inputs: dataset '{name}' has no sha256", where=where,
                            hint=f"pin it: add artifacts.data.{name}.sha256 (training data must be pinned by digest)")
        inputs.append(Input(name, ds["uri"], ds["sha256"]))
    suites = cfg["accuracy"]["suites"]
    if t["evaluate"] and t["evaluate"] not in suites:
        raise UserError(f"train.evaluate: '{t['evaluate']}' is not a suite under accuracy.suites", where=where,
                        hint="valid: " + (", ".join(suites) or "(none defined)"))
    for out in t["outputs"]:
        if out.startswith("/") or ".." in Path(out).parts:
            raise UserError(f"train.outputs: '{out}' escapes the outputs directory", where=where,
                            hint="name files relative to $MLCI_TRAIN_OUT")
    remote = cfg["artifacts"]["remote"]
    cache_uri = t["cache"] or (f"{remote.rstrip('/')}/train" if remote else None)
    return TrainSettings(
        service=cfg["service"],
        root=cfg.root,
        image=t["image"] or f"mlci/{cfg['service']}-train",
        dockerfile=cfg.resolve(t["dockerfile"]),
        context=cfg.resolve(t["context"]),
        base=t["base"] or cfg["image"]["base"],
        build_args=dict(t["build_args"]),
        command=t["command"],
        inputs=tuple(inputs),
        params=cfg.resolve(t["params"]) if t["params"] else None,
        outputs=tuple(t["outputs"]),
        resources=t["resources"],
        scheduling=pod_scheduling(t["node_selector"], t["tolerations"], f"{cfg.path}: train"),
        timeout_s=float(t["timeout"]) * 60.0,
        runner=t["runner"],
        namespace=t["namespace"],
        context_name=t["context_name"],
        image_pull_policy=t["image_pull_policy"],
        image_pull_secret=t["image_pull_secret"],
        service_account=t["service_account"],
        cache_uri=cache_uri,
        evaluate=t["evaluate"],
        lock=cfg.resolve(cfg["artifacts"]["models"]["lock"]),
        models_dest=cfg["artifacts"]["models"]["dest"],
        publish=dict(t["publish"]),
        report_post=dict(cfg["report"]["post"]),
    )
