"""One dependency: a file that must appear at `path` (relative to DEST) with a given digest.

Both the mlci lock file and DVC files are turned into a list of `Entry`; everything after parsing (cache,
download, placement, status) works on entries only. Paths are checked here, before anything is written:
absolute paths, `..` and backslashes are rejected so no dependency file can write outside DEST.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..errors import UserError, clip
from .hashing import is_hex

HEX_LEN = {"sha256": 64, "md5": 32}
NAME_MAX, PATH_MAX = 255, 1024  # bytes: Linux' limit per name, and room for DEST in front within PATH_MAX (4096)


@dataclass(frozen=True)
class Entry:
    """A file to place. `digest` is hex (for a DVC directory it ends in `.dir`); `where` is file:line."""

    path: str
    algo: str
    digest: str
    size: int | None
    uri: str
    where: str
    is_dir: bool = False

    @property
    def key(self) -> str:
        return f"{self.algo}:{self.digest}"


def check_relpath(path: object, where: str, what: str = "path") -> str:
    """A normalised POSIX path inside DEST, or a UserError naming the entry."""
    if not isinstance(path, str) or not path.strip():
        raise UserError(f"{what} {clip(path)} is empty or not a string", where=where, hint="a relative file path")
    if "\\" in path or "\0" in path:
        raise UserError(f"{what} {clip(path)} contains a backslash or NUL", where=where, hint="use '/' separators")
    if path.startswith("/") or re.match(r"[A-Za-z]:/", path):
        raise UserError(f"{what} {clip(path)} is absolute: it would be written outside DEST", where=where,
                        hint="use a path relative to the destination directory")
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../") or "/../" in f"/{path}/":
        raise UserError(f"{what} {clip(path)} escapes DEST with '..'", where=where,
                        hint="remove '..' so the file stays inside the destination directory")
    if norm in (".", ""):
        raise UserError(f"{what} {clip(path)} names the destination directory itself", where=where)
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in norm.split("/"))
    if longest > NAME_MAX or len(norm.encode("utf-8", "surrogatepass")) > PATH_MAX:
        raise UserError(f"{what} {clip(path)} is longer than a file system allows ({NAME_MAX} bytes per name, "
                        f"{PATH_MAX} in all)", where=where, hint="use a shorter file name")
    return norm


def check_digest(algo: str, digest: object, where: str, *, allow_dir: bool = False) -> str:
    text = str(digest) if digest is not None else ""
    body = text[:-4] if allow_dir and text.endswith(".dir") else text
    if not is_hex(body, HEX_LEN[algo]):
        raise UserError(f"{algo} {clip(text)} is not {HEX_LEN[algo]} lowercase hex digits", where=where,
                        hint="restore the value written by `mlci models add` / `dvc add`")
    return text


def check_unique(entries: list[Entry]) -> None:
    seen: dict[str, Entry] = {}
    for e in entries:
        if e.path in seen:
            raise UserError(f"'{e.path}' is listed twice (also at {seen[e.path].where})", where=e.where,
                            hint="keep one entry per destination path")
        seen[e.path] = e
