"""The mlci model dependency file (`models.lock` by default).

Format (YAML, version 1), written by `mlci models add` with entries sorted by path and one key per line, so a
change of model shows in review as a three-line diff (sha256, size, uri)::

    # mlci model dependency file: `mlci models add` writes it, `mlci models pull` reads it.
    version: 1
    files:
    - path: digits.npz          # relative to artifacts.models.dest (no '..', not absolute)
      sha256: 5e3c...           # 64 hex digits: what the pulled file must hash to
      size: 6144                # bytes
      uri: s3://bucket/prefix/sha256/5e/3c...   # content-addressed object

Objects live at `<remote>/sha256/<first 2 hex>/<other 62 hex>`; the same bytes always have the same key, so an
upload of an unchanged model is skipped and a lock entry can never point at content that later changed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..config.loader import parse_yaml
from ..errors import UserError, clip
from ..fsutil import read_user_text, write_text_atomic
from .entries import Entry, check_digest, check_relpath, check_unique

FORMAT_VERSION = 1
HEADER = (
    "# mlci model dependency file: `mlci models add` writes it, `mlci models pull` reads it.\n"
    "# Paths are relative to artifacts.models.dest; objects are content-addressed in S3.\n"
)


def object_key(prefix: str, sha256: str) -> str:
    """`<prefix>/sha256/<2 hex>/<62 hex>` (prefix may be empty)."""
    tail = f"sha256/{sha256[:2]}/{sha256[2:]}"
    return f"{prefix.strip('/')}/{tail}" if prefix.strip("/") else tail


def object_uri(remote: str, sha256: str) -> str:
    bucket_and_prefix = remote[len("s3://"):].rstrip("/")
    bucket, _, prefix = bucket_and_prefix.partition("/")
    return f"s3://{bucket}/{object_key(prefix, sha256)}"


# The exact text `render` writes, entry by entry. Plain scalars only: anything quoted, commented, re-ordered or
# re-indented goes through the YAML parser instead, which reads every valid spelling.
_CANONICAL_HEAD = re.compile(r"(?:#[^\n]*\n)*version: 1\nfiles:\n")
_CANONICAL_ENTRY = re.compile(r"- path: ([A-Za-z0-9_][A-Za-z0-9_.\-/]*)\n  sha256: ([0-9a-f]{64})\n"
                              r"  size: (0|[1-9][0-9]{0,17})\n  uri: (s3://[A-Za-z0-9._\-/]+)\n")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _canonical(text: str, filename: str) -> list[Entry] | None:
    """Entries of a lock file in exactly the form mlci writes, read without a YAML parser (a 2,000-entry lock in
    milliseconds); None when the text differs in any way, and the caller parses it as YAML. Every value it
    accepts is one YAML reads as the same string or integer."""
    head = _CANONICAL_HEAD.match(text)
    if not head:
        return None
    pos, line = head.end(), text.count("\n", 0, head.end()) + 1
    entries = []
    while pos < len(text):
        m = _CANONICAL_ENTRY.match(text, pos)
        if not m:
            return None
        path, digest, size, uri = m.groups()
        if path.lower() in _YAML_WORDS or path[0].isdigit() or digest.isdigit():
            return None  # YAML would read a number or a boolean there
        w = f"{filename}:{line}"
        entries.append(Entry(path=check_relpath(path, w), algo="sha256", digest=digest, size=int(size), uri=uri,
                             where=w))
        pos, line = m.end(), line + 4
    check_unique(entries)
    return entries


def parse(text: str, filename: str) -> list[Entry]:
    """Entries of an mlci lock file; every problem is a UserError with file:line."""
    fast = _canonical(text, filename)
    if fast is not None:
        return fast
    data, lines = parse_yaml(text, filename, aliases=False)

    def where(path: str) -> str:
        line = lines.get(path)
        return f"{filename}:{line}" if line else filename

    if data is None:
        return []
    if not isinstance(data, dict):
        raise UserError("a dependency file is a mapping with `version` and `files`", where=where(""),
                        hint="regenerate it with `mlci models add`")
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise UserError(f"unsupported dependency file version {version!r}", where=where("version"),
                        hint=f"this mlci reads version {FORMAT_VERSION}; upgrade mlci or regenerate the file")
    unknown = set(data) - {"version", "files"}
    if unknown:
        raise UserError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}", where=where(sorted(map(str, unknown))[0]),
                        hint="only `version` and `files` are allowed")
    files = data.get("files") or []
    if not isinstance(files, list):
        raise UserError("`files` must be a list", where=where("files"), hint="a list of {path, sha256, size, uri}")
    entries = []
    for i, item in enumerate(files):
        base = f"files[{i}]"
        w = where(base)
        if not isinstance(item, dict):
            raise UserError(f"entry {i} is not a mapping", where=w, hint="keys path, sha256, size, uri")
        missing = [k for k in ("path", "sha256", "size", "uri") if k not in item]
        if missing:
            raise UserError(f"entry {i} lacks {', '.join(missing)}", where=w, hint="keys path, sha256, size, uri")
        extra = set(item) - {"path", "sha256", "size", "uri"}
        if extra:
            raise UserError(f"entry {i} has unknown key(s) {', '.join(sorted(map(str, extra)))}", where=w)
        path = check_relpath(item["path"], where(f"{base}.path"))
        digest = check_digest("sha256", item["sha256"], where(f"{base}.sha256"))
        size = item["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise UserError(f"size {clip(size)} is not a non-negative integer", where=where(f"{base}.size"))
        uri = item["uri"]
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise UserError(f"uri {clip(uri)} is not an s3:// URI", where=where(f"{base}.uri"),
                            hint="s3://bucket/prefix/sha256/<2>/<62>")
        entries.append(Entry(path=path, algo="sha256", digest=digest, size=size, uri=uri, where=w))
    check_unique(entries)
    return entries


def render(entries: list[Entry]) -> str:
    """Stable text: sorted by path, fixed key order, no timestamps (equal inputs give equal bytes)."""
    out = [HEADER, f"version: {FORMAT_VERSION}\n", "files:\n" if entries else "files: []\n"]
    for e in sorted(entries, key=lambda e: e.path):
        out.append(f"- path: {_scalar(e.path)}\n  sha256: {e.digest}\n  size: {e.size}\n  uri: {_scalar(e.uri)}\n")
    return "".join(out)


def _scalar(value: str) -> str:
    """Plain YAML scalar when safe, else a double-quoted one (JSON string syntax is valid YAML)."""
    import json

    import yaml

    try:
        if yaml.safe_load(value) == value and ": " not in value and " #" not in value and value.strip() == value:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value)


def read(path: Path) -> list[Entry]:
    return parse(read_user_text(path, "dependency file", "create it with `mlci models add FILE...` or set "
                            "artifacts.models.lock"), str(path))


def write(path: Path, entries: list[Entry]) -> None:
    write_text_atomic(path, render(entries))


def merge(old: list[Entry], new: list[Entry]) -> list[Entry]:
    """New entries replace old ones with the same path; the rest stay."""
    by_path: dict[str, Entry] = {e.path: e for e in old}
    by_path.update({e.path: e for e in new})
    return sorted(by_path.values(), key=lambda e: e.path)


def as_dict(e: Entry) -> dict[str, Any]:
    return {"path": e.path, "sha256": e.digest, "size": e.size, "uri": e.uri}


def exists(path: Path) -> bool:
    return os.path.exists(path)
