"""Run a suite: resolve data, draw the sample, plan the gates, run the pytest(-xdist) session, evaluate.

I/O lives here and in cli.py; sampling, statistics and evaluation are pure modules this one wires up.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..artifacts.hashing import hash_file
from ..errors import StageFailed, UserError
from ..progress import Progress
from . import data, endpoint, outputs, sampling
from .gates import LATENCY, Evaluator, plan_gates, task_for
from .plugin import SPEC_ENV, Batches, Controller, InProcessLoop, write_batch_module

PLAN_SCHEMA = "mlci.accuracy-plan/1"


@dataclass
class DataRef:
    name: str
    uri: str
    path: Path  # a file, a local folder, or the verified manifest of a folder in S3
    sha256: str
    format: str
    spec: data.DataSpec
    folder: dict[str, Any] | None = None  # what a folder dataset needs besides its path


def fetch_dataset(cfg: Any, name: str) -> Path:
    """Thin wrapper over the artifacts machinery (verified local copy of an s3:// dataset)."""
    try:
        from ..artifacts.api import fetch_dataset as fetch
    except ImportError:
        raise UserError(f"dataset '{name}' lives in S3 and this mlci cannot fetch datasets yet",
                        hint="pass --data PATH to a local copy of the file") from None
    return Path(fetch(cfg, name))


def scan_folder(cfg: Any, path: Path) -> list[Any]:
    """A local folder dataset's files with their sha256 (stat stamps in the cache skip unchanged files)."""
    from ..artifacts import folder
    from ..artifacts.cache import Cache

    return folder.scan(path, Cache(_cache_root(cfg)))


def local_digest(cfg: Any, path: Path) -> str:
    """The digest a local dataset is pinned by: a file's sha256, a folder's manifest sha256."""
    if path.is_dir():
        from ..artifacts import folder

        return folder.digest(scan_folder(cfg, path))
    return hash_file(path)


def resolve_data(cfg: Any, suite: dict[str, Any], override: str | None) -> DataRef:
    """--data wins; then a named dataset (local path or s3:// via the artifacts cache); then a local path."""
    name = suite["dataset"]
    entry = cfg["artifacts"]["data"].get(name)
    spec = data.DataSpec.from_entry(entry)
    fetched = bool(entry and entry["uri"].startswith("s3://") and not override)
    if override:
        path = Path(override).expanduser().resolve()
        uri = entry["uri"] if entry else str(path)
    elif fetched:
        path, uri = fetch_dataset(cfg, name), entry["uri"]
    else:
        uri = entry["uri"] if entry else name
        path = cfg.resolve(uri)
    if not path.exists():
        raise UserError(f"dataset {path} not found", where=f"accuracy suite dataset '{name}'",
                        hint="check the path, run `mlci data pull`, or pass --data PATH")
    # the format: from the uri's extension (a cached copy is named by its digest), a folder by being one
    fmt = spec.format or data.detect_format(path if path.is_dir() else Path(uri if not override else str(path)), None)
    folder: dict[str, Any] | None = None
    if fmt == "folder" and path.is_dir():
        from ..artifacts import folder as manifest

        files = scan_folder(cfg, path)
        folder, digest = {"files": files}, manifest.digest(files)
    elif fmt == "folder":
        folder = {"uri": uri if not override else str(path), "jobs": cfg["artifacts"]["jobs"],
                  "cache": str(_cache_root(cfg))}
        # a fetched manifest was verified against its sha256 by the artifacts cache: do not hash it twice
        digest = entry["sha256"] if fetched and entry["sha256"] else hash_file(path)
    elif not path.is_file():
        raise UserError(f"dataset {path} is a directory but format is '{fmt}'", where=f"artifacts.data.{name}",
                        hint="a folder dataset takes `format: folder` (or leave `format:` out)")
    else:
        digest = entry["sha256"] if fetched and entry["sha256"] else hash_file(path)
    if entry and entry["sha256"] and digest != entry["sha256"] and not override:
        raise UserError(f"dataset {path} has sha256 {digest}, expected {entry['sha256']}",
                        where=f"artifacts.data.{name}", hint="re-pull the dataset or update its sha256")
    return DataRef(name if entry else Path(name).stem, uri, path, digest, fmt, spec, folder)


def _cache_root(cfg: Any) -> Path:
    from ..paths import cache_dir

    return cache_dir(cfg["artifacts"]["cache"])


def hash_tree(files: dict[str, Path]) -> dict[str, str]:
    return {k: "sha256:" + hash_file(p) for k, p in sorted(files.items())}


def model_files(cfg: Any, models_dir: str | None = None) -> dict[str, str]:
    """'models/<file>' -> 'sha256:<hex>' for the model files the predictions came from."""
    dest = cfg["artifacts"]["models"]["dest"].rstrip("/")
    base = Path(models_dir) if models_dir else (Path(os.environ["MLCI_MODELS_DIR"]) if os.environ.get("MLCI_MODELS_DIR")
                                               else cfg.resolve(dest))
    if not base.is_dir():
        return {}
    files = {f"{dest}/{p.relative_to(base).as_posix()}": p for p in base.rglob("*") if p.is_file()}
    return hash_tree(files)


def code_digest(cfg: Any) -> str:
    """Digest of the service's files as the image holds them (path + content of every file in the repository
    the build context would take: .dockerignore, VCS metadata, caches, the models directory and local datasets
    left out -- models and data have digests of their own). It keys the sample seed and the baseline-prediction
    cache: any change to the code, its requirements or its config is a new "what is judged"."""
    from ..train.digests import code_files

    dest = cfg["artifacts"]["models"]["dest"].strip("/")
    exclude = [cfg.root / dest] if dest else []  # may be a link to a baseline's files (accuracy/baseline.py)
    exclude += [cfg.root / e["uri"] for e in cfg["artifacts"]["data"].values() if not e["uri"].startswith("s3://")]
    h = hashlib.sha256()
    for rel in code_files(cfg.root, exclude):
        h.update(f"{rel.as_posix()}\0{hash_file(cfg.root / rel)}\n".encode())
    return "sha256:" + h.hexdigest()


def run_session(spec: dict[str, Any], controller: Controller, workers: int | str, checks: list[str],
                env: dict[str, str] | None = None) -> int:
    """One in-process pytest session (with -n N: pytest-xdist) over the spec's batches."""
    with tempfile.TemporaryDirectory(prefix="mlci-accuracy-") as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        batch_module = write_batch_module(tmp, len(Batches.of(spec)))
        ini = os.path.join(tmp, "pytest.ini")
        Path(ini).write_text("[pytest]\n", encoding="utf-8")
        args = [*checks, batch_module, "-c", ini, "--rootdir", tmp, "-p", "mlci.accuracy.plugin",
                "-p", "no:cacheprovider", "-p", "no:unraisableexception", "-q", "-q", "--no-header", "--import-mode=importlib",
                "-o", "console_output_style=classic", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
        if workers not in (0, "0"):
            args += ["-n", str(workers), "--dist", "load", "--maxschedchunk", "1"]
        saved = dict(os.environ)
        os.environ[SPEC_ENV] = spec_path
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [spec["root"], os.environ.get("PYTHONPATH")]))
        os.environ.update(env or {})
        try:
            plugins: list[Any] = [controller] if workers not in (0, "0") else [controller, InProcessLoop()]
            return int(pytest.main(args, plugins=plugins))
        finally:
            os.environ.clear()
            os.environ.update(saved)


