"""Endpoint mode: the sampled inputs go to the running service's HTTP API instead of an in-image callable.

The engine is unchanged: sampling, batches in pre-drawn order, stopping, sharding, records and reports are the
callable mode's. Only the worker differs: `EndpointWorker.run` turns a batch of dataset rows into requests
(a JSON body from `request`, the template, per sample or per batch), reads each prediction from the response
by a JSON pointer (RFC 6901) and reports per-sample predictions, latencies and errors exactly as `Worker.run`.

Template: any JSON value; a string that is exactly `$name` is replaced by the sample's field `name` (an input
column of the dataset, or `$id` for the sample id), `$$...` is a literal `$...`. In batch mode the template holds
one `{"$each": ITEM}`, which becomes the list of ITEM rendered for every sample of the batch.

Errors. Transport failures (connection refused or reset, timeouts) and HTTP 5xx are retried `retries` times with
a short backoff; what still fails is that sample's prediction error and follows `accuracy.on_error`, like an
exception from predict. Once a request exhausted its retries on a transport error the service counts as down:
then one request per second is tried (once), the others fail at once without being sent, until one gets an
answer -- a crashed service is not waited on (connect or name lookup timeouts) for every remaining sample. A 4xx
answer is
the sample's error (no retry). A response that breaks the contract -- not JSON, the pointer not found, a batch
answer of the wrong length, 404/405 (the wrong path or method) -- stops the run with exit 2.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from .outputs import check_batch

URL_ENV = "MLCI_ENDPOINT_URL"
EACH = "$each"
ID_FIELD = "id"
SETTINGS = ("path", "method", "request", "response", "item", "batch", "timeout", "retries", "concurrency")
BACKOFF_S = 0.2
PROBE_EVERY_S = 1.0  # while the service is unreachable: one real attempt per second, the rest fail at once


class ContractError(Exception):
    """The service's answer does not fit `accuracy.endpoint` (bad input: the run stops with exit 2)."""


class RequestFailed(Exception):
    """A request that failed after its retries: the samples' prediction error (accuracy.on_error)."""


def settings(acc: dict[str, Any], suite: dict[str, Any]) -> dict[str, Any] | None:
    """The suite's endpoint settings: `accuracy.endpoint` with the suite's own `endpoint` keys over it; None in
    callable mode."""
    base, own = acc.get("endpoint"), suite.get("endpoint")
    if not base and not own:
        return None
    merged = {k: v for k, v in (base or {}).items() if k != "serve"}
    merged.update({k: v for k, v in (own or {}).items() if v is not None})
    return merged


# --- JSON pointer (RFC 6901) --------------------------------------------------------------------------------
_NOT_FOUND = object()


def pointer_tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def resolve_pointer(doc: Any, pointer: str) -> Any:
    """The value `pointer` names in `doc`, or _NOT_FOUND."""
    node = doc
    for token in pointer_tokens(pointer):
        if isinstance(node, dict):
            if token not in node:
                return _NOT_FOUND
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or (len(token) > 1 and token[0] == "0") or int(token) >= len(node):
                return _NOT_FOUND
            node = node[int(token)]
        else:
            return _NOT_FOUND
    return node


# --- the request template -----------------------------------------------------------------------------------
def template_fields(template: Any) -> set[str]:
    """Every `$name` the template reads."""
    if isinstance(template, str):
        return {template[1:]} if template.startswith("$") and not template.startswith("$$") else set()
    if isinstance(template, list):
        return set().union(*(template_fields(v) for v in template)) if template else set()
    if isinstance(template, dict):
        return set().union(*(template_fields(v) for v in template.values())) if template else set()
    return set()


def count_each(template: Any) -> int:
    if isinstance(template, list):
        return sum(count_each(v) for v in template)
    if isinstance(template, dict):
        if set(template) == {EACH}:
            return 1 + count_each(template[EACH])
        return sum(count_each(v) for v in template.values())
    return 0


def render(template: Any, sample: dict[str, Any] | None, batch: list[dict[str, Any]] | None = None) -> Any:
    """The template with `$name` replaced by the sample's field; `{"$each": ITEM}` by ITEM per batch sample."""
    if isinstance(template, str):
        if template.startswith("$$"):
            return template[1:]
        if template.startswith("$") and sample is not None:
            return sample[template[1:]]
        return template
    if isinstance(template, list):
        return [render(v, sample, batch) for v in template]
    if isinstance(template, dict):
        if set(template) == {EACH} and batch is not None:
            return [render(template[EACH], s) for s in batch]
        return {k: render(v, sample, batch) for k, v in template.items()}
    return template


