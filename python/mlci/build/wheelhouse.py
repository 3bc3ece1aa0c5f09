"""Wheelhouses: mlci (+ its dependencies) and the service's requirements as wheels, built on the host.

Builds run air-gapped (`pip install --no-index`), so an image build needs no package index. Each wheelhouse is
keyed by a hash of its inputs (pyproject + mlci sources; requirements file) and cached under the mlci cache,
then wrapped in a tiny `FROM scratch` image (`mlci-wheelhouse:<kind>-<hash>`) that the Dockerfile bind-mounts
with `RUN --mount=type=bind,from=...`. An image keeps the wheels out of the build context (so `COPY . .` does
not drag 70 MB into the code layer) and out of every layer; the same image id on a rebuild means the install
layer, and everything after it such as the model layer, stays cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UserError
from ..paths import cache_dir
from ..progress import Progress
from .dockercli import image_exists, last_error_lines, remove_image, run_build

WHEELHOUSE_REPO = "mlci-wheelhouse"
WHEELHOUSE_DOCKERFILE = "FROM scratch\nCOPY . /wheels/\n"


@dataclass(frozen=True)
class Wheelhouse:
    kind: str  # "deps" (of mlci), "mlci", "req" (the service's requirements) or "tools"
    key: str  # hash of the inputs
    directory: Path

    @property
    def image(self) -> str:
        return f"{WHEELHOUSE_REPO}:{self.kind}-{self.key[:16]}"

    def wheels(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob("*.whl"))


def python_tag() -> str:
    """Wheels are built by the host interpreter; its tag is part of the key (cp311 wheels differ from cp312)."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def mlci_source_dir() -> Path | None:
    """The mlci source tree (python/ with pyproject.toml) when mlci runs from a checkout or editable install."""
    pkg = Path(__file__).resolve().parents[1]
    src = pkg.parent
    return src if (src / "pyproject.toml").is_file() else None


