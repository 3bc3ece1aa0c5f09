"""Load ml-ci.yaml: parse with line numbers, validate against the schema, apply defaults, cross-check.

`load_config` is the one entry point every command uses, so Jenkins and a laptop see the same resolved config.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from .schema import BOUNDED_METRICS, HIGHER_BETTER, LOWER_BETTER, PROPORTION_METRICS, SCHEMA
from .spec import Ctx, Issue

DEFAULT_FILE = "ml-ci.yaml"
SECRET_KEY = re.compile(r"(secret|token|password|passwd|private[_-]?key|access[_-]?key|credential)", re.I)
SECRET_VALUE = re.compile(r"(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{20,}|://[^/\s:@]+:[^/\s@]+@)")


class ConfigError(UserError):
    """Every problem found in one pass, so a user fixes them all at once."""

    def __init__(self, filename: str, issues: list[Issue]):
        self.filename = filename
        self.issues = issues
        lines = [i.render(filename) for i in sorted(issues, key=lambda i: (i.line or 0, i.path))]
        super().__init__(f"{len(issues)} error(s) in {filename}:\n  " + "\n  ".join(lines))

    def __str__(self) -> str:
        return self.message


@dataclass
class Config:
    """The resolved config plus where it came from (paths in it are relative to `root`)."""

    data: dict[str, Any]
    path: Path

    @property
    def root(self) -> Path:
        return self.path.parent

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def resolve(self, relative: str) -> Path:
        """A repo-relative path from config, refusing anything that escapes the repo."""
        return safe_join(self.root, relative, what="config path")


def safe_join(root: Path, relative: str, *, what: str) -> Path:
    """Join `relative` under `root`; absolute paths and `..` escapes are errors (path traversal)."""
    if os.path.isabs(relative):
        raise UserError(f"{what} '{relative}' is absolute", hint="use a path relative to the repository")
    root_real = root.resolve()
    full = (root_real / relative).resolve()
    if full != root_real and root_real not in full.parents:
        raise UserError(f"{what} '{relative}' escapes {root_real}", hint="remove '..' so the path stays inside")
    return full


def _line_map(node: yaml.Node, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = f"{path}.{key_node.value}" if path else str(key_node.value)
            out[sub] = key_node.start_mark.line + 1
            _line_map(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = f"{path}[{i}]"
            out[sub] = item.start_mark.line + 1
            _line_map(item, sub, out)
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (YAML silently keeps the last one, hiding mistakes)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, filename: str) -> tuple[Any, dict[str, int]]:
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"not valid YAML: {problem}", where=where, hint="fix the YAML syntax at that line") from None
    return data, (_line_map(node) if node is not None else {})


def validate(data: Any, lines: dict[str, int] | None = None) -> tuple[dict[str, Any], list[Issue]]:
    """Schema + cross-field checks. Pure: data in, (resolved data, issues) out."""
    ctx = Ctx(lines)
    if not isinstance(data, dict):
        ctx.error("", "the file must be a YAML mapping at the top level", "keys such as service, image, accuracy")
        return {}, ctx.issues
    resolved = SCHEMA.check(data, "", ctx)
    if not ctx.issues:
        _cross_checks(resolved, ctx)
    if not ctx.issues:
        _derive(resolved)
    return resolved, ctx.issues


def _cross_checks(cfg: dict[str, Any], ctx: Ctx) -> None:
    acc = cfg["accuracy"]
    datasets = cfg["artifacts"]["data"]
    if acc["suites"] and not acc["predict"]:
        ctx.error("accuracy.predict", "required when accuracy.suites are defined", "module:callable")
    for name, suite in acc["suites"].items():
        ds = suite["dataset"]
        if ds not in datasets and not re.search(r"\.(npz|csv|jsonl|parquet|pq)$", ds):
            ctx.error(f"accuracy.suites.{name}.dataset", f"'{ds}' is not a dataset under artifacts.data",
                      valid=", ".join(datasets) or "(none defined)")
        if not suite["gates"]:
            ctx.error(f"accuracy.suites.{name}.gates", "a suite needs at least one gate", "a list of gates")
        output = suite["output"] or acc["output"]
        for i, g in enumerate(suite["gates"]):
            _check_gate(g, f"accuracy.suites.{name}.gates[{i}]", ctx)
            if g["metric"] == "auc" and output == "labels":
                ctx.error(f"accuracy.suites.{name}.gates[{i}].metric", "an auc gate ranks samples by score, but the "
                          "suite's predict returns labels (accuracy.output)", "output: scores or probabilities")
    for name, ds in datasets.items():
        if ds["uri"].startswith("s3://"):
            continue
        if ds["uri"].startswith(("/", "..")) or "/../" in ds["uri"]:
            ctx.error(f"artifacts.data.{name}.uri", f"local path '{ds['uri']}' escapes the repository",
                      "an s3:// URI or a path relative to the repo")
    for name, env in cfg["deploy"]["environments"].items():
        hpa = env["hpa"]
        if hpa and hpa["min"] > hpa["max"]:
            ctx.error(f"deploy.environments.{name}.hpa.min", f"min {hpa['min']} > max {hpa['max']}", "min <= max")
    for key in ("models", ):
        for sub in ("lock", "dest"):
            value = cfg["artifacts"][key][sub]
            if value.startswith("/") or ".." in Path(value).parts:
                ctx.error(f"artifacts.{key}.{sub}", f"'{value}' escapes the repository", "a relative path inside the repo")


def _check_gate(g: dict[str, Any], path: str, ctx: Ctx) -> None:
    metric = g["metric"]
    if metric in HIGHER_BETTER:
        if g["kind"] == "absolute" and g["min"] is None:
            ctx.error(f"{path}.min", f"metric '{metric}' is higher-is-better: the gate needs `min`", "a number in [0, 1]")
        if g["max"] is not None:
            ctx.error(f"{path}.max", f"metric '{metric}' is higher-is-better: use `min`, not `max`")
        if metric in BOUNDED_METRICS and g["min"] is not None:
            if not 0 <= g["min"] <= 1:
                ctx.error(f"{path}.min", f"{g['min']!r} is out of range for {metric}", "a number in [0, 1]")
            elif g["kind"] == "absolute" and g["min"] + g["margin"] >= 1:
                ctx.error(f"{path}.margin", f"min + margin = {g['min'] + g['margin']:g} must stay below 1",
                          "a smaller margin or min")
    if metric in LOWER_BETTER:
        if g["kind"] == "absolute" and g["max"] is None:
            ctx.error(f"{path}.max", f"metric '{metric}' is lower-is-better: the gate needs `max`", "a number >= 0")
        if g["min"] is not None:
            ctx.error(f"{path}.min", f"metric '{metric}' is lower-is-better: use `max`, not `min`")
    if g["kind"] == "change" and metric not in PROPORTION_METRICS:
        ctx.error(f"{path}.kind", f"change gates are paired per-sample tests; '{metric}' is not a per-sample proportion",
                  valid=", ".join(PROPORTION_METRICS))
    if g["class"] is not None and metric not in ("precision", "recall", "f1"):
        ctx.error(f"{path}.class", f"`class` applies to precision, recall or f1, not '{metric}'")


def _derive(cfg: dict[str, Any]) -> None:
    """Defaults that depend on other keys; kept here so every default lives in the config package."""
    if not cfg["image"]["name"]:
        cfg["image"]["name"] = f"mlci/{cfg['service']}"
    acc = cfg["accuracy"]
    for suite in acc["suites"].values():
        if suite["batch_size"] is None:
            suite["batch_size"] = acc["batch_size"]
        if not suite["branches"] and suite["schedule"]:
            suite["branches"] = list(cfg["pipeline"]["integration_branches"])


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, validate and resolve ml-ci.yaml (default: $MLCI_CONFIG or ./ml-ci.yaml)."""
    p = Path(path or os.environ.get("MLCI_CONFIG") or DEFAULT_FILE)
    name = str(p)
    if not p.exists():
        raise UserError(f"config file {name} not found", hint="run in the service repo or pass -c PATH/ml-ci.yaml")
    if p.is_dir():
        raise UserError(f"config path {name} is a directory", hint=f"pass the file, e.g. {p / DEFAULT_FILE}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {name}: {exc}") from None
    if not text.strip():
        raise UserError(f"{name} is empty", hint="start from examples/digits/ml-ci.yaml; `service:` is required")
    data, lines = parse_yaml(text, name)
    if data is None:
        raise UserError(f"{name} holds no YAML mapping (only comments?)", hint="`service:` is required")
    resolved, issues = validate(data, lines)
    if issues:
        raise ConfigError(name, issues)
    return Config(resolved, p.resolve())


def redact(value: Any, key: str = "") -> Any:
    """Copy of the config with secret-looking keys and values masked, for `config show` and logs."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    # `*_credentials` keys hold Jenkins credential ids, not secrets: they are safe to show.
    secret_key = SECRET_KEY.search(key) and not key.endswith("credentials")
    if isinstance(value, str) and (secret_key or SECRET_VALUE.search(value)):
        return "***"
    return value
