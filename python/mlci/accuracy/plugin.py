"""The pytest plugin behind `mlci accuracy run`: worker side (fixtures, batch items) and controller side.

Workers (pytest-xdist processes, or the main process with -n 0) import the team's `accuracy.load` once per
worker through the session fixture `mlci_worker` and run batch items; each item attaches its per-sample
predictions, latencies and errors to its report as a user property, which xdist ships to the controller.
The controller (`Controller`, passed to pytest.main as a plugin object) re-orders reports into the
pre-drawn order and feeds only the contiguous prefix to the gate evaluator -- completion order never
matters. Once the verdict is reached it sets `session.shouldstop` (see Controller.stop)
and stops dispatch through its scheduler: no further batches are dispatched, batches in flight finish.

Team checks: ordinary pytest tests in the same session can use the `mlci_sample` fixture (the drawn
sample's ids, inputs, labels, and predictions computed on that worker).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..errors import UserError
from .data import Dataset, reopen
from .outputs import Output, check_batch

SPEC_ENV = "MLCI_ACCURACY_SPEC"
PROPERTY = "mlci_batch"
BATCH_FILE = "test_mlci_batches.py"


class UserCodeError(Exception):
    """The team's own code (import, load) failed in a worker: reported once, with the team's frames only."""


_MLCI_DIR = str(Path(__file__).resolve().parents[1])
_FOREIGN = ("importlib", "_pytest", "pluggy", "xdist", "execnet", os.sep + "pytest" + os.sep)


def user_traceback(exc: BaseException) -> str:
    """The exception with the frames of the team's code only (no mlci, pytest or importlib frames)."""
    te = traceback.TracebackException.from_exception(exc)
    frames = [f for f in te.stack if not f.filename.startswith(_MLCI_DIR) and not f.filename.startswith("<frozen")
              and not any(part in f.filename for part in _FOREIGN)]
    te.stack = traceback.StackSummary.from_list(frames)
    lines = list(te.format(chain=False))
    if not frames:  # nothing of the team's: the exception line says it all
        lines = lines[-1:] if lines else [f"{type(exc).__name__}: {exc}\n"]
    return "".join(lines).rstrip()