def choose_workers(flag: str | None, configured: Any, n_batches: int) -> int | str:
    value = flag if flag is not None else configured
    if value in (None, "auto"):
        return max(1, min(os.cpu_count() or 1, n_batches))
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(f"-n {value!r} is not a number", hint="-n auto, -n 0 (in-process) or -n N") from None
    if n < 0:
        raise UserError(f"-n {n} is negative", hint="-n auto, -n 0 (in-process) or -n N")
    return min(n, max(n_batches, 1)) if n else 0


@dataclass
class Prepared:
    """Everything decided before inference: data, seed, sample order, gate plans, batches."""

    cfg: Any
    suite_name: str
    suite: dict[str, Any]
    ref: DataRef
    dataset: data.Dataset
    task: str
    seed: int
    seed_source: str
    plans: list[dict[str, Any]]
    drawn: int
    order: np.ndarray  # dataset indices in pre-drawn order (length drawn)
    shard: tuple[int, int] | None
    positions: np.ndarray  # positions in `order` this run covers
    batch_size: int
    label_set: set[str] = field(default_factory=set)
    output: outputs.Output = field(default_factory=lambda: outputs.Output("labels"))
    models: dict[str, str] = field(default_factory=dict)  # model file -> digest, as hashed for the seed
    code: str = ""  # code_digest(cfg), as hashed for the seed
    endpoint: dict[str, Any] | None = None  # endpoint mode's settings (accuracy/endpoint.py); None: callable mode
    duplicates: Any = None  # duplicates.Duplicates among the first drawn inputs (None: not checked)
    groups: Any = None  # grouping.Groups when the dataset has a group field (whole groups drawn and judged)
    slices: Any = None  # slicing.SlicePlan of a suite with `slices:` (None: one verdict over the whole sample)

    def group_labels(self) -> list[str] | None:
        """The group of every position this run covers, in order (None: ungrouped)."""
        return self.groups.at(self.positions) if self.groups is not None else None

    @property
    def indices(self) -> np.ndarray:
        return self.order[self.positions]

    def spec(self) -> dict[str, Any]:
        acc = self.cfg["accuracy"]
        return {"root": str(self.cfg.root), "predict": self.suite.get("predict") or acc["predict"],
                "load": self.suite.get("load") or acc["load"], "output": self.output.to_dict(),
                "timing": "per_sample" if any(p["metric"] in LATENCY for p in self.plans) else "batch",
                "scores": sorted({p["score"] for p in self.plans if p.get("score")}),
                "data": self.dataset.worker_spec(), "batches": self._batches(),
                **({"endpoint": self.endpoint} if self.endpoint else {})}

    def _batches(self) -> dict[str, Any]:
        """The sample order for the workers: a .npy in the dataset's scratch directory (see plugin.Batches)."""
        path = self.dataset.workdir / "sample.npy"  # the dataset (and its directory) belongs to this run
        if not path.exists():
            np.save(path, np.ascontiguousarray(self.indices, dtype=np.int64))
        return {"path": str(path), "size": self.batch_size, "total": len(self.positions)}

    def sample_digest(self) -> str:
        return hashlib.sha256(json.dumps(self.indices.tolist()).encode()).hexdigest()

    def plan_doc(self, workers: int | str) -> dict[str, Any]:
        """The sample as data (`mlci accuracy plan`): what a baseline needs to predict exactly these samples, in
        another process or another image (`mlci accuracy predict`)."""
        r = self.ref
        return {"schema": PLAN_SCHEMA, "service": self.cfg["service"], "suite": self.suite_name, "seed": self.seed,
                "seed_source": self.seed_source,
                "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
                "data": {"name": r.name, "uri": r.uri, "sha256": r.sha256, "path": str(r.path), "format": r.format,
                         "spec": r.spec.to_json(),
                         # a folder in S3: its verified manifest plus where its files are fetched from and cached
                         "folder": {k: v for k, v in r.folder.items() if k != "files"} if r.folder else None},
                "output": self.output.to_dict(),
                "sample_digest": self.sample_digest(), "sample": self.indices.tolist(),
                "batch_size": self.batch_size, "workers": workers}


