"""Seeded generators of hostile input files: ml-ci.yaml, mlci lock files, `.dvc` files, `dvc.lock`, DVC's
`.dvc/config` and datasets (.npz, .jsonl, .csv).

Each generator takes a `random.Random` and a valid base file and returns bytes: YAML documents get structural
mutations (a value or a key replaced by something hostile: deep nesting, an alias bomb, a list as a key, NaN,
traversal, a 5,000-digit integer, an unsafe tag...) and byte-level ones (flips, non-UTF-8 bytes, truncation,
lines deleted, duplicated or re-indented); datasets get truncation, flips, arrays of the wrong shape or type,
rows nested 100,000 deep, NaN labels and the like. Plain module (no pytest): the fuzz worker imports it by path.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable

import numpy as np
import yaml

HOSTILE = [
    ".nan", ".inf", "-.inf", "-1", "-0.5", "-100m", "-1Gi", "1e400", "9" * 5000, "null", "~", "true", "''",
    "'../../../etc/passwd'", "/etc/passwd", "'..'", "'models/..'", "'a/../../b'", "2021-02-30", "2021-01-01",
    "0x1F", "0o17", "!!binary aGVsbG8=", "!!python/object/apply:os.system ['true']", "!!set {a, b}",
    "!!omap [a: 1]", '"\\x00"', '"a\\nb: c"', "'$x$ *y* <b>'", "*undefined", "[]", "{}", "[[[]]]",
    "{a: {b: {c: [1, 2]}}}", "'Bearer abcdef123456'", "!custom 1", "!!int abc", "!!float x", "!!timestamp x",
    "'\u202e\u0000'", "-9999999999999999999999", "'s3://'", "'s3://bucket'", "'s3:///key'", "'s3://UP/x'",
    "'s3://b/k/..'", "'md5:xyz'", "0", "1.5", "[1, 2, 3]", "{? [a, b] : 1}", "[{}: 1]", "&a 1", "<<: {a: 1}",
    "'h' ", "\"\\ud800\"", "'" + "x" * 70000 + "'",
]


def deep(rng: random.Random) -> str:
    n = rng.choice([40, 70, 200, 999, 1001, 5000, 100000])
    if rng.random() < 0.5:
        return "[" * n + "]" * n
    return "{a: " * n + "1" + "}" * n


def bomb(rng: random.Random, anchor: str = "lol") -> str:
    """A flow-style billion laughs: each level holds `width` aliases of the previous one."""
    levels, width = rng.choice([(3, 3), (6, 6), (9, 10), (12, 4), (30, 2)])
    parts = [f"&{anchor}0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&{anchor}{i} [" + ", ".join([f"*{anchor}{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def merge_bomb(rng: random.Random) -> str:
    """Merge keys that double a mapping at every level (an alias bomb through `<<`)."""
    levels = rng.choice([5, 12, 30])
    return "m0: &m0 {k0: 1}\n" + "".join(f"m{i}: &m{i}\n  <<: [*m{i - 1}, *m{i - 1}]\n  k{i}: 1\n"
                                          for i in range(1, levels))


def hostile(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.12:
        return deep(rng)
    if r < 0.22:
        return bomb(rng, f"b{rng.randrange(1000)}")
    return rng.choice(HOSTILE)


def _spans(text: str) -> tuple[list[yaml.Node], list[yaml.Node]]:
    """(value nodes, key nodes) of a valid YAML document, with their character spans."""
    root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    values: list[yaml.Node] = []
    keys: list[yaml.Node] = []
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: its node was visited already (a bomb must not explode here)
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                keys.append(k)
                values.append(v)
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            values.extend(node.value)
            stack.extend(node.value)
    return values, keys


def _replace(text: str, node: yaml.Node, snippet: str) -> str:
    start, end = node.start_mark.index, node.end_mark.index
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style:
        # a block collection: its span starts at its first item; replace it with a flow value on the key's line
        line_start = text.rfind("\n", 0, start) + 1
        key_end = text.rfind(":", 0, line_start - 1)
        if key_end < 0:
            return text
        return text[: key_end + 1] + " " + snippet + "\n" + text[end:].lstrip(" ")
    return text[:start] + snippet + text[end:]


def structural(rng: random.Random, text: str) -> str:
    values, keys = _spans(text)
    r = rng.random()
    if r < 0.55 and values:
        return _replace(text, rng.choice(values), hostile(rng))
    if r < 0.75 and keys:
        key = rng.choice(keys)
        snippet = rng.choice(["[a, b]", "{a: 1}", "[[x]]", "1", "null", ".nan", "true", "'a.b'", "'<<'", "''",
                              "\"\\x00\"", "!!binary aGk=", key.value])  # the last one: a duplicate key
        return text[: key.start_mark.index] + snippet + text[key.end_mark.index:]
    if r < 0.85:
        key = rng.choice(["zz", "version", "files", "outs", "stages", "service", "<<"])
        return text + f"\n{key}: {hostile(rng)}\n"
    if r < 0.9:
        return text + "\n" + merge_bomb(rng)
    anchor_node = rng.choice(values) if values else None
    if anchor_node is not None and isinstance(anchor_node, yaml.ScalarNode):
        return _replace(text, anchor_node, f"&a {anchor_node.value!r}") + "\nzz: [" + ", ".join(["*a"] * 20) + "]\n"
    return text + "\nzz: " + bomb(rng) + "\n"


def bytewise(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    op = rng.randrange(8)
    if not buf:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if op == 0:  # flip bytes
        for _ in range(rng.randrange(1, 6)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif op == 1:  # insert non-UTF-8 or control bytes
        pos = rng.randrange(len(buf) + 1)
        buf[pos:pos] = rng.choice([b"\xff\xfe", b"\x80", b"\xc3\x28", b"\x00", b"\t", b"\r", b"\x1b[31m", b"\xed\xa0\x80"])
    elif op == 2:  # truncate
        del buf[rng.randrange(len(buf)):]
    elif op in (3, 4, 5):  # delete, duplicate or re-indent a line
        lines = bytes(buf).split(b"\n")
        i = rng.randrange(len(lines))
        if op == 3:
            del lines[i]
        elif op == 4:
            lines.insert(i, lines[i])
        else:
            lines[i] = b" " * rng.choice([1, 2, 3, 8]) + lines[i]
        buf = bytearray(b"\n".join(lines))
    elif op == 6:  # a BOM or a document marker in front
        buf[0:0] = rng.choice([b"\xef\xbb\xbf", b"---\n", b"--- !!map\n", b"%YAML 1.1\n---\n", b"%TAG ! tag:x,2000:\n---\n"])
    else:  # repeat a chunk
        a = rng.randrange(len(buf))
        buf[a:a] = buf[a: a + rng.randrange(1, 200)] * rng.randrange(2, 50)
    return bytes(buf)


def yaml_case(rng: random.Random, base: str) -> bytes:
    """1-3 mutations: structural ones while the text still parses, then possibly a byte-level one."""
    text = base
    for _ in range(rng.choice([1, 1, 2, 3])):
        try:
            text = structural(rng, text)
        except (yaml.YAMLError, RecursionError, ValueError):
            break
        if len(text) > 20000:  # a huge snippet went in: parsing it again would only slow the generator
            break
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.35:
        data = bytewise(rng, data)
    return data


# --- datasets -----------------------------------------------------------------------------------------------
def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npz_case(rng: random.Random, base: bytes) -> bytes:
    r = rng.random()
    if r < 0.35:
        return bytewise(rng, base) if rng.random() < 0.5 else base[: rng.randrange(len(base))]
    n = rng.choice([0, 1, 3, 40])
    x = np.random.default_rng(rng.randrange(1 << 30)).random((n, 4))
    y = (x[:, 0] > 0.5).astype(int) if n else np.zeros(0, int)
    variants: list[Callable[[], dict[str, np.ndarray]]] = [
        lambda: {"x": x},
        lambda: {"y": y},
        lambda: {"x": x, "y": y[:-1] if n else np.zeros(2)},
        lambda: {"x": x, "y": np.full(n, np.nan)},
        lambda: {"x": x, "y": np.array(["a"] * n)},
        lambda: {"x": x[:, :, None] if n else x, "y": y},
        lambda: {"x": np.float64(3.0), "y": y},
        lambda: {"x": x, "y": np.float64(1.0)},
        lambda: {"x": x, "y": y, "id": np.zeros(n)},
        lambda: {"x": x, "y": y.astype(complex)},
        lambda: {"x": x, "y": np.zeros(n, dtype=[("a", int), ("b", float)])},
        lambda: {"x": x, "y": np.zeros((n, 2))},
        lambda: {"x": x.astype("datetime64[s]") if False else np.array([b"\xff"] * n), "y": y},
        lambda: {"x": x, "y": np.ones(n, bool)},
        lambda: {"x": x, "y": y},
    ]
    return npz_bytes(**rng.choice(variants)())


def jsonl_case(rng: random.Random, base: bytes) -> bytes:
    lines = base.decode().splitlines()
    r = rng.random()
    if r < 0.3:
        return bytewise(rng, base)
    i = rng.randrange(len(lines))
    n = rng.choice([50, 500, 5000, 100000])
    row = rng.choice([
        '{"x": ' + "[" * n + "1" + "]" * n + ', "y": 1}',
        '{"x": ' + '{"a": ' * n + "1" + "}" * n + ', "y": 1}',
        '{"x": 0.5, "y": ' + "[" * n + "]" * n + "}",
        '{"x": NaN, "y": Infinity}', '{"x": 0.5, "y": NaN}', '{"x": 0.5, "y": null}', '{"x": 0.5}',
        '{"x": 0.5, "y": ' + "9" * 5000 + "}", '{"x": 1e400, "y": 1}', '{"x": 0.5, "y": [1, 2]}',
        '{"x": 0.5, "y": {"a": 1}}', '{"x": 0.5, "y": true}', '{"x": 0.5, "y": ""}', "[1, 2]", '"x"', "{",
        '{"x": "../../etc/passwd", "y": 1}', '{"x": "\\ud800", "y": 1}', '{"x": 0.5, "y": "\\u0000"}',
        '{"x": 0.5, "y": 1, "y": 2}', "\ufeff" + lines[i],
    ])
    lines[i] = row
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def csv_case(rng: random.Random, base: bytes) -> bytes:
    lines = base.decode().splitlines()
    if rng.random() < 0.35:
        return bytewise(rng, base)
    i = rng.randrange(len(lines))
    lines[i] = rng.choice([
        "x,y,y", "x", "0.5", "0.5,1,extra,more", '"unterminated,1', "0.5," + "9" * 5000, "nan,nan", "inf,1",
        "0.5,", ",", "x" * 200000 + ",1", "\x00,1", '"a""b",1', "0.5;1", "x,y\r\n0.5,1",
    ])
    return "\n".join(lines).encode()


def base_datasets(rows: int = 80, seed: int = 7) -> dict[str, bytes]:
    """Valid datasets whose label is x[0] > 0.5 (the fuzz service's predict knows that rule)."""
    g = np.random.default_rng(seed)
    x = g.random((rows, 4))
    y = (x[:, 0] > 0.5).astype(int)
    jsonl = "\n".join(json.dumps({"x": [float(v) for v in r], "y": int(t)}) for r, t in zip(x, y, strict=True))
    csv = "x,y\n" + "\n".join(f"{r[0]:.6f},{t}" for r, t in zip(x, y, strict=True))
    return {"npz": npz_bytes(x=x, y=y), "jsonl": jsonl.encode(), "csv": csv.encode()}
