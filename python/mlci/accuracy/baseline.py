"""Baseline predictions for change gates: two real artifacts, never one model compared with itself.

A change gate pairs the candidate's predictions with a baseline's on exactly the same samples. The baseline's
predictions come from one of:
- its own image (`mlci test accuracy`: the stage runs `mlci accuracy predict --plan` in the baseline image, which
  brings its own code, requirements and model files) -- passed here as `--baseline-predictions FILE`;
- a model swap: the candidate's code with the baseline's model files (`--baseline FILE`, fetched by the digests
  the record names, or `--baseline-models DIR`).

Every baseline session runs in a process of its own (`mlci accuracy predict` in a subprocess): a predict that
caches its model in a module global cannot carry the baseline's model into the candidate's session, whatever
`-n` is. A model swap points $MLCI_MODELS_DIR at the baseline files *and* runs the baseline in a copy of the
service tree whose models directory is the baseline's (code copied, so paths derived from `__file__` or the
working directory land there too). Finally, `check_swap` refuses a comparison in which the two sides have
different model digests yet predicted identically on every sample: the swap did not take effect (e.g. a `load()`
with a hard-coded path), and a PASS would be the candidate compared with itself.

Swap predictions are cached under baseline model digests + dataset + sample + the code digest, so a re-run (or
another branch of the same code) costs only the candidate's inference.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts.hashing import hash_file
from ..errors import StageFailed, UserError
from ..fsutil import read_json, write_json_atomic
from ..paths import cache_dir
from . import data
from .engine import PLAN_SCHEMA, Prepared, code_digest, collect_predictions, hash_tree, local_digest, model_files

PREDICTIONS_SCHEMA = "mlci.baseline-predictions/1"
ERROR = "__error__"  # a baseline prediction that raised (scored as wrong for the baseline)
COPY_LIMIT = 1 << 20  # files up to this size are copied into a swapped tree, larger ones linked


def fetch_by_digest(cfg: Any, sha256: str, dest: Path) -> None:
    """Thin wrapper over the artifacts machinery: a verified copy of the object with this digest."""
    try:
        from ..artifacts.api import fetch_by_digest as fetch
    except ImportError:
        raise UserError("this mlci cannot fetch baseline models by digest yet",
                        hint="pass --baseline-models DIR with the baseline model files") from None
    fetch(cfg, sha256, dest)


def models_from_record(cfg: Any, record_path: Path) -> tuple[Path, dict[str, str]]:
    """The baseline record's model files, fetched by digest into the cache: (directory, path -> digest)."""
    try:
        rec = read_json(record_path)
        files = rec["model"]["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read baseline {record_path}: {exc}",
                        hint="pass an accuracy.json written by `mlci accuracy run` (it has model.files)") from None
    if not files:
        raise UserError(f"baseline {record_path} lists no model files", hint="use a record from a run with models")
    return fetch_model_files(cfg, files, where=str(record_path)), dict(files)


def fetch_model_files(cfg: Any, files: dict[str, str], where: str) -> Path:
    """Model files (path under artifacts.models.dest -> sha256) fetched by digest into one cache directory."""
    dest = cfg["artifacts"]["models"]["dest"].rstrip("/") + "/"
    combined = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    root = cache_dir(cfg["artifacts"]["cache"]) / "baseline-models" / combined
    for rel, digest in sorted(files.items()):
        hexdigest = digest.split(":", 1)[-1]
        name = rel[len(dest):] if rel.startswith(dest) else rel
        if name.startswith("/") or ".." in Path(name).parts:
            raise UserError(f"baseline model path '{rel}' escapes the models directory", where=where)
        target = root / name
        if not (target.is_file() and hash_file(target) == hexdigest):
            target.parent.mkdir(parents=True, exist_ok=True)
            fetch_by_digest(cfg, hexdigest, target)
    return root


# ---------------------------------------------------------------- the plan: this run's sample as data


def write_plan(prep: Prepared, directory: Path, workers: int | str, *, copy_data: bool = False) -> Path:
    """<directory>/plan.json; with `copy_data` the dataset is copied next to it unless it lies in the artifacts
    cache (which every container of a stage mounts at the same path), so another image can read it."""
    doc = prep.plan_doc(workers)
    directory.mkdir(parents=True, exist_ok=True)
    if copy_data:
        cache = cache_dir(prep.cfg["artifacts"]["cache"]).resolve()
        src = Path(doc["data"]["path"]).resolve()
        if cache not in src.parents:
            if src.is_dir():  # a local folder dataset
                shutil.copytree(src, directory / "dataset", symlinks=False)
                doc["data"]["file"] = "dataset"
            else:
                name = "dataset" + "".join(src.suffixes[-2:])
                shutil.copyfile(src, directory / name)
                doc["data"]["file"] = name
    write_json_atomic(directory / "plan.json", doc)
    return directory / "plan.json"