def check_settings(ep: dict[str, Any], fields: list[str], where: str) -> None:
    """Refuse a template or pointer that cannot work before any request is sent."""
    template = ep.get("request")
    if template is None:
        raise UserError("endpoint mode needs a request template", where=f"{where}.endpoint.request",
                        hint='e.g. request: {"inputs": ["$x"]} (a string "$name" is the sample\'s field name)')
    each = count_each(template)
    if ep.get("batch") and each != 1:
        raise UserError(f"batch requests need exactly one {{\"{EACH}\": ITEM}} in the template (found {each})",
                        where=f"{where}.endpoint.request",
                        hint='e.g. request: {"inputs": {"$each": "$x"}}, or batch: false for one request per sample')
    if not ep.get("batch") and each:
        raise UserError(f"`{EACH}` builds a batch body, but endpoint.batch is false", where=f"{where}.endpoint.request",
                        hint="set endpoint.batch: true, or write the template for one sample")
    available = [*fields, ID_FIELD]
    missing = sorted(template_fields(template) - set(available))
    if missing:
        raise UserError("the request template names field(s) the dataset does not have: "
                        + ", ".join(f"${m}" for m in missing), where=f"{where}.endpoint.request",
                        hint=f"fields of each sample: {', '.join('$' + f for f in available)} (the dataset's inputs "
                        "and the sample id); change the template or artifacts.data.<name>.inputs")
    for key in ("response", "item"):
        try:
            pointer_tokens(ep.get(key) or "")
        except ValueError as exc:
            raise UserError(str(exc), where=f"{where}.endpoint.{key}",
                            hint='a JSON pointer (RFC 6901): "" for the whole body, or e.g. /predictions/0') from None


# --- the HTTP client ----------------------------------------------------------------------------------------
@dataclass
class Client:
    """Requests to one service with timeouts, retries and a keep-alive connection per thread."""

    url: str
    ep: dict[str, Any]
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    down: str | None = None  # why the service is unreachable (after a request's retries), None while it answers
    next_probe: float = 0.0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UserError(f"endpoint URL {self.url!r} is not an http(s) URL", where=f"${URL_ENV}",
                            hint="e.g. http://localhost:8080 (the accuracy stage sets it to the container it starts)")
        self.scheme, self.host, self.port = parsed.scheme, parsed.hostname, parsed.port
        self.target = parsed.path.rstrip("/") + (self.ep.get("path") or "/predict")

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=float(self.ep.get("timeout") or 30))
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def post(self, body: Any) -> Any:
        """The JSON answer to one request; RequestFailed after the retries, ContractError on a broken contract."""
        data = json.dumps(body).encode()
        retries = int(self.ep.get("retries") or 0)
        method = self.ep.get("method") or "POST"
        with self._lock:
            if self.down is not None:
                if time.monotonic() < self.next_probe:
                    raise RequestFailed(f"not sent: the service stopped answering ({self.down})")
                self.next_probe = time.monotonic() + PROBE_EVERY_S
                retries = 0
        for attempt in range(retries + 1):
            try:
                conn = self._conn()
                conn.request(method, self.target, body=data,
                             headers={"Content-Type": "application/json", "Accept": "application/json"})
                resp = conn.getresponse()
                status, payload = resp.status, resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt < retries:
                    time.sleep(BACKOFF_S * 2 ** attempt)
                    continue
                message = f"{method} {self.url}{self.target}: {what}" + (f" (after {retries} retries)" if retries else "")
                with self._lock:
                    self.down = message
                    self.next_probe = time.monotonic() + PROBE_EVERY_S
                raise RequestFailed(message) from None
            self.down = None
            if status in (404, 405):
                raise ContractError(f"{method} {self.target} answered HTTP {status}: {_excerpt(payload)}; is "
                                    "accuracy.endpoint.path (or method) the service's prediction route?")
            if status >= 500 and attempt < retries:
                time.sleep(BACKOFF_S * 2 ** attempt)
                continue
            if status >= 400:
                raise RequestFailed(f"HTTP {status}: {_excerpt(payload)}")
            try:
                return json.loads(payload)
            except ValueError:
                raise ContractError(f"{method} {self.target} answered HTTP {status} with a body that is not JSON: "
                                    f"{_excerpt(payload)}") from None
        raise AssertionError("unreachable")