def _user_step(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - any failure of the team's code is reported, not raised through pytest
        raise UserCodeError(f"{what} failed:\n{user_traceback(exc)}") from None


def resolve_callable(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _jsonable(values: Any) -> list[Any]:
    """predict's return value as a list of JSON values, one per input (rows of a 2-D array become lists)."""
    arr = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return [_plain(v) for v in arr]


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


@dataclass
class Worker:
    spec: dict[str, Any]
    dataset: Dataset
    predict: Callable[[Any], Any]
    scorers: dict[str, Callable[[Any, Any], Any]] = field(default_factory=dict)  # custom scores by reference

    @cached_property
    def batches(self) -> Batches:
        return Batches.of(self.spec)

    @cached_property
    def output(self) -> Output:
        return Output.from_dict(self.spec.get("output"))

    def run(self, indices: list[int]) -> dict[str, Any]:
        """Predict one batch, checked against the suite's output type.

        If the batch raises, it is retried sample by sample so each error names its sample. A suite with a
        latency gate times every sample on its own (`timing: per_sample`): a batch's mean is not a request's
        latency. Otherwise each sample's latency is its batch's time divided by the batch size.
        """
        try:
            inputs = self.dataset.take(indices)
        except UserError as exc:  # bad or tampered data (a file failing its digest): stop with its message
            return {"fatal": str(exc)}
        if self.spec.get("timing") == "per_sample":
            return self._one_by_one(indices)
        t0 = time.perf_counter()
        try:
            raw = self.predict(inputs)
        except Exception:  # noqa: BLE001 - isolate the failing samples below
            return self._one_by_one(indices)
        per = (time.perf_counter() - t0) * 1000 / max(len(indices), 1)
        preds, fatal = _as_list(raw, len(indices))
        if fatal:
            return {"fatal": fatal}
        preds, errs, fatal = check_batch(self.output, preds)
        if fatal:
            return {"fatal": fatal}
        return self._scored(indices, {"pred": preds, "lat": [per] * len(indices), "err": errs})

    def _scored(self, indices: list[int], out: dict[str, Any]) -> dict[str, Any]:
        return add_scores(self.scorers, self.dataset, indices, out)

    def _one_by_one(self, indices: list[int]) -> dict[str, Any]:
        preds: list[Any] = []
        lat: list[float] = []
        errs: list[str | None] = []
        for i in indices:
            one = self.dataset.take([i])
            t1 = time.perf_counter()
            try:
                raw = self.predict(one)
                lat.append((time.perf_counter() - t1) * 1000)
            except Exception as exc:  # noqa: BLE001 - a prediction error is data, not a crash
                lat.append((time.perf_counter() - t1) * 1000)
                preds.append(None)
                errs.append(f"{type(exc).__name__}: {exc}")
                continue
            out, fatal = _as_list(raw, 1)
            if fatal:
                return {"fatal": fatal}
            preds.append(out[0])
            errs.append(None)
        checked, missing, fatal = check_batch(self.output, preds)
        if fatal:
            return {"fatal": fatal}
        return self._scored(indices, {"pred": checked, "lat": lat,
                                      "err": [e or m for e, m in zip(errs, missing, strict=True)]})


def add_scores(scorers: dict[str, Callable[[Any, Any], Any]], dataset: Any, indices: list[int],
               out: dict[str, Any]) -> dict[str, Any]:
    """The suite's custom per-sample scores, computed here in the image (callable and endpoint mode alike): score(prediction, label) (a bool counts as 1/0)
    for every sample predict answered (None where it failed). A score that raises, or is not a number in [0, 1], is the
    team's code failing: the run stops with its message (exit 2)."""
    if not scorers or "fatal" in out:
        return out
    labels = dataset.label_values(indices)
    out["scores"] = {}
    for ref, fn in scorers.items():
        values: list[float | None] = []
        for j, (pred, err, label) in enumerate(zip(out["pred"], out["err"], labels, strict=True)):
            if err is not None:
                values.append(None)
                continue
            where = f"custom score `{ref}` on sample {dataset.ids[indices[j]]}"
            try:
                v = fn(pred, label)
            except Exception as exc:  # noqa: BLE001 - the team's code: reported with its own frames
                return {"fatal": f"{where} failed:\n{user_traceback(exc)}"}
            if not isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)) or not 0 <= float(v) <= 1:
                return {"fatal": f"{where} returned {v!r}: a custom score must be a number in [0, 1] per sample"}
            values.append(float(v))
        out["scores"][ref] = values
    return out


def load_scorers(spec: dict[str, Any]) -> dict[str, Callable[[Any, Any], Any]]:
    """The suite's custom score callables, imported in the worker."""
    return {ref: _user_step(f"importing custom score `{ref}`", lambda ref=ref: resolve_callable(ref))
            for ref in spec.get("scores") or []}


def _as_list(raw: Any, n: int) -> tuple[list[Any], str | None]:
    """One prediction per input, or the contract error to report (bad input: exit 2)."""
    try:
        preds = _jsonable(raw)
    except TypeError:
        return [], (f"predict returned {type(raw).__name__} for a batch of {n} input(s); it must return one "
                    "prediction per input (a list or array)")
    if len(preds) != n:
        return preds, f"predict returned {len(preds)} predictions for a batch of {n} input(s); it must return one per input"
    return preds, None