def read_plan(cfg: Any, path: Path) -> tuple[dict[str, Any], Path]:
    """(plan, dataset path): the plan's path when it holds the planned bytes, else the copy next to the plan."""
    try:
        plan = read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read plan {path}: {exc}", hint="write it with `mlci accuracy plan`") from None
    if not isinstance(plan, dict) or plan.get("schema") != PLAN_SCHEMA:
        raise UserError(f"{path} is not an {PLAN_SCHEMA} plan", hint="write it with `mlci accuracy plan`")
    want = plan["data"]["sha256"]
    for candidate in [Path(plan["data"]["path"])] + ([path.parent / plan["data"]["file"]] if plan["data"].get("file")
                                                     else []):
        if candidate.exists() and local_digest(cfg, candidate) == want:
            return plan, candidate
    raise UserError(f"the dataset of plan {path} (sha256 {want[:12]}) is not available here",
                    hint="run in a container that mounts the artifacts cache, or plan with the dataset copied")


def predict_plan(cfg: Any, plan_path: Path, workers: int | str | None = None) -> dict[str, Any]:
    """`mlci accuracy predict`: this service's predictions (its own predict/load and model files) on a plan's
    samples, in this process. The document records which model files and code produced them."""
    plan, data_path = read_plan(cfg, plan_path)
    acc = cfg["accuracy"]
    suite = acc["suites"].get(plan["suite"]) or {}  # this service's own predict/load for the suite
    predict = suite.get("predict") or acc["predict"]
    if not predict:
        raise UserError("accuracy.predict is not set", hint="set accuracy.predict: module:callable")
    d = plan["data"]
    started = time.monotonic()
    spec = data.DataSpec.from_json(d["spec"])
    ds = data.open_dataset(data_path, replace(spec, format=d["format"]),
                           folder=None if data_path.is_dir() else d.get("folder"))
    try:
        order = ds.workdir / "sample.npy"
        np.save(order, np.asarray(plan["sample"], dtype=np.int64))
        run = {"root": str(cfg.root), "predict": predict, "load": suite.get("load") or acc["load"],
               "output": plan.get("output"), "timing": "batch",  # checked against the candidate's output type
               "data": ds.worker_spec(),
               "batches": {"path": str(order), "size": plan["batch_size"], "total": len(plan["sample"])}}
        w = workers if workers is not None else plan.get("workers") or 0
        preds = collect_predictions(run, w, None, "baseline")
    finally:
        ds.close()
    image = os.environ.get("MLCI_IMAGE_DIGEST")
    return {"schema": PREDICTIONS_SCHEMA, "suite": plan["suite"], "sample_digest": plan["sample_digest"],
            "dataset_sha256": d["sha256"], "predictions": preds,
            "model_files": model_files(cfg), "code_digest": code_digest(cfg),
            "image": {"name": os.environ.get("MLCI_IMAGE_NAME"), "digest": image} if image else None,
            "duration_s": round(time.monotonic() - started, 3)}


