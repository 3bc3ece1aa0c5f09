"""Set a few keys of a YAML document in place, keeping everything else byte for byte (comments, order, quoting).

`mlci data add` writes a dataset's uri and sha256 into the team's ml-ci.yaml, a file people edit and review; a
load-and-dump round trip would drop its comments and reflow it. Instead the document is composed with PyYAML
(every node knows its position in the text) and only the spans of the values that change are replaced, or new
`key: value` lines inserted after the last line of their mapping, at that mapping's indentation. The result is
parsed again and must equal the old data with exactly the requested change, or nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..errors import UserError
from .loader import parse_yaml


def scalar(value: Any) -> str:
    """A YAML scalar for `value`: plain when that reads back as the same value, else a JSON (= YAML) string."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    try:
        plain_ok = (yaml.safe_load(text) == text and ": " not in text and " #" not in text and text.strip() == text
                    and "\n" not in text)
    except yaml.YAMLError:
        plain_ok = False
    return text if plain_ok else json.dumps(text)


def _pairs(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    return {str(k.value): (k, v) for k, v in node.value}


def _end_of_content(text: str, node: yaml.Node) -> int:
    """Offset just after the last character of a block mapping's content (before trailing blank lines and the
    newline), where a new line can be inserted."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    end = node.end_mark.index
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        end = node.start_mark.index + len(text[node.start_mark.index:end].rstrip("\n"))
    newline = text.find("\n", end)
    return len(text) if newline < 0 else newline


def _block(values: dict[str, Any], indent: int, step: int) -> list[str]:
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{' ' * indent}{scalar(key)}:")
            lines.extend(_block(value, indent + step, step))
        else:
            lines.append(f"{' ' * indent}{scalar(key)}: {scalar(value)}")
    return lines


def _flow(values: dict[str, Any]) -> str:
    inner = ", ".join(f"{scalar(k)}: {_flow(v) if isinstance(v, dict) else scalar(v)}" for k, v in values.items())
    return "{" + inner + "}"


def _nest(path: list[str], values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(values)
    for key in reversed(path):
        out = {key: out}
    return out


def _merge(base: Any, update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base) if isinstance(base, dict) else {}
    for k, v in update.items():
        out[k] = _merge(out.get(k), v) if isinstance(v, dict) else v
    return out


def set_values(text: str, path: list[str], values: dict[str, Any], filename: str) -> str:
    """`text` with the mapping at `path` (created if missing) holding `values` (other keys untouched)."""
    data, _ = parse_yaml(text, filename)
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise UserError(f"{filename} is not a YAML mapping", hint="`service:` is required")
    edits: list[tuple[int, int, str]] = []
    node, step = root, 2
    for depth, key in enumerate(path):
        pairs = _pairs(node)
        if key not in pairs:  # add the rest of the path below this mapping
            edits.append(_insert(text, node, _nest(path[depth:], values), step))
            break
        key_node, child = pairs[key]
        rest = _nest(path[depth + 1:], values)
        if isinstance(child, yaml.MappingNode) and child.value and not child.flow_style:
            step = max(2, child.value[0][0].start_mark.column - key_node.start_mark.column)
            node = child
            continue
        if isinstance(child, yaml.MappingNode) and child.flow_style and child.value:
            current = yaml.safe_load(text[child.start_mark.index:child.end_mark.index])
            edits.append((child.start_mark.index, child.end_mark.index, _flow(_merge(current, rest))))
        elif (isinstance(child, yaml.MappingNode) and not child.value) or (
                isinstance(child, yaml.ScalarNode) and child.tag.endswith(":null")):
            block = _block(rest, key_node.start_mark.column + step, step)
            start = child.start_mark.index
            while start > 0 and text[start - 1] in " \t":  # `data: {}` -> `data:` + the block below
                start -= 1
            edits.append((start, child.end_mark.index, "\n" + "\n".join(block)))
        else:
            raise UserError(f"{filename}: {'.'.join(path[:depth + 1])} is not a mapping",
                            hint="fix the file by hand, then run the command again")
        break
    else:  # the target mapping exists (block style): replace or add each value
        pairs = _pairs(node)
        new: dict[str, Any] = {}
        for key, value in values.items():
            if key in pairs and isinstance(pairs[key][1], yaml.ScalarNode):
                v = pairs[key][1]
                edits.append((v.start_mark.index, v.end_mark.index, scalar(value)))
            elif key in pairs:
                raise UserError(f"{filename}: {'.'.join([*path, key])} is not a plain value",
                                hint="fix the file by hand, then run the command again")
            else:
                new[key] = value
        if new:
            edits.append(_insert(text, node, new, step))
    out = text
    for start, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + replacement + out[end:]
    expected = _merge(data, _nest(path, values))
    got, _ = parse_yaml(out, filename)
    if got != expected:
        raise UserError(f"could not update {filename} without changing other keys",
                        hint=f"add these keys under {'.'.join(path)} by hand: {json.dumps(values)}")
    return out


def _insert(text: str, mapping: yaml.MappingNode, values: dict[str, Any], step: int) -> tuple[int, int, str]:
    """Lines for `values` after the last line of a block mapping, at its keys' indentation."""
    if mapping.flow_style:
        current = yaml.safe_load(text[mapping.start_mark.index:mapping.end_mark.index])
        return mapping.start_mark.index, mapping.end_mark.index, _flow(_merge(current, values))
    indent = mapping.value[0][0].start_mark.column if mapping.value else 0
    at = _end_of_content(text, mapping)
    lines = "\n".join(_block(values, indent, step))
    return at, at, "\n" + lines + ("\n" if at == len(text) else "")
