"""A small schema language for ml-ci.yaml.

Why not JSON Schema: we need per-key docs that render the README table and the Jenkins step help, defaults
applied in exactly one place, "did you mean" for misspelt keys, and messages that say what was expected and
which values are valid. Each node validates a value and returns the value with defaults applied.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import clip

MISSING: Any = object()


@dataclass
class Issue:
    """One validation error: where (dotted key path), what was expected, which values are valid."""

    path: str
    message: str
    expected: str | None = None
    valid: str | None = None
    line: int | None = None

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        text = f"{where}: {self.path or '<top>'}: {self.message}"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.valid:
            text += f"; valid: {self.valid}"
        return text


class Ctx:
    """Collects issues during one validation pass and maps key paths to YAML line numbers."""

    def __init__(self, lines: dict[str, int] | None = None):
        self.issues: list[Issue] = []
        self.lines = lines or {}

    def error(self, path: str, message: str, expected: str | None = None, valid: str | None = None) -> None:
        line = self.lines.get(path)
        probe = path
        while line is None and "." in probe:
            probe = probe.rsplit(".", 1)[0]
            line = self.lines.get(probe)
        self.issues.append(Issue(path, message, expected, valid, line))


def _typename(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__
    )


@dataclass
class Node:
    doc: str = ""
    default: Any = MISSING
    required: bool = False
    secret: bool = False

    def expected(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        raise NotImplementedError

    def default_value(self) -> Any:
        return None if self.default is MISSING else self.default


@dataclass
class Str(Node):
    pattern: str | None = None
    pattern_doc: str | None = None
    choices: tuple[str, ...] | None = None

    def expected(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return self.pattern_doc or "a string"

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(value, str):
            ctx.error(path, f"got {_typename(value)} {clip(value)}", self.expected())
            return value
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(value, self.choices, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            ctx.error(path, f"{clip(value)} is not allowed{hint}", valid=", ".join(self.choices))
        elif self.pattern and not re.fullmatch(self.pattern, value):
            ctx.error(path, f"{clip(value)} is not valid", self.pattern_doc or f"a string matching {self.pattern}")
        return value


@dataclass
class Num(Node):
    integer: bool = False
    min: float | None = None
    max: float | None = None
    exclusive: bool = False  # bounds exclusive (e.g. alpha in (0, 0.5))

    def expected(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.min is not None and self.max is not None:
            lo, hi = ("(", ")") if self.exclusive else ("[", "]")
            return f"{kind} in {lo}{self.min:g}, {self.max:g}{hi}"
        if self.min is not None:
            return f"{kind} {'>' if self.exclusive else '>='} {self.min:g}"
        return kind

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        ok_type = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            ctx.error(path, f"got {_typename(value)} {clip(value)}", self.expected())
            return value
        if not math.isfinite(value):  # .nan/.inf pass every comparison below and break statistics later
            ctx.error(path, f"{clip(value)} is not a finite number", self.expected())
            return value
        low_bad = self.min is not None and (value <= self.min if self.exclusive else value < self.min)
        high_bad = self.max is not None and (value >= self.max if self.exclusive else value > self.max)
        if low_bad or high_bad:
            ctx.error(path, f"{clip(value)} is out of range", self.expected())
        return value


@dataclass
class RelPath(Str):
    """A path inside the repository: relative and without `..` (checked without touching disk, so `config check`
    refuses a traversal before any command would read or write there)."""

    def expected(self) -> str:
        return self.pattern_doc or "a path relative to the repository"

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        before = len(ctx.issues)
        value = super().check(value, path, ctx)
        if len(ctx.issues) == before and isinstance(value, str):
            problem = path_problem(value)
            if problem:
                ctx.error(path, f"{clip(value)} {problem}", "a path relative to the repository, without '..'")
        return value


def path_problem(value: str) -> str | None:
    """Why a repo-relative path from config is unsafe (absolute, escaping with '..', NUL), or None."""
    if not value.strip():
        return "is empty"
    if "\0" in value:
        return "contains a NUL byte"
    if value.startswith(("/", "~")) or re.match(r"[A-Za-z]:[\\/]", value):
        return "escapes the repository (an absolute path)"
    if ".." in re.split(r"[\\/]+", value):
        return "escapes the repository ('..')"
    return None


@dataclass
class Bool(Node):
    def expected(self) -> str:
        return "true or false"

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(value, bool):
            ctx.error(path, f"got {_typename(value)} {clip(value)}", self.expected())
        return value


@dataclass
class AnyOf(Node):
    """A value that may take one of several shapes, e.g. `workers: auto | 4`."""

    options: tuple[Node, ...] = ()

    def expected(self) -> str:
        return " or ".join(o.expected() for o in self.options)

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        inside = []  # options that take the value's type but not its content (no "got <type>" at `path`)
        for option in self.options:
            probe = Ctx(ctx.lines)
            result = option.check(value, path, probe)
            if not probe.issues:
                return result
            if not any(i.path == path and i.message.startswith("got ") for i in probe.issues):
                inside.append(probe)
        if len(inside) == 1:  # e.g. a typo in a name, a bad key in a mapping: that option's own message
            ctx.issues += inside[0].issues
            return value
        ctx.error(path, f"got {_typename(value)} {clip(value)}", self.expected())
        return value


@dataclass
class ListOf(Node):
    item: Node = field(default_factory=Str)
    min_items: int = 0

    def expected(self) -> str:
        return f"a list of {self.item.expected()}"

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(value, str) and isinstance(self.item, Str):
            value = [value]  # `branches: develop` is a list of one
        if not isinstance(value, list):
            ctx.error(path, f"got {_typename(value)}", self.expected())
            return value
        if len(value) < self.min_items:
            ctx.error(path, f"needs at least {self.min_items} item(s)", self.expected())
        return [self.item.check(v, f"{path}[{i}]", ctx) for i, v in enumerate(value)]

    def default_value(self) -> Any:
        return [] if self.default is MISSING else list(self.default)


@dataclass
class Obj(Node):
    """A mapping with a fixed set of keys; unknown keys are errors (with a did-you-mean)."""

    fields: dict[str, Node] = field(default_factory=dict)

    def expected(self) -> str:
        return "a mapping"

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            ctx.error(path, f"got {_typename(value)}", "a mapping with keys " + ", ".join(self.fields))
            return value
        out: dict[str, Any] = {}
        for key in value:
            if key not in self.fields:
                sub = f"{path}.{key}" if path else str(key)
                close = difflib.get_close_matches(str(key), list(self.fields), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                ctx.error(sub, f"unknown key '{key}'{hint}", valid=", ".join(self.fields))
        for key, node in self.fields.items():
            sub = f"{path}.{key}" if path else key
            if key in value:
                out[key] = node.check(value[key], sub, ctx)
            elif node.required:
                ctx.error(sub, "required key is missing", node.expected())
            else:
                out[key] = node.default_value()
        return out

    def default_value(self) -> Any:
        if self.default is not MISSING:
            return self.default
        return {k: n.default_value() for k, n in self.fields.items()}


@dataclass
class MapOf(Node):
    """A mapping whose keys the user names (datasets, suites, environments)."""

    value: Node = field(default_factory=Str)
    key_pattern: str = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
    key_doc: str = "a name of letters, digits, '_', '.', '-'"
    int_keys: bool = False  # integer keys (YAML `0: stays`) are allowed and read as their decimal text

    def expected(self) -> str:
        return f"a mapping of name -> {self.value.expected()}"

    def check(self, value: Any, path: str, ctx: Ctx) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            ctx.error(path, f"got {_typename(value)}", self.expected())
            return value
        out = {}
        for key, item in value.items():
            sub = f"{path}.{key}"
            if self.int_keys and isinstance(key, int) and not isinstance(key, bool):
                key = str(key)
            if not isinstance(key, str) or not re.fullmatch(self.key_pattern, key):
                ctx.error(sub, f"bad name {key!r}", self.key_doc)
            out[key] = self.value.check(item, sub, ctx)
        return out

    def default_value(self) -> Any:
        return {} if self.default is MISSING else dict(self.default)


def walk_docs(node: Node, path: str = "") -> list[tuple[str, Node]]:
    """Every documented key with its node, in schema order: feeds the README table and step help pages."""
    rows: list[tuple[str, Node]] = []
    if isinstance(node, Obj):
        for key, child in node.fields.items():
            sub = f"{path}.{key}" if path else key
            rows.append((sub, child))
            rows.extend(walk_docs(child, sub))
    elif isinstance(node, MapOf):
        sub = f"{path}.<name>"
        rows.extend(walk_docs(node.value, sub))
    elif isinstance(node, ListOf):
        rows.extend(walk_docs(node.item, f"{path}[]"))
    return rows