def read_predictions(prep: Prepared, path: Path) -> tuple[list[Any], dict[str, Any]]:
    """--baseline-predictions FILE: checked to be for exactly this run's samples and dataset."""
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read baseline predictions {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != PREDICTIONS_SCHEMA:
        raise UserError(f"{path} is not an {PREDICTIONS_SCHEMA} document",
                        hint="write it with `mlci accuracy predict --plan PLAN`")
    if doc.get("sample_digest") != prep.sample_digest() or doc.get("dataset_sha256") != prep.ref.sha256:
        raise UserError(f"baseline predictions {path} are for another sample than this run's "
                        f"(suite {doc.get('suite')}, sample {str(doc.get('sample_digest'))[:12]}, this run "
                        f"{prep.sample_digest()[:12]})",
                        hint="plan and predict with the same suite, seed and dataset as this run")
    preds = doc["predictions"]
    info = {"method": doc.get("method") or "image", "source": doc.get("source") or str(path),
            "model_files": doc.get("model_files") or {}, "code_digest": doc.get("code_digest"),
            "image": doc.get("image"), "cached": False}
    return preds, info


# ---------------------------------------------------------------- a model swap, in its own process


def swapped_tree(root: Path, models_dest: str, models_dir: Path, into: Path) -> Path:
    """A copy of the service tree whose models directory is `models_dir` (linked): small files copied, so a
    module's `__file__` (even resolved) and the working directory lie in the copy; large files linked."""
    from ..train.digests import code_files

    dest = models_dest.strip("/")
    skip = (root / dest).resolve() if dest else None
    for rel in code_files(root, [skip] if skip else []):
        src, dst = root / rel, into / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.stat().st_size <= COPY_LIMIT:
            shutil.copy2(src, dst)
        else:
            dst.symlink_to(src.resolve())
    target = into / dest if dest else into / "models"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    target.symlink_to(models_dir.resolve(), target_is_directory=True)
    return target


def predict_in_subprocess(prep: Prepared, models_dir: Path, workers: int | str) -> list[Any]:
    """The baseline session in a process of its own, in a swapped copy of the tree."""
    cfg = prep.cfg
    with tempfile.TemporaryDirectory(prefix="mlci-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        swapped = swapped_tree(cfg.root, cfg["artifacts"]["models"]["dest"], models_dir, tree)
        plan = write_plan(prep, Path(tmp) / "plan", workers)
        out = Path(tmp) / "predictions.json"
        config = tree / cfg.path.name
        if not config.is_file():  # a config outside the tree, or excluded by .dockerignore
            shutil.copyfile(cfg.path, config)
        env = {**os.environ, "MLCI_MODELS_DIR": str(swapped)}
        sys.stdout.flush()
        proc = subprocess.run([sys.executable, "-m", "mlci", "accuracy", "predict", "-c", str(config),
                               "--plan", str(plan), "--out", str(out)], cwd=tree, env=env, check=False)
        if proc.returncode != 0 or not out.is_file():
            if proc.returncode == 2:
                raise UserError("the baseline model's predictions failed (its output is above)",
                                hint="check the baseline model files and accuracy.load/predict")
            raise StageFailed(f"the baseline session exited {proc.returncode} (its output is above)")
        return read_json(out)["predictions"]


def baseline_predictions(prep: Prepared, *, record: str | None, models_dir: str | None,
                         workers: int | str) -> tuple[list[Any], dict[str, Any]]:
    """A model swap: the candidate's code with the baseline's model files, predicted in a separate process."""
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
        root, files = models_from_record(cfg, Path(record))
        source = str(Path(record).resolve())
    key = hashlib.sha256(json.dumps({"models": files, "dataset": prep.ref.sha256, "sample": prep.sample_digest(),
                                     "predict": prep.spec()["predict"], "load": prep.spec()["load"],
                                     "output": prep.output.to_dict(), "code": prep.code},
                                    sort_keys=True).encode()).hexdigest()
    cache_file = cache_dir(cfg["artifacts"]["cache"]) / "accuracy-baseline" / f"{key}.json"
    cached = cache_file.is_file()
    if cached:
        preds = read_json(cache_file)["predictions"]
    else:
        preds = predict_in_subprocess(prep, root, workers)
        write_json_atomic(cache_file, {"key": key, "models": files, "predictions": preds})
    return preds, {"method": "model-swap", "source": source, "model_files": files, "cache_key": key,
                   "cached": cached}


def check_swap(base_info: dict[str, Any], candidate_models: dict[str, str], candidate: list[Any],
               baseline: list[Any], errors: list[str | None]) -> None:
    """Different model digests, identical predictions on every sample: the comparison is of one model with
    itself (the baseline's files were not what got loaded), so there is nothing a change gate could judge."""
    base_models = base_info.get("model_files") or {}
    if not base_models or not candidate_models or base_models == candidate_models:
        return
    pairs = [(c, b) for c, b, e in zip(candidate, baseline, errors, strict=False) if e is None and b != ERROR]
    if not pairs or any(c != b for c, b in pairs):
        return
    how = ("its own image" if base_info.get("method") == "image"
           else "a model swap ($MLCI_MODELS_DIR and the models directory pointed at the baseline's files)")
    raise UserError(
        f"the baseline (models {_short(base_models)}, from {how}) and the candidate (models "
        f"{_short(candidate_models)}) predicted identically on all {len(pairs)} samples: the change gate would "
        "compare a model with itself",
        hint="make accuracy.load read its model from $MLCI_MODELS_DIR (or the models directory) rather than a fixed "
             "path or a global cached at import; if the two model files really predict identically (the same "
             "weights saved twice), there is no change to judge")


def _short(files: dict[str, str]) -> str:
    return ", ".join(f"{k} {str(v).split(':')[-1][:12]}" for k, v in sorted(files.items()))
