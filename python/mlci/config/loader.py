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
from ..fsutil import read_user_text
from .schema import BOUNDED_METRICS, CHANGE_METRICS, HIGHER_BETTER, LOWER_BETTER, SCHEMA
from .spec import Ctx, Issue

DEFAULT_FILE = "ml-ci.yaml"
SECRET_KEY = re.compile(r"(secret|token|password|passwd|private[_-]?key|access[_-]?key|api[_-]?key|apikey|credential|"
                        r"authorization|bearer)", re.I)
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


# Bounds on what a YAML document may make the loader do. libyaml already refuses nesting beyond 1,000 levels;
# the constructor, the schema and every consumer recurse, so mlci stops far earlier. Aliases let a 700-byte
# document denote billions of nodes ("billion laughs"): the nodes they add beyond the text's own are counted.
MAX_DEPTH = 64
ALIAS_BUDGET = 10_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it


class YamlLimitError(yaml.constructor.ConstructorError):
    """A document beyond the loader's bounds (too deep, aliases expanding too far, a non-scalar key)."""


_MAP, _SEQ, _STR = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


def build(loader: Any, root: yaml.Node, *, aliases: bool = True) -> tuple[Any, dict[str, int]]:
    """(data, {dotted key path: line}) of a composed document, bounded before anything is built from it.

    An iterative pass over the node graph checks the bounds, each node visited once (an alias shares its
    anchor's node), so the cost is the text's size even for an alias bomb; then the nodes are built in that
    pass's order, each once. A 2,000-entry lock file costs milliseconds.
    Refused, as YAMLErrors at the offending line: nesting deeper than MAX_DEPTH, a list or mapping used as a key,
    a duplicate key, a recursive alias, any alias when `aliases` is False (files mlci writes hold none), and
    aliases that would add more than ALIAS_BUDGET nodes. Plain maps, lists and scalars are built here; other
    tags (!!set, !!omap, merge keys) go to the safe constructor, which the bounds above already make safe.
    """
    lines: dict[str, int] = {}
    size: dict[int, int] = {}  # id(node) -> node count of its expansion
    order: list[yaml.Node] = []  # every node once, children before parents
    open_: set[int] = set()
    keys = 0  # key nodes in the text (each belongs to one mapping node)
    stack: list[tuple[yaml.Node, str, int, bool]] = [(root, "", 1, False)]
    while stack:
        node, path, depth, closing = stack.pop()
        nid = id(node)
        if closing:
            open_.discard(nid)
            size[nid] = 1 + _expansion(node, size)
            order.append(node)
            continue
        if nid in size or nid in open_:
            if nid in open_:
                raise _limit("a recursive alias (an anchor used inside itself)", node)
            if not aliases:
                raise _limit("the value anchored here is used again through an alias (*name); mlci writes this "
                             "file without any, so none are allowed", node)
            continue  # shared node: built once, counted in the total below
        if depth > MAX_DEPTH:
            raise _limit(f"nesting deeper than {MAX_DEPTH} levels", node)
        if isinstance(node, yaml.ScalarNode):
            size[nid] = 1
            order.append(node)
            continue
        open_.add(nid)
        stack.append((node, path, depth, True))
        if isinstance(node, yaml.MappingNode):
            keys += len(node.value)
            for key_node, value_node in reversed(node.value):
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _limit("a list or mapping used as a key: keys are names", key_node)
                sub = f"{path}.{key_node.value}" if path else str(key_node.value)
                lines.setdefault(sub, key_node.start_mark.line + 1)
                stack.append((value_node, sub, depth + 1, False))
        else:
            items = node.value
            for i in range(len(items) - 1, -1, -1):
                sub = f"{path}[{i}]"
                lines.setdefault(sub, items[i].start_mark.line + 1)
                stack.append((items[i], sub, depth + 1, False))
    extra = size[id(root)] - len(size) - keys
    if extra > ALIAS_BUDGET:
        raise _limit(f"aliases expand this document by {extra:,} nodes; at most {ALIAS_BUDGET:,} are allowed", root)
    built: dict[int, Any] = {}  # only now: merge keys expand while they are constructed
    for node in order:
        built[id(node)] = _scalar(loader, node) if isinstance(node, yaml.ScalarNode) else _collection(loader, node, built)
    return built[id(root)], lines


