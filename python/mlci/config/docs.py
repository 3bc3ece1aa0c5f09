"""Reference docs generated from the schema (README table, Jenkins step help), so they cannot drift."""

from __future__ import annotations

import json

from .schema import SCHEMA
from .spec import MISSING, MapOf, Node, Obj, walk_docs


def _default(node: Node) -> str:
    if node.required:
        return "**required**"
    if isinstance(node, (Obj, MapOf)) or node.default is MISSING or node.default is None:
        return ""
    return f"`{json.dumps(node.default)}`"


def reference_table(prefix: str = "") -> str:
    """A Markdown table of every key (under `prefix`, e.g. 'accuracy')."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for path, node in walk_docs(SCHEMA):
        if prefix and not (path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")):
            continue
        expected = node.expected().replace("|", "\\|")
        doc = node.doc.replace("|", "\\|")
        rows.append(f"| `{path}` | {expected} | {_default(node)} | {doc} |")
    return "\n".join(rows) + "\n"


def reference_text(prefix: str = "") -> str:
    """Plain text variant for Jenkins `vars/<step>.txt` help pages."""
    lines = []
    for path, node in walk_docs(SCHEMA):
        if prefix and not path.startswith(prefix):
            continue
        default = _default(node).replace("`", "").replace("**", "")
        lines.append(f"  {path}  ({node.expected()}{'; default ' + default if default else ''})")
        if node.doc:
            lines.append(f"      {node.doc}")
    return "\n".join(lines) + "\n"
