"""Baseline predictions for change gates, cached so only the candidate costs inference.

The baseline model comes from a baseline accuracy.json (`model.files`: path -> sha256, fetched by digest
through the artifacts machinery into the cache) or from a directory (`--baseline-models DIR`). Its
predictions on this run's exact sample are cached under a key of baseline model digests + dataset digest
+ sample digest + predict reference, so a re-run (or another branch against the same baseline) reuses them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..artifacts.hashing import hash_file
from ..errors import UserError
from ..fsutil import read_json, write_json_atomic
from ..paths import cache_dir
from .engine import Prepared, collect_predictions, hash_tree


def fetch_by_digest(cfg: Any, sha256: str, dest: Path) -> None:
    """Thin wrapper over the artifacts machinery: a verified copy of the object with this digest."""
    try:
        from ..artifacts.api import fetch_by_digest as fetch
    except ImportError:
        raise UserError("this mlci cannot fetch baseline models by digest yet",
                        hint="pass --baseline-models DIR with the baseline model files") from None
    fetch(cfg, sha256, dest)


def _models_from_record(cfg: Any, record_path: Path) -> tuple[Path, dict[str, str]]:
    try:
        rec = read_json(record_path)
        files = rec["model"]["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read baseline {record_path}: {exc}",
                        hint="pass an accuracy.json written by `mlci accuracy run` (it has model.files)") from None
    if not files:
        raise UserError(f"baseline {record_path} lists no model files", hint="use a record from a run with models")
    dest = cfg["artifacts"]["models"]["dest"].rstrip("/") + "/"
    combined = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    root = cache_dir(cfg["artifacts"]["cache"]) / "baseline-models" / combined
    for rel, digest in sorted(files.items()):
        hexdigest = digest.split(":", 1)[-1]
        name = rel[len(dest):] if rel.startswith(dest) else rel
        if name.startswith("/") or ".." in Path(name).parts:
            raise UserError(f"baseline model path '{rel}' escapes the models directory", where=str(record_path))
        target = root / name
        if not (target.is_file() and hash_file(target) == hexdigest):
            target.parent.mkdir(parents=True, exist_ok=True)
            fetch_by_digest(cfg, hexdigest, target)
    return root, dict(files)


def baseline_predictions(prep: Prepared, *, record: str | None, models_dir: str | None,
                         workers: int | str) -> tuple[list[Any], dict[str, Any]]:
    cfg = prep.cfg
    if models_dir:
        root = Path(models_dir).expanduser().resolve()
        if not root.is_dir():
            raise UserError(f"--baseline-models {models_dir} is not a directory")
        dest = cfg["artifacts"]["models"]["dest"].rstrip("/")
        files = hash_tree({f"{dest}/{p.relative_to(root).as_posix()}": p for p in root.rglob("*") if p.is_file()})
        source = str(root)
    else:
        assert record is not None
        root, files = _models_from_record(cfg, Path(record))
        source = str(Path(record).resolve())
    key = hashlib.sha256(json.dumps({"models": files, "dataset": prep.ref.sha256, "sample": prep.sample_digest(),
                                     "predict": cfg["accuracy"]["predict"]}, sort_keys=True).encode()).hexdigest()
    cache_file = cache_dir(cfg["artifacts"]["cache"]) / "accuracy-baseline" / f"{key}.json"
    cached = cache_file.is_file()
    if cached:
        preds = read_json(cache_file)["predictions"]
    else:
        preds = collect_predictions(prep, workers, {"MLCI_MODELS_DIR": str(root)}, "baseline")
        write_json_atomic(cache_file, {"key": key, "models": files, "predictions": preds})
    return preds, {"source": source, "model_files": files, "cache_key": key, "cached": cached}