def _expansion(node: yaml.Node, size: dict[int, int]) -> int:
    """Nodes below `node` once its aliases are expanded (keys are scalars: one node each)."""
    if isinstance(node, yaml.MappingNode):
        return sum(1 + size[id(v)] for _, v in node.value)
    return sum(size[id(c)] for c in node.value)


def _scalar(loader: Any, node: yaml.ScalarNode) -> Any:
    if node.tag == _STR:
        return node.value
    construct = loader.yaml_constructors.get(node.tag) or loader.yaml_constructors[None]  # None: unknown tag
    try:
        return construct(loader, node)
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:  # `!!int x`, 5,000 digits, Feb 30th, `!!timestamp x`
        raise yaml.constructor.ConstructorError(None, None, f"cannot read {node.value[:40]!r}: {str(exc)[:120]}",
                                                node.start_mark) from None


def _collection(loader: Any, node: yaml.Node, built: dict[int, Any]) -> Any:
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        return [built[id(c)] for c in node.value]
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP and all(k.tag != _MERGE for k, _ in node.value):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node)
            if key in out:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            out[key] = built[id(value_node)]
        return out
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise yaml.constructor.ConstructorError(None, None, str(exc)[:160], node.start_mark) from None


def _limit(problem: str, node: yaml.Node) -> YamlLimitError:
    return YamlLimitError(None, None, problem, node.start_mark)


class _UniqueKeyLoader(_Loader):  # type: ignore[misc,valid-type]
    """Safe loader whose documents are built by `build` (bounded; duplicate keys refused: YAML silently keeps
    the last one, hiding mistakes), so `yaml.load_all(text, Loader=_UniqueKeyLoader)` is bounded too."""

    aliases = True
    lines: dict[str, int] = {}

    def construct_document(self, node: yaml.Node) -> Any:
        data, self.lines = build(self, node, aliases=self.aliases)
        return data

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """For tagged mappings and merges only: explicit keys must be unique (merged ones may be overridden)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _NoAliasLoader(_UniqueKeyLoader):
    aliases = False


def parse_yaml(text: str, filename: str, *, aliases: bool = True) -> tuple[Any, dict[str, int]]:
    """(data, {dotted key path: line}) of one YAML document; every problem is a UserError naming the file and
    line. Parsed once (libyaml when available) and bounded by `build`; `aliases=False` for files mlci writes."""
    loader = (_UniqueKeyLoader if aliases else _NoAliasLoader)(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = ("write it out plainly: mlci reads at most 64 levels of nesting, names as keys and aliases adding at "
                f"most {ALIAS_BUDGET:,} nodes" if isinstance(exc, YamlLimitError) else "fix the YAML at that line")
        raise UserError(f"not valid YAML: {problem}", where=where, hint=hint) from None
    finally:
        loader.dispose()
    return data, loader.lines


def dump_yaml(data: Any) -> str:
    """YAML text for people and tools: block style, key order kept, and no anchors or aliases, ever."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


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
    callable_suites = [n for n, s in acc["suites"].items() if not acc["endpoint"] and not s["endpoint"]]
    if callable_suites and not acc["predict"]:
        ctx.error("accuracy.predict", f"required by suite(s) {', '.join(callable_suites)}",
                  "module:callable, or accuracy.endpoint to test the served HTTP API instead")
    for name, suite in acc["suites"].items():
        if (acc["endpoint"] or suite["endpoint"]) and (acc["endpoint"] or {}).get("request") is None \
                and (suite["endpoint"] or {}).get("request") is None:
            ctx.error(f"accuracy.suites.{name}.endpoint.request", "endpoint mode needs a request template",
                      'a JSON body template, e.g. {"inputs": ["$x"]} (set accuracy.endpoint.request)')
        ds = suite["dataset"]
        if ds not in datasets and not re.search(r"\.(npz|csv|jsonl|parquet|pq)$", ds):
            ctx.error(f"accuracy.suites.{name}.dataset", f"'{ds}' is not a dataset under artifacts.data",
                      valid=", ".join(datasets) or "(none defined)")
        if not suite["gates"]:
            ctx.error(f"accuracy.suites.{name}.gates", "a suite needs at least one gate", "a list of gates")
        if suite["slices"]:
            _check_slices(suite["slices"], f"accuracy.suites.{name}.slices", ctx)
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