def prepare(cfg: Any, suite_name: str, *, seed: int | None, shard: str | None, data_override: str | None,
            sequential: bool | None = None) -> Prepared:
    suites = cfg["accuracy"]["suites"]
    if suite_name not in suites:
        raise UserError(f"no accuracy suite '{suite_name}'", hint=f"suites in {cfg.path.name}: {', '.join(suites) or '(none)'}")
    suite = suites[suite_name]
    ep = endpoint.settings(cfg["accuracy"], suite)
    if not cfg["accuracy"]["predict"] and not ep:
        raise UserError("accuracy.predict is not set", hint="set accuracy.predict: module:callable, or "
                        "accuracy.endpoint to test the served HTTP API")
    ref = resolve_data(cfg, suite, data_override)
    ds = data.open_dataset(ref.path, replace(ref.spec, format=ref.format), folder=ref.folder)
    if ep:
        endpoint.check_settings(ep, ds.input_names, "accuracy" if suite.get("endpoint") is None
                                else f"accuracy.suites.{suite_name}")
    task = task_for(suite["gates"])
    if task == "regression":
        try:
            np.asarray(ds.labels, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"dataset {ref.path}: regression gates (mae/rmse) need numeric labels") from None
        codes, classes = np.zeros(len(ds), dtype=np.int64), ["all"]
    else:
        codes, classes = data.label_codes(ds.labels)
    output = outputs.resolve(cfg["accuracy"], suite, classes if task != "regression" else [],
                             regression=task == "regression", where=f"accuracy.suites.{suite_name}")
    models, code = model_files(cfg), code_digest(cfg)
    chosen, source = sampling.choose_seed(seed, suite["seed"], suite=suite_name, dataset_sha=ref.sha256,
                                          models=models, code=code)
    grouped = None
    if ref.spec.group:
        if suite.get("slices"):
            raise UserError(f"accuracy.suites.{suite_name}.slices: slices of a grouped dataset are not supported "
                            f"(artifacts.data.{ref.name}.group is set)",
                            hint="remove the suite's `slices:` or the dataset's `group:`")
        from . import grouping

        grouped = grouping.draw(ds, ref.spec.group, codes, chosen, f"artifacts.data.{ref.name}")
    available = len(ds)
    cap = min(suite["max_samples"] or available, available)
    seq = suite["sequential"] if sequential is None else sequential
    sliced = None
    if suite.get("slices"):  # gates per slice, family-wise (accuracy/slicing.py)
        from . import slicing

        sliced = slicing.prepare_slices(suite["slices"], ref=ref, ds=ds, gates=suite["gates"], class_codes=codes,
                                        classes=classes, output=output, sequential=seq, cap=cap, seed=chosen,
                                        batch_size=suite["batch_size"], task=task,
                                        where=f"accuracy.suites.{suite_name}")
        order, plans, drawn = sliced.order, sliced.flat_plans(), len(sliced.order)
    else:
        order = grouped.order if grouped is not None else sampling.stratified_order_codes(codes, chosen)
        counts = np.bincount(codes, minlength=len(classes))
        prevalence = {c: int(k) / available for c, k in zip(classes, counts.tolist(), strict=True)}
        plans = plan_gates(suite["gates"], sequential=seq, available=available, cap=cap, prevalence=prevalence,
                           where=f"accuracy.suites.{suite_name}", output=output, batch_size=suite["batch_size"])
        drawn = cap if seq else min(cap, max(p["needed"] for p in plans))
    sh = sampling.parse_shard(shard)
    positions = sampling.shard_positions(drawn, sh)
    if grouped is not None:  # whole groups: the drawn prefix ends at a group boundary, shards take whole groups
        drawn = grouped.drawn(cap, f"accuracy.suites.{suite_name}.max_samples")
        grouping.regroup(plans, grouped, sequential=seq, drawn=drawn, where=f"accuracy.suites.{suite_name}")
        positions = grouped.shard_positions(drawn, sh)
    if positions.size == 0:
        raise UserError(f"--shard {shard} gets no samples out of {drawn}", hint="use fewer shards")
    from . import duplicates

    dups = duplicates.check(ds, order[:drawn], seed=chosen)
    return Prepared(cfg, suite_name, suite, ref, ds, task, chosen, source, plans, drawn, order[:drawn], sh, positions,
                    suite["batch_size"], set(classes) if task != "regression" else set(), output, models, code, ep,
                    dups, grouped, sliced)