def hash_files(paths: list[Path], base: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(str(p.relative_to(base)).encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _mlci_inputs(src: Path) -> list[Path]:
    skip = {"__pycache__", ".pytest_cache", "build", "dist"}
    files = [src / "pyproject.toml"]
    for p in (src / "mlci").rglob("*"):
        if p.is_file() and not skip.intersection(p.parts) and p.suffix not in (".pyc",):
            files.append(p)
    return files


def _cache_root() -> Path:
    return cache_dir() / "wheelhouse"


def _pip_wheel(args: list[str], dest: Path, what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise UserError(f"building the {what} wheelhouse failed (pip wheel exited {out.returncode}):\n"
                        f"{last_error_lines(out.stderr or out.stdout, 15)}",
                        hint="check the requirements and that the package index (pip config) is reachable")


def _fill(kind: str, key: str, args: list[str], what: str, progress: Progress, drop_prefix: str | None = None,
          need_files: bool = False) -> Wheelhouse:
    """Build the wheels into a temp dir and rename it into the cache (a half-built wheelhouse is never seen)."""
    final = _cache_root() / f"{kind}-{key[:16]}"
    wh = Wheelhouse(kind, key, final)
    if not need_files and not (final / ".complete").is_file() and image_exists(wh.image):
        return wh  # its image already exists (e.g. an ephemeral Jenkins runtime container): nothing to build
    if not (final / ".complete").is_file():
        progress.log(f"building {what} wheelhouse ({kind}-{key[:16]})")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=final.parent))
        try:
            if args:  # no args: an empty wheelhouse (a service without requirements)
                _pip_wheel(args, tmp, what)
            if drop_prefix:  # the dependency wheelhouse leaves the package itself to its own wheelhouse
                for w in tmp.glob(f"{drop_prefix}*.whl"):
                    w.unlink()
            (tmp / ".complete").write_text(key + "\n")
            _publish(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return wh


def _source_copy(src: Path, dest: Path) -> Path:
    """pyproject + the mlci package in a temp dir: setuptools writes build/ next to its input, and a stale
    build/lib in the checkout could leak deleted modules into the wheel."""
    shutil.copy2(src / "pyproject.toml", dest / "pyproject.toml")
    shutil.copytree(src / "mlci", dest / "mlci", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _split_prebuilt(d: Path, progress: Progress) -> tuple[Wheelhouse, Wheelhouse]:
    """A ready wheel directory ($MLCI_WHEELHOUSE) split into (dependencies, mlci) wheelhouses."""
    wheels = sorted(d.glob("*.whl"))
    own = [w for w in wheels if w.name.startswith("mlci-")]
    if not own:
        raise UserError(f"MLCI_WHEELHOUSE={d} holds no mlci wheel", hint="point it at a `pip wheel mlci` directory")
    out = []
    for kind, group in (("deps", [w for w in wheels if w not in own]), ("mlci", own)):
        key = hashlib.sha256("\n".join(f"{w.name}:{w.stat().st_size}" for w in group).encode()).hexdigest()
        target = _cache_root() / f"{kind}-{key[:16]}"
        if not (target / ".complete").is_file():
            progress.log(f"staging {kind} wheels from {d}")
            tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=_mkroot()))
            for w in group:
                _link_or_copy(w, tmp / w.name)
            (tmp / ".complete").write_text(key + "\n")
            _publish(tmp, target)
        out.append(Wheelhouse(kind, key, target))
    return out[0], out[1]


def _mkroot() -> Path:
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _publish(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def mlci_wheelhouses(progress: Progress, need_files: bool = False) -> tuple[Wheelhouse, Wheelhouse]:
    """(dependencies of mlci, the mlci wheel): two wheelhouses so that an mlci code change reinstalls one small
    wheel, while the dependency layer (scipy, boto3, pytest ...) stays cached until pyproject.toml changes.

    From $MLCI_WHEELHOUSE when set (the runtime image ships one), else built from the mlci sources.
    `need_files`: build the directories even when their images exist (to copy the wheels elsewhere).
    """
    prebuilt = os.environ.get("MLCI_WHEELHOUSE")
    if prebuilt:
        return _split_prebuilt(Path(prebuilt), progress)
    src = mlci_source_dir()
    if src is None:
        raise UserError("cannot find the mlci sources to build the wheelhouse",
                        hint="set MLCI_WHEELHOUSE to a directory of wheels (mlci + dependencies)")
    with tempfile.TemporaryDirectory(prefix="mlci-src-") as tmp:
        copy = _source_copy(src, Path(tmp))
        deps_key = hash_files([src / "pyproject.toml"], src, extra=f"deps:{python_tag()}")
        deps = _fill("deps", deps_key, [str(copy)], "mlci dependencies", progress, drop_prefix="mlci-",
                     need_files=need_files)
        key = hash_files(_mlci_inputs(src), src, extra=f"{python_tag()}:{__version__}")
        own = _fill("mlci", key, ["--no-deps", str(copy)], "mlci", progress, need_files=need_files)
    return deps, own


def requirements_wheelhouse(requirements: Path | None, progress: Progress) -> Wheelhouse:
    """The service's requirements as wheels (an empty wheelhouse when the service has none)."""
    if requirements is None or not requirements.is_file():
        key = hashlib.sha256(f"none:{python_tag()}".encode()).hexdigest()
        return _fill("req", key, [], "requirements", progress)
    key = hash_files([requirements], requirements.parent, extra=python_tag())
    return _fill("req", key, ["--requirement", str(requirements)], "requirements", progress)


def _mark_used(wh: Wheelhouse) -> None:
    """A wheelhouse's last use: the mtime of `wheelhouse/.used/<kind>-<key>` (`mlci cache gc --older-than`
    prunes the directories and images nobody used for that long). Best effort, like the cache's stamps."""
    marker = _cache_root() / ".used" / wh.image.split(":", 1)[1]
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


def prune(root: Path, *, older_than: float, keep_recent: float, now: float, dry_run: bool = False) -> dict[str, Any]:
    """Remove the wheelhouses (directory + `mlci-wheelhouse:` image) under `root` last used more than
    `older_than` seconds ago, never one used within `keep_recent`. Only wheelhouses this cache knows of (a
    directory or a use marker under `root`) are considered: other caches' images on the engine are theirs."""
    names = {p.name for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")}
    names |= {p.name for p in (root / ".used").glob("*")}
    removed, images, engine = [], 0, True
    for name in sorted(names):
        stamps = [root / ".used" / name, root / name / ".complete"]
        used = max((p.stat().st_mtime for p in stamps if p.exists()), default=0.0)
        age = now - used
        if age <= older_than or age <= keep_recent:
            continue
        removed.append(name)
        ref = f"{WHEELHOUSE_REPO}:{name}"
        if engine:
            try:
                images += image_exists(ref) and (dry_run or remove_image(ref))
            except UserError:  # no docker CLI on this machine: directories only
                engine = False
        if not dry_run:
            shutil.rmtree(root / name, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (root / ".used" / name).unlink()
    return {"wheelhouses": removed, "images_removed": images, "docker": engine}


def ensure_image(wh: Wheelhouse, progress: Progress) -> str:
    """Wrap the wheelhouse in its `FROM scratch` image once; later builds reuse it (same id, same cache key)."""
    _mark_used(wh)
    if image_exists(wh.image):
        return wh.image
    progress.log(f"creating wheelhouse image {wh.image}")
    result = run_build(["--tag", wh.image, "--file", "-", str(wh.directory)], stdin=WHEELHOUSE_DOCKERFILE,
                       echo=None)
    if result.returncode != 0:
        raise UserError(f"could not create the wheelhouse image {wh.image}:\n{last_error_lines(result.output)}")
    return wh.image