def _check_slices(sl: dict[str, Any], path: str, ctx: Ctx) -> None:
    """What the slices schema cannot say alone: ascending bins, one label per bin, weights for `weights`."""
    bins, labels = sl["bins"], sl["labels"]
    if bins and any(b <= a for a, b in zip(bins, bins[1:], strict=False)):
        ctx.error(f"{path}.bins", f"edges {bins} are not strictly ascending", "ascending numbers, e.g. [100, 1000]")
    if labels and not bins:
        ctx.error(f"{path}.labels", "`labels` names the `bins` slices, but no bins are set",
                  "bins: [edges] with len(bins) + 1 labels, or no labels (a field's values name its slices)")
    elif labels and len(labels) != len(bins) + 1:
        ctx.error(f"{path}.labels", f"{len(labels)} label(s) for {len(bins)} edge(s)",
                  f"{len(bins) + 1} labels (below the first edge, between edges, at or above the last)")
    elif labels and len(set(labels)) != len(labels):
        ctx.error(f"{path}.labels", "labels repeat", "one distinct name per slice")
    if sl["alpha_split"] == "weights" and not sl["weights"]:
        ctx.error(f"{path}.weights", "alpha_split: weights needs a weight per slice",
                  "a mapping slice name -> positive number", valid="or alpha_split: holm")


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
    if g["kind"] == "change" and metric not in CHANGE_METRICS:
        why = (f"a change gate on the custom score {metric.get('score')} needs the baseline's scores, which a "
               "baseline run does not compute" if isinstance(metric, dict) else
               f"a change gate on {metric} needs the baseline's own latencies, which a baseline run does not measure")
        ctx.error(f"{path}.kind", why, valid=", ".join(CHANGE_METRICS) + " (gate the others with kind: absolute)")
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
    text = read_user_text(p, "config file", "run in the service repo or pass -c PATH/ml-ci.yaml")
    if not text.strip():
        raise UserError(f"{name} is empty", hint="start from examples/digits/ml-ci.yaml; `service:` is required")
    data, lines = parse_yaml(text, name)
    if data is None:
        raise UserError(f"{name} holds no YAML mapping (only comments?)", hint="`service:` is required")
    resolved, issues = validate(data, lines)
    if issues:
        raise ConfigError(name, issues)
    return Config(resolved, p.resolve())


# Secrets inside a longer string such as a command: `Authorization: Bearer X`, `API_KEY=X`, `--token X`,
# `X-Api-Key: X`. The name stays, the value goes.
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:secret|token|password|passwd|api[_-]?key|apikey|private[_-]?key|access[_-]?key)[A-Za-z0-9_.-]*"
_INLINE_SECRETS = [
    re.compile(r"(?i)\b((?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=:-]{6,}"),
    re.compile(rf"(?i)(\b{_SECRET_NAME}\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s\"']+)"),
    re.compile(rf"(?i)(--{_SECRET_NAME}(?:=|\s+))(\"[^\"]*\"|'[^']*'|[^\s\"']+)"),
]


_VARIABLE = re.compile(r"""["']?\$\{?[A-Za-z_][A-Za-z0-9_]*\}?["']?""")


def redact_text(text: str) -> str:
    """`text` with secrets written inside it masked (tokens in commands, NAME=value assignments, URL passwords).
    A value that only names a variable ($TOKEN) is kept: it shows where the secret comes from, not the secret."""
    for pattern in _INLINE_SECRETS:
        text = pattern.sub(lambda m: m.group(0) if _VARIABLE.fullmatch(m.group(0)[len(m.group(1)):])
                           else m.group(1) + "***", text)
    return re.sub(r"(://[^/\s:@]+:)[^/\s@]+@", r"\1***@", text)


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
    return redact_text(value) if isinstance(value, str) else value