@dataclass
class Collected:
    """Per-sample results in pre-drawn order for the positions this run covers (None = not run)."""

    preds: list[Any]
    errors: list[str | None]
    latency: list[float]
    received: int = 0
    scores: dict[str, list[float | None]] = field(default_factory=dict)  # custom per-sample scores by reference


@dataclass
class RunResult:
    evaluator: Evaluator
    checks: list[dict[str, Any]]
    collected: Collected
    recorded: int  # how many of this run's positions the record covers (the used prefix; all for a shard)
    duration_s: float
    workers: int | str


def collect_predictions(spec: dict[str, Any], workers: int | str, env: dict[str, str] | None,
                        label: str) -> list[Any]:
    """Predictions for every batch of `spec` (no stopping), e.g. for a baseline model."""
    n = len(Batches.of(spec))
    out: dict[int, list[Any]] = {}
    progress = Progress(n, label)

    def on_batch(b: int, result: dict[str, Any]) -> bool:
        out[b] = [p if e is None else "__error__" for p, e in zip(result["pred"], result["err"], strict=True)]
        progress.advance(1, f"batch {b + 1}/{n}" if (b + 1) % max(1, n // 10) == 0 or b + 1 == n else None)
        return False

    ctl = Controller(on_batch, n, stop_early=False)
    run_session(spec, ctl, workers, [], env)
    if ctl.fatal:
        raise UserError(f"{label}: {ctl.fatal}")
    if len(out) != n:
        raise StageFailed(f"{label}: only {len(out)} of {n} batches finished")
    progress.close(f"{sum(len(v) for v in out.values())} predictions")
    return [p for b in range(n) for p in out[b]]


ENCODING_EVIDENCE = 20


def encoding_mismatch(outside: int, inside: int, total: int) -> bool:
    """Predictions speak another label encoding than the dataset (names for indices, probabilities for labels):
    none of the first ENCODING_EVIDENCE (or of all, when fewer) is a label the dataset has. A model that is
    merely wrong, e.g. on a single-class test set, predicts some of the dataset's labels too: its answers
    outside the label set are wrong answers, scored as such, and the verdict is the gates' (FAIL)."""
    return outside > 0 and inside == 0 and outside >= min(ENCODING_EVIDENCE, total)


def execute(prep: Prepared, *, workers_flag: str | None, baseline: list[Any] | None,
            checks: list[str], on_error: str) -> RunResult:
    """Run the candidate session, feeding the evaluator the prefix in pre-drawn order."""
    spec = prep.spec()
    if prep.endpoint:
        endpoint.require_url(probe=True)
    n_batches = len(Batches.of(spec))
    workers = choose_workers(workers_flag, prep.cfg["accuracy"]["workers"], n_batches)
    total = len(prep.positions)
    budget = outputs.error_budget(prep.cfg["accuracy"]["max_error_rate"], total)
    if prep.slices is not None:
        from .slicing import SliceFamily

        ev: Any = SliceFamily(prep.slices, prep.output, on_error, slice_of=prep.slices.codes[prep.positions],
                              seed=prep.seed, max_errors=budget)
    else:
        ev = Evaluator(prep.plans, prep.output, on_error, drawn=total, seed=prep.seed, max_errors=budget,
                       groups=prep.group_labels())
    known = outputs.known_labels(prep.output, prep.label_set)
    indices = prep.indices  # a numpy view: a million-sample run keeps no list of a million ints
    progress = Progress(total, f"accuracy:{prep.suite_name}", unit="samples")
    col = Collected([None] * total, [None] * total, [0.0] * total)
    bad_labels: list[str] = []
    in_set = [0]  # predictions that are labels the dataset has
    size = prep.batch_size
    step = max(1, n_batches // 20)

    def on_batch(b: int, result: dict[str, Any]) -> bool:
        lo, hi = b * size, min((b + 1) * size, total)
        idx = indices[lo:hi]
        col.preds[lo:hi], col.errors[lo:hi], col.latency[lo:hi] = result["pred"], result["err"], result["lat"]
        col.received = hi
        for ref, values in (result.get("scores") or {}).items():
            col.scores.setdefault(ref, [None] * total)[lo:hi] = values
        if known is not None:
            for j, (p, e) in enumerate(zip(result["pred"], result["err"], strict=True)):
                if e is None and not outputs.bad_number(p) and data.label_key(p) not in known:
                    bad_labels.append(f"sample {prep.dataset.ids[idx[j]]}: {p!r}")
                elif e is None:
                    in_set[0] += 1
        if encoding_mismatch(len(bad_labels), in_set[0], total):
            return True
        if ev.verdict is not None:  # a batch that was in flight when the verdict was reached
            return True
        verdict = ev.feed(prep.dataset.label_values(idx), result["pred"], result["err"], result["lat"],
                          baseline[lo:hi] if baseline is not None else None, result.get("scores"))
        if (b + 1) % step == 0 or verdict or hi == total:
            progress.advance(hi - lo, f"{hi}/{total} samples" + (f": {verdict} ({ev.reason})" if verdict else ""))
        else:
            progress.advance(hi - lo)
        return verdict is not None

    started = time.monotonic()
    ctl = Controller(on_batch, n_batches, stop_early=prep.shard is None,
                     window=2 * int(workers) if prep.shard is None and workers not in (0, "0") else None)
    rc = run_session(spec, ctl, workers, checks)
    progress.close()
    if ctl.fatal:
        raise UserError(ctl.fatal, hint="fix accuracy.endpoint (request, response, item, path) or the service's "
                        "answers; the engine stopped and recorded no verdict" if prep.endpoint else
                        "fix the service's predict/load (a traceback above is from its own code); "
                        "the engine stopped and recorded no verdict")
    if encoding_mismatch(len(bad_labels), in_set[0], total):
        raise UserError(f"predict returned labels the dataset never has ({len(bad_labels)} seen), e.g. "
                        + "; ".join(bad_labels[:3]),
                        hint=f"labels in the dataset: {', '.join(sorted(prep.label_set)[:20])}; is predict returning "
                        "class names instead of indices? For probabilities or scores set accuracy.output; to allow "
                        "classes the test set lacks, list them in accuracy.classes")
    if ctl.next_batch < n_batches and not ctl.stopped:
        raise StageFailed(f"the pytest session ended after {ctl.next_batch} of {n_batches} batches (pytest exit {rc})")
    if ev.verdict is None:
        ev.finish()
    recorded = col.received if prep.shard is not None else (ev.stopped_at or col.received)
    return RunResult(ev, ctl.checks, col, recorded, time.monotonic() - started, workers)