def make_worker(spec: dict[str, Any]) -> Worker:
    root = spec["root"]
    if root not in sys.path:
        sys.path.insert(0, root)
    ds = reopen(spec["data"])  # the controller's dataset, re-opened: memory maps and offsets, no full read
    if spec.get("endpoint"):  # endpoint mode: predictions from the service's HTTP API (accuracy/endpoint.py)
        from .endpoint import make_worker as endpoint_worker

        return endpoint_worker(spec, ds)  # type: ignore[return-value]
    predict = _user_step(f"importing predict `{spec['predict']}`", lambda: resolve_callable(spec["predict"]))
    model = _user_step(f"loading the model with `{spec['load']}`",
                       lambda: resolve_callable(spec["load"])()) if spec.get("load") else None
    scorers = load_scorers(spec)
    try:
        params = [p for p in inspect.signature(predict).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if model is not None and len(params) >= 2:
        def call(x: Any) -> Any:
            return predict(x, model)
    else:
        call = predict
    return Worker(spec, ds, call, scorers)


@dataclass(frozen=True)
class Batches:
    """The run's samples (dataset rows in pre-drawn order) cut into batches, read from a memory-mapped .npy:
    a million-sample order costs every worker a shared 8 MB file, not a million Python ints from the spec."""

    path: str
    size: int
    total: int

    @cached_property
    def order(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return -(-self.total // self.size)

    def __getitem__(self, b: int) -> list[int]:
        if not 0 <= b < len(self):
            raise IndexError(b)
        return self.order[b * self.size:(b + 1) * self.size].tolist()

    def head(self, n: int) -> list[int]:
        return self.order[:n].tolist()

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Batches:
        return cls(**spec["batches"])


def read_spec() -> dict[str, Any]:
    with open(os.environ[SPEC_ENV], encoding="utf-8") as fh:
        return json.load(fh)


@dataclass
class BrokenWorker:
    """Stands in for a worker whose model or predict could not be loaded: every batch reports why."""

    spec: dict[str, Any]
    message: str

    @cached_property
    def batches(self) -> Batches:
        return Batches.of(self.spec)

    def run(self, indices: list[int]) -> dict[str, Any]:
        return {"fatal": self.message}


@pytest.fixture(scope="session")
def mlci_worker() -> Worker | BrokenWorker:
    """The dataset and the team's model, loaded once per worker process."""
    spec = read_spec()
    try:
        return make_worker(spec)
    except UserCodeError as exc:
        return BrokenWorker(spec, str(exc))


def run_batch(worker: Worker | BrokenWorker, batch: int, node: pytest.Item) -> None:
    """One batch item. A contract error is reported through the item's property, not raised: the controller
    stops the run with that one message, and pytest prints no failure dump of mlci's frames."""
    result = worker.run(worker.batches[batch])
    result["batch"] = batch
    node.user_properties.append((PROPERTY, json.dumps(result)))


@dataclass
class Sample:
    """What the `mlci_sample` fixture gives a team check: the drawn samples and their predictions."""

    worker: Worker
    indices: list[int]

    @property
    def ids(self) -> list[str]:
        return self.worker.dataset.ids.take(self.indices)

    @property
    def labels(self) -> list[Any]:
        return self.worker.dataset.label_values(self.indices)

    @property
    def inputs(self) -> Any:
        return self.worker.dataset.take(self.indices)

    @cached_property
    def predictions(self) -> list[Any]:
        size = self.worker.batches.size
        out: list[Any] = []
        for start in range(0, len(self.indices), size):
            out += self.worker.run(self.indices[start:start + size]).get("pred", [])
        return out


@pytest.fixture(scope="session")
def mlci_sample(mlci_worker: Worker) -> Sample:
    spec = mlci_worker.spec
    batches = mlci_worker.batches
    return Sample(mlci_worker, batches.head(spec.get("check_samples") or batches.total))


def write_batch_module(directory: str, n_batches: int) -> str:
    """The generated test module: one parametrized item per batch, in pre-drawn order."""
    path = os.path.join(directory, BATCH_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(
            "import pytest\n"
            "from mlci.accuracy.plugin import run_batch\n\n\n"
            f"@pytest.mark.parametrize('batch', range({n_batches}), ids=lambda i: f'batch{{i:05d}}')\n"
            "def test_batch(batch, request, mlci_worker):\n"
            "    run_batch(mlci_worker, batch, request.node)\n"
        )
    return path


@dataclass
class Controller:
    """Collects batch results in any order; hands the contiguous prefix to `on_batch` in pre-drawn order.

    `on_batch(batch_index, result) -> bool` returns True when the run should stop.
    """

    on_batch: Callable[[int, dict[str, Any]], bool]
    n_batches: int
    stop_early: bool = True
    received: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_batch: int = 0
    fatal: str | None = None
    stopped: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    session: Any = None
    window: int | None = None  # batches dispatched beyond the evaluated prefix (None: unlimited)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """xdist's load scheduler, held to a window ahead of the evaluated prefix (see PrefixScheduling)."""
        return make_prefix_scheduler(config, log, self)

    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        is_batch = BATCH_FILE in report.nodeid
        if not is_batch:
            self._check_report(report)
            return
        if report.when == "setup" and report.failed:
            self._fatal(f"loading the model or dataset failed in a worker:\n{_short(report.longreprtext)}")
            return
        if report.when not in ("setup", "call", "teardown") and report.failed:  # xdist: the worker died
            self._fatal(f"a worker crashed running {report.nodeid}:\n{_short(report.longreprtext)}")
            return
        if report.when != "call":
            return
        if report.failed and not any(name == PROPERTY for name, _ in report.user_properties):
            self._fatal(f"{report.nodeid} failed outside predict:\n{_short(report.longreprtext)}")
            return
        for name, value in report.user_properties:
            if name == PROPERTY:
                result = json.loads(value)
                if "fatal" in result:
                    self._fatal(result["fatal"])
                    return
                self.received[int(result["batch"])] = result
        while self.next_batch in self.received and not self.fatal and not self.stopped:
            b = self.next_batch
            self.next_batch += 1
            if self.on_batch(b, self.received.pop(b)) and self.stop_early and not self.stopped:
                self.stop("verdict reached")

    def _check_report(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.checks.append({"nodeid": report.nodeid, "outcome": report.outcome,
                                "message": _short(report.longreprtext) if report.failed else "",
                                "duration": report.duration})

    def _fatal(self, message: str) -> None:
        if not self.fatal:
            self.fatal = message
            self.stop("bad input")

    def stop(self, reason: str) -> None:
        """No further batches. `session.shouldstop` ends an in-process run (see InProcessLoop); under xdist
        the DSession's loop does not read the controller session's flag, so dispatch is stopped by the
        scheduler (PrefixScheduling reports the tests finished, DSession then shuts the workers down after
        the batches in flight). Setting DSession's own `shouldstop` would also work but ends the session as
        an interrupt (a rendered traceback and exit status 2) for what is a normal, successful stop."""
        self.stopped = reason
        if self.session is not None:
            self.session.shouldstop = f"mlci: {reason}"


class InProcessLoop:
    """The in-process (-n 0) test loop: pytest's own, but a verdict ends it quietly instead of raising
    `session.Interrupted` (whose traceback rendering alone costs ~0.4 s)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
        items = session.items
        for i, item in enumerate(items):
            nextitem = items[i + 1] if i + 1 < len(items) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail or session.shouldstop:
                break
        return True


_BATCH_ID = re.compile(r"\[batch(\d+)\]$")


def make_prefix_scheduler(config: pytest.Config, log: Any, controller: Controller) -> Any:
    """A LoadScheduling that keeps dispatch close to the prefix the controller has evaluated.

    Plain load scheduling keeps feeding a fast worker while the prefix waits for a batch on a slow one, and
    every dispatched item runs (a worker drains its queue at shutdown), so all that work would be thrown
    away at the verdict. Here a batch is dispatched only while it lies within `controller.window` batches of
    the evaluated prefix. One exception avoids a stall: an xdist worker starts an item only once it knows
    the next one, so a worker holding a single in-window batch gets one more. Each completion re-checks
    every worker, since the prefix may have advanced. Batches predicted after the verdict: at most
    window + workers.
    """
    from xdist.scheduler import LoadScheduling

    class PrefixScheduling(LoadScheduling):  # type: ignore[misc]
        depth = 3

        def _allowed(self, index: int) -> bool:
            if controller.window is None or self.collection is None:
                return True
            m = _BATCH_ID.search(self.collection[index])
            return m is None or int(m.group(1)) < controller.next_batch + controller.window

        @property
        def tests_finished(self) -> bool:
            return bool(controller.stopped) or super().tests_finished

        def check_schedule(self, node: Any, duration: float = 0) -> None:
            if node.shutting_down or controller.stopped:
                return
            if not self.pending:
                node.shutdown()
                return
            mine = self.node2pending[node]
            while self.pending:
                if len(mine) < self.depth and self._allowed(self.pending[0]):
                    self._send_tests(node, 1)
                elif len(mine) == 1 and self._allowed(mine[0]):
                    self._send_tests(node, 1)  # let the worker start its in-window batch
                else:
                    break

        def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
            self.node2pending[node].remove(item_index)
            for other in self.nodes:
                self.check_schedule(other)

    return PrefixScheduling(config, log)


def _short(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def format_exc() -> str:
    return traceback.format_exc(limit=3)