def _excerpt(payload: bytes, limit: int = 300) -> str:
    text = payload.decode(errors="replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + " ...")


def pick(doc: Any, pointer: str, key: str) -> Any:
    value = resolve_pointer(doc, pointer)
    if value is _NOT_FOUND:
        raise ContractError(f"the response has nothing at JSON pointer {pointer!r} (accuracy.endpoint.{key}); "
                            f"the response was {_excerpt(json.dumps(doc).encode())}")
    return value


# --- the worker -----------------------------------------------------------------------------------------------
class EndpointWorker:
    """A worker (see plugin.Worker) whose predictions come from the service's HTTP API."""

    def __init__(self, spec: dict[str, Any], dataset: Any, url: str):
        from .outputs import Output
        from .plugin import Batches, load_scorers

        self.spec = spec
        self.scorers = load_scorers(spec)
        self.dataset = dataset
        self.ep = spec["endpoint"]
        self.client = Client(url, self.ep)
        self.output = Output.from_dict(spec.get("output"))
        self.batches = Batches.of(spec)
        self.pool = ThreadPoolExecutor(max_workers=int(self.ep.get("concurrency") or 1),
                                       thread_name_prefix="mlci-endpoint")

    def _samples(self, indices: list[int]) -> list[dict[str, Any]]:
        rows = self.dataset.records(indices)
        ids = self.dataset.ids.take(indices)
        return [{ID_FIELD: i, **r} for i, r in zip(ids, rows, strict=True)]

    def run(self, indices: list[int]) -> dict[str, Any]:
        """One batch: predictions, per-sample latency (ms) and errors, or {"fatal": message} on a broken contract.

        Batch mode sends the batch in one request (its time divided by the batch size is each sample's latency)
        and, if that request fails, each sample in a request of its own so errors name their sample. Single mode,
        and any suite with a latency gate (`timing: per_sample`), sends one request per sample, `concurrency` at a
        time; each sample's latency is its own request's time, retries included (what a caller waits)."""
        try:
            samples = self._samples(indices)
        except UserError as exc:
            return {"fatal": str(exc)}
        try:
            if self.ep.get("batch") and self.spec.get("timing") != "per_sample":
                try:
                    preds, lat = self._batch(samples)
                    errs: list[str | None] = [None] * len(samples)
                except RequestFailed:
                    preds, lat, errs = self._singles(samples)
            else:
                preds, lat, errs = self._singles(samples)
        except ContractError as exc:
            return {"fatal": f"endpoint {self.client.url}: {exc}"}
        checked, missing, fatal = check_batch(self.output, preds)
        if fatal:
            return {"fatal": fatal}
        from .plugin import add_scores

        return add_scores(self.scorers, self.dataset, indices,
                          {"pred": checked, "lat": lat, "err": [e or m for e, m in zip(errs, missing, strict=True)]})

    def _batch(self, samples: list[dict[str, Any]]) -> tuple[list[Any], list[float]]:
        t0 = time.perf_counter()
        doc = self.client.post(render(self.ep["request"], None, samples))
        per = (time.perf_counter() - t0) * 1000 / max(len(samples), 1)
        return self._items(doc, len(samples)), [per] * len(samples)

    def _items(self, doc: Any, n: int) -> list[Any]:
        items = pick(doc, self.ep.get("response") or "", "response")
        if not isinstance(items, list) or len(items) != n:
            got = f"a list of {len(items)}" if isinstance(items, list) else type(items).__name__
            raise ContractError(f"a batch request of {n} sample(s) got {got} at {self.ep.get('response')!r} "
                                "(accuracy.endpoint.response must name the list of per-sample results)")
        return [pick(it, self.ep.get("item") or "", "item") for it in items]

    def _one(self, sample: dict[str, Any]) -> tuple[Any, float, str | None]:
        t0 = time.perf_counter()
        try:
            if self.ep.get("batch"):
                doc = self.client.post(render(self.ep["request"], None, [sample]))
                value = self._items(doc, 1)[0]
            else:
                doc = self.client.post(render(self.ep["request"], sample))
                value = pick(doc, self.ep.get("response") or "", "response")
        except RequestFailed as exc:
            return None, (time.perf_counter() - t0) * 1000, str(exc)
        return value, (time.perf_counter() - t0) * 1000, None

    def _singles(self, samples: list[dict[str, Any]]) -> tuple[list[Any], list[float], list[str | None]]:
        results = list(self.pool.map(self._one, samples))
        return [r[0] for r in results], [r[1] for r in results], [r[2] for r in results]


def require_url(*, probe: bool = False) -> str:
    """The service's URL ($MLCI_ENDPOINT_URL, set by the accuracy stage), checked; with `probe`, also that it
    accepts a TCP connection -- exit 2 before the first batch, not a prediction error per sample."""
    url = os.environ.get(URL_ENV)
    if not url:
        raise UserError("endpoint mode needs the service's URL", where="accuracy.endpoint",
                        hint=f"run the suite through `mlci test accuracy` (which starts the service), or set "
                        f"${URL_ENV} to a running service, e.g. http://localhost:8080")
    Client(url, {})  # refuses a URL that is not http(s)
    why = probe_host(url) if probe else None
    if why:
        raise UserError(f"the service at {url} cannot be reached: {why}", where=f"${URL_ENV}",
                        hint="start the service (or check the URL and port) before running the suite")
    return url


def make_worker(spec: dict[str, Any], dataset: Any) -> EndpointWorker:
    return EndpointWorker(spec, dataset, require_url())


def probe_host(url: str, timeout_s: float = 2.0) -> str | None:
    """Why the endpoint's host cannot be reached (None when a TCP connection opens)."""
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
