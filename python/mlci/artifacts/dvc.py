"""DVC interoperability without installing DVC.

A repository already on DVC adopts mlci by pointing `artifacts.models.lock` at its `.dvc` file(s) (a glob such
as `models/*.dvc` works) or at `dvc.lock`. What is read, per DVC's documented formats:

- `.dvc` files: `outs: [{path, md5, size, hash, nfiles, remote}]`; `dvc.lock` (schema 2.0):
  `stages.<name>.outs`. Paths are relative to the file's directory; mlci places them under DEST. Outs with
  `cache: false` live in git, not in the remote, and are skipped.
- Directories: an out whose md5 ends in `.dir` names a JSON manifest `[{"md5", "relpath"}, ...]`, fetched
  (and md5-verified) from the remote, then each file in it.
- The remote: `.dvc/config` then `.dvc/config.local` (local wins), found by walking up from the dependency
  file; `[core] remote = NAME` and `['remote "NAME"'] url = s3://...`. An out's own `remote:` wins. Only s3://
  remotes; endpoint and credentials come from the boto3 chain, not from DVC's config.
- Remote layouts: DVC 3.x outs (`hash: md5`) at `<url>/files/md5/<2 hex>/<30 hex>`; DVC 2.x outs (no `hash`
  field, i.e. a repo not yet migrated) at `<url>/<2 hex>/<30 hex>`, the 2.x layout DVC 3 still reads.
  Both are verified by the plain md5 of the bytes. That equals DVC 3's hash always and DVC 2.x's hash for
  every binary file; DVC 2.x hashed text files after CRLF->LF conversion, so a CRLF text file tracked by
  2.x shows as a mismatch (re-hash it with DVC 3: `dvc cache migrate` / `dvc add`).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from ..config.loader import parse_yaml
from ..errors import UserError, clip
from ..fsutil import read_user_text
from .entries import Entry, check_digest, check_relpath, check_unique

_SECTION = re.compile(r"""^\s*\[\s*'?(?:(core)|remote\s+"([^"]+)")'?\s*\]\s*$""")
_ANY_SECTION = re.compile(r"^\s*\[.*\]\s*$")
_KV = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*=\s*(.*?)\s*$")


def is_dvc_file(path: Path) -> bool:
    return path.name.endswith(".dvc") or path.name == "dvc.lock"


def find_dvc_dir(start: Path) -> Path | None:
    """The `.dvc` directory of the repository holding `start` (walks up, like DVC itself)."""
    for d in [start, *start.parents]:
        if (d / ".dvc").is_dir():
            return d / ".dvc"
    return None


def read_remotes(dvc_dir: Path) -> tuple[str | None, dict[str, str]]:
    """(default remote name, {name: url}) from .dvc/config and .dvc/config.local (local wins)."""
    default: str | None = None
    urls: dict[str, str] = {}
    for name in ("config", "config.local"):
        f = dvc_dir / name
        if not f.is_file():
            continue
        section: tuple[str, str] | None = None
        for line in read_user_text(f, "DVC config", "run `dvc remote add`").splitlines():
            if not line.strip() or line.lstrip().startswith(("#", ";")):
                continue
            m = _SECTION.match(line)
            if m:
                section = ("core", "") if m.group(1) else ("remote", m.group(2))
                continue
            if _ANY_SECTION.match(line):
                section = None
                continue
            kv = _KV.match(line)
            if not kv or section is None:
                continue
            key, value = kv.group(1), kv.group(2).strip("'\"")
            if section[0] == "core" and key == "remote":
                default = value
            elif section[0] == "remote" and key == "url":
                urls[section[1]] = value
    return default, urls


def object_uri(remote_url: str, md5: str, *, legacy: bool) -> str:
    base = remote_url.rstrip("/")
    tail = f"{md5[:2]}/{md5[2:]}"
    return f"{base}/{tail}" if legacy else f"{base}/files/md5/{tail}"


@dataclass(frozen=True)
class _Out:
    path: str
    md5: str
    size: int | None
    legacy: bool
    remote: str | None
    where: str


def _outs(items: object, filename: str, base: str, lines: dict[str, int]) -> list[_Out]:
    def where(p: str) -> str:
        line = lines.get(p)
        return f"{filename}:{line}" if line else filename

    if items is None:
        return []
    if not isinstance(items, list):
        raise UserError("`outs` must be a list", where=where(base), hint="DVC's format: outs: [{md5, size, path}]")
    outs = []
    for i, item in enumerate(items):
        p = f"{base}[{i}]"
        if not isinstance(item, dict) or "path" not in item:
            raise UserError(f"out {i} has no `path`", where=where(p), hint="DVC's format: outs: [{md5, size, path}]")
        if item.get("cache") is False:  # `cache: false` outs are tracked in git, never pushed to a remote
            continue
        algo = item.get("hash")
        if algo not in (None, "md5"):
            raise UserError(f"out '{item['path']}' uses hash '{algo}'", where=where(f"{p}.hash"),
                            hint="mlci reads md5 outs (DVC 2.x and 3.x)")
        if "md5" not in item:
            raise UserError(f"out '{item['path']}' has no md5 (not pushed / not committed?)", where=where(p),
                            hint="run `dvc commit` and `dvc push`, then commit the file")
        md5 = check_digest("md5", item["md5"], where(f"{p}.md5"), allow_dir=True)
        size = item.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise UserError(f"size {clip(size)} is not a non-negative integer", where=where(f"{p}.size"))
        path = check_relpath(item["path"], where(f"{p}.path"))
        outs.append(_Out(path, md5, size, legacy=algo is None, remote=item.get("remote"), where=where(p)))
    return outs


def parse(text: str, filename: str) -> list[_Out]:
    """Outs of a `.dvc` file or `dvc.lock` (paths relative to the file's directory)."""
    data, lines = parse_yaml(text, filename)
    if not isinstance(data, dict):
        raise UserError("not a DVC file (expected a mapping with `outs` or `stages`)", where=filename)
    if Path(filename).name == "dvc.lock":
        stages = data.get("stages") or {}
        if not isinstance(stages, dict):
            raise UserError("`stages` must be a mapping", where=filename)
        outs: list[_Out] = []
        for name, stage in stages.items():
            if isinstance(stage, dict):
                outs.extend(_outs(stage.get("outs"), filename, f"stages.{name}.outs", lines))
        return outs
    return _outs(data.get("outs"), filename, "outs", lines)


def entries(dvc_file: Path, dest_prefix: str = "") -> list[Entry]:
    """Entries (md5, DVC remote URIs) of one DVC file; `dest_prefix` is where its directory maps under DEST."""
    outs = parse(read_user_text(dvc_file, "DVC file", "fix artifacts.models.lock or --lock"), str(dvc_file))
    dvc_dir = find_dvc_dir(dvc_file.resolve().parent)
    default, urls = read_remotes(dvc_dir) if dvc_dir else (None, {})
    result = []
    for o in outs:
        name = o.remote or default
        if not name or name not in urls:
            where = f"{dvc_dir}/config" if dvc_dir else f"no .dvc/ above {dvc_file.parent}"
            raise UserError(f"no DVC remote {'named ' + repr(name) if name else 'configured'} for '{o.path}'",
                            where=where, hint="`dvc remote add -d NAME s3://bucket/prefix` (writes .dvc/config)")
        url = urls[name]
        if not url.startswith("s3://"):
            raise UserError(f"DVC remote '{name}' is {url}: mlci fetches from s3:// remotes only",
                            where=f"{dvc_dir}/config", hint="use an S3 remote")
        path = posixpath.normpath(posixpath.join(dest_prefix, o.path)) if dest_prefix else o.path
        check_relpath(path, o.where)
        is_dir = o.md5.endswith(".dir")
        result.append(Entry(path=path, algo="md5", digest=o.md5, size=o.size, is_dir=is_dir,
                            uri=object_uri(url, o.md5, legacy=o.legacy), where=o.where))
    check_unique(result)
    return result


def expand_dir(entry: Entry, manifest: bytes) -> list[Entry]:
    """The files of a DVC directory out, from its `.dir` manifest (each relpath checked for traversal)."""
    where = f"{entry.uri} (manifest of {entry.where})"
    try:
        items = json.loads(manifest.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"DVC directory manifest is not JSON: {exc}", where=where) from None
    if not isinstance(items, list):
        raise UserError("DVC directory manifest is not a list", where=where)
    base = entry.uri.rsplit("/", 2)[0]  # <url>/files/md5 (3.x) or <url> (2.x): children share the layout
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "relpath" not in item or "md5" not in item:
            raise UserError(f"manifest item {i} lacks relpath/md5", where=where)
        rel = check_relpath(item["relpath"], where, "relpath")
        md5 = check_digest("md5", item["md5"], where)
        out.append(Entry(path=posixpath.join(entry.path, rel), algo="md5", digest=md5, size=item["size"] if isinstance(item.get("size"), int) else None,
                         uri=f"{base}/{md5[:2]}/{md5[2:]}", where=f"{entry.where} ({rel})"))
    check_unique(out)
    return out
