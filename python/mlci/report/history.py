"""The accuracy history store in S3 (`report.history: s3://bucket/prefix`).

Why a store at all: baselines for the change gate, the metric trend in the report, the result cache and the
deploy promotion gate all need "what did earlier runs say", across builds and agents, without Jenkins.

Layout (all under `<prefix>/<service>/`; `q()` = percent-encoding, so `release/1.0` is one path segment):

    records/<q(branch)>/<commit>/<record_id>.json          the complete accuracy.json + a `history` block
    index/branch/<q(branch)>/<q(suite)>/<entry>.json       pointer per record, newest first
    index/image/<q(image digest)>/<entry>.json             pointer per record that ran on an image
    index/inputs/<q(suite)>/<inputs digest>/<entry>.json   pointer per record, keyed by model+data+code digests

    <entry> = <reverse timestamp>-<VERDICT>-<record_id>

S3 lists keys in ascending order, so a reverse timestamp makes the first key the newest, and the verdict in the
key lets lookups skip non-PASS records without reading them: a baseline lookup is one LIST + one GET.
Every object is written with one PUT of the complete body (atomic in S3: readers see the whole object or
nothing); the record is written before its pointers, so a pointer never names a record that was not written.
A missing, unreachable or corrupt store never crashes a reader: it warns and answers "nothing found".
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import botocore.exceptions

from .. import s3
from ..errors import UserError

POINTER_SCHEMA = "mlci.history-pointer/1"
RECORD_SCHEMA = "mlci.accuracy/1"
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")
_REV_BASE = 10**17  # microseconds since the epoch stay below this until the year 5138
NO_BRANCH = "(none)"
NO_COMMIT = "unknown"

_S3_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


class HistoryUnavailable(Exception):
    """The store could not be read (missing bucket, no credentials, unreachable): readers degrade to None."""


def warn(message: str) -> None:
    """Warnings go to stderr, one line each, so they show in the Jenkins log next to the stage output."""
    print(f"mlci: warning: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pure helpers (data in, data out)


def q(segment: str) -> str:
    """One S3 key segment: branch names contain '/', suite names may contain anything."""
    return quote(segment, safe="")


def inputs_digest(model_files: Mapping[str, str], dataset_sha256: str, code_digest: str) -> str:
    """Digest of everything that determines an accuracy result: the result-cache key."""
    canonical = json.dumps(
        {"model_files": dict(sorted(model_files.items())), "dataset_sha256": dataset_sha256, "code_digest": code_digest},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_record_id(now: _dt.datetime, commit: str) -> str:
    """Readable and unique: `20261122T180000Z-abc1234-1a2b3c4d` (shown as "reused record X")."""
    short = commit[:7] if commit and commit != NO_COMMIT else "nocommit"
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{q(short)}-{uuid.uuid4().hex[:8]}"


def reverse_ts(now: _dt.datetime) -> str:
    micros = int(now.timestamp() * 1_000_000)
    return f"{_REV_BASE - micros:017d}"


def entry_name(now: _dt.datetime, verdict: str, record_id: str) -> str:
    return f"{reverse_ts(now)}-{verdict}-{record_id}.json"


def parse_entry(key: str) -> tuple[str, str] | None:
    """(verdict, record_id) from an index key, or None for a key that is not ours."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(".json"):
        return None
    parts = name[: -len(".json")].split("-", 2)
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in VERDICTS:
        return None
    return parts[1], parts[2]


def _git(record: Mapping[str, Any]) -> tuple[str, str]:
    git = record.get("git") or {}
    return (git.get("branch") or NO_BRANCH), (git.get("commit") or NO_COMMIT)


def validate_record(record: Any, *, service: str) -> None:
    """Refuse records the readers could not use, before anything is written."""
    if not isinstance(record, dict):
        raise UserError("an accuracy record must be a JSON object", hint="pass the accuracy.json written by mlci accuracy run")
    if record.get("schema") != RECORD_SCHEMA:
        raise UserError(f"record schema is {record.get('schema')!r}, expected {RECORD_SCHEMA!r}",
                        hint="pass the accuracy.json written by mlci accuracy run")
    for key in ("suite", "verdict", "service"):
        if not isinstance(record.get(key), str) or not record.get(key):
            raise UserError(f"record has no '{key}'", hint="pass the accuracy.json written by mlci accuracy run")
    if record["verdict"] not in VERDICTS:
        raise UserError(f"record verdict {record['verdict']!r} is not one of {', '.join(VERDICTS)}")
    if record.get("provisional"):
        raise UserError(f"the {record['suite']} record is a shard's provisional record",
                        hint="record the merged record (`mlci accuracy merge`), which carries the verdict")
    if record["service"] != service:
        raise UserError(f"record is for service '{record['service']}' but ml-ci.yaml says '{service}'",
                        hint="record results with the ml-ci.yaml of the service that produced them")


def pointer_for(record: Mapping[str, Any], *, key: str, record_id: str, recorded: str) -> dict[str, Any]:
    """The small summary an index entry holds: enough to draw a trend without reading whole records."""
    metrics = record.get("metrics") or {}
    branch, commit = _git(record)
    return {
        "schema": POINTER_SCHEMA,
        "record_id": record_id,
        "key": key,
        "recorded": recorded,
        "started": record.get("started"),
        "suite": record.get("suite"),
        "verdict": record.get("verdict"),
        "branch": branch,
        "commit": commit,
        "image_digest": (record.get("image") or {}).get("digest"),
        "metrics": {k: metrics.get(k) for k in ("accuracy", "macro_f1", "n", "mae", "rmse", "auc")},
        "gates": [
            {"metric": g.get("metric"), "class": g.get("class"), "kind": g.get("kind"),
             "estimate": g.get("estimate"), "verdict": g.get("verdict")}
            for g in record.get("gates") or []
            if isinstance(g, dict)
        ],
    }


# ---------------------------------------------------------------- the store (I/O)


class Store:
    """One service's history under `report.history`. Stateless apart from the S3 client."""

    def __init__(self, uri: str, service: str, client: Any | None = None):
        self.uri = uri.rstrip("/")
        self.bucket, prefix = s3.parse_uri(self.uri)
        prefix = prefix.strip("/")
        self.root = f"{prefix}/{service}" if prefix else service
        self.service = service
        self.client = client or s3.client()

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # keys
    def record_key(self, branch: str, commit: str, record_id: str) -> str:
        return f"{self.root}/records/{q(branch)}/{q(commit)}/{record_id}.json"

    def branch_prefix(self, branch: str, suite: str) -> str:
        return f"{self.root}/index/branch/{q(branch)}/{q(suite)}/"

    def image_prefix(self, digest: str) -> str:
        return f"{self.root}/index/image/{q(digest)}/"

    def inputs_prefix(self, suite: str, digest: str) -> str:
        return f"{self.root}/index/inputs/{q(suite)}/{digest}/"

    # raw I/O
    def put_json(self, key: str, data: Any) -> None:
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def get_json(self, key: str) -> Any:
        """Parsed JSON, or None (with a warning) when the object is missing or not JSON."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                warn(f"history object {self.url(key)} is missing; skipped")
                return None
            raise HistoryUnavailable(str(s3.explain(exc, self.url(key)))) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise HistoryUnavailable(str(s3.explain(exc, self.url(key)))) from None
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            warn(f"history object {self.url(key)} is corrupt (not JSON); skipped")
            return None

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` in ascending (= newest-first for index entries) order, page by page."""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"]
        except _S3_ERRORS as exc:
            raise HistoryUnavailable(str(s3.explain(exc, self.url(prefix)))) from None

    # operations
    def append(self, record: dict[str, Any], now: _dt.datetime | None = None) -> str:
        validate_record(record, service=self.service)
        now = now or _dt.datetime.now(_dt.timezone.utc)
        branch, commit = _git(record)
        record_id = new_record_id(now, commit)
        key = self.record_key(branch, commit, record_id)
        recorded = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        stored = {**record, "history": {"id": record_id, "key": key, "uri": self.url(key), "recorded": recorded}}
        pointer = pointer_for(record, key=key, record_id=record_id, recorded=recorded)
        entry = entry_name(now, record["verdict"], record_id)
        index_keys = [self.branch_prefix(branch, record["suite"]) + entry]
        digest = (record.get("image") or {}).get("digest")
        if digest:
            index_keys.append(self.image_prefix(digest) + entry)
        model = record.get("model") or {}
        dataset = record.get("dataset") or {}
        if model.get("files") and dataset.get("sha256") and model.get("code_digest"):
            idig = inputs_digest(model["files"], dataset["sha256"], model["code_digest"])
            index_keys.append(self.inputs_prefix(record["suite"], idig) + entry)
        try:
            self.put_json(key, stored)  # the record first: a pointer never names a record that is not there
            for ikey in index_keys:
                self.put_json(ikey, pointer)
        except _S3_ERRORS as exc:
            raise s3.explain(exc, self.url(key), "history store") from None
        return record_id

    def entries(self, prefix: str, verdict: str | None = None) -> Iterator[tuple[str, str, str]]:
        """(index key, verdict, record_id), newest first, optionally only one verdict."""
        for key in self.list_keys(prefix):
            parsed = parse_entry(key)
            if parsed is None:
                continue
            if verdict is None or parsed[0] == verdict:
                yield key, parsed[0], parsed[1]

    def load_via(self, index_key: str) -> dict[str, Any] | None:
        """The full record an index entry points at; None (warned) when pointer or record is unusable."""
        pointer = self.get_json(index_key)
        if not isinstance(pointer, dict) or not isinstance(pointer.get("key"), str):
            if pointer is not None:
                warn(f"history index entry {self.url(index_key)} is not a pointer; skipped")
            return None
        record = self.get_json(pointer["key"])
        if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
            if record is not None:
                warn(f"history record {self.url(pointer['key'])} is not an accuracy record; skipped")
            return None
        return record

    def first_pass(self, prefix: str, accept: Any = None) -> dict[str, Any] | None:
        for key, _verdict, _rid in self.entries(prefix, "PASS"):
            record = self.load_via(key)
            if record is not None and record.get("verdict") == "PASS" and (accept is None or accept(record)):
                return record
        return None

    def recent(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` pointers under an index prefix (for the trend chart), newest first."""
        keys = []
        for key, _v, _r in self.entries(prefix):
            keys.append(key)
            if len(keys) >= limit:
                break
        with ThreadPoolExecutor(max_workers=8) as pool:
            pointers = list(pool.map(self.get_json, keys))
        return [p for p in pointers if isinstance(p, dict) and p.get("schema") == POINTER_SCHEMA]


# ---------------------------------------------------------------- the public interface (cfg in, data out)


def _history_uri(cfg: Any) -> str | None:
    try:
        return cfg["report"]["history"] or None
    except (KeyError, TypeError):
        return None


def store_for(cfg: Any) -> Store | None:
    """The configured store, or None when `report.history` is not set."""
    uri = _history_uri(cfg)
    if not uri:
        return None
    return Store(uri, cfg["service"])


def _read(cfg: Any, what: str, fn: Any, default: Any = None) -> Any:
    """Run a read against the store; any store problem becomes a warning and `default`."""
    store = store_for(cfg)
    if store is None:
        return default
    try:
        return fn(store)
    except HistoryUnavailable as exc:
        warn(f"history store {store.uri} unavailable ({exc}); {what}")
    except UserError as exc:
        warn(f"history store {store.uri}: {exc}; {what}")
    except _S3_ERRORS as exc:  # anything boto raises that slipped past the specific handlers
        warn(f"history store {store.uri}: {exc}; {what}")
    return default


def append_record(cfg: Any, record: dict[str, Any]) -> str:
    """Store one accuracy record (the whole accuracy.json) and index it; returns the record id.

    Raises UserError when report.history is not configured, the record is not an accuracy record, or the store
    cannot be written (callers that must not fail on history, e.g. the pipeline, catch it and warn).
    """
    store = store_for(cfg)
    if store is None:
        raise UserError("report.history is not set in ml-ci.yaml", hint="add `report: {history: s3://bucket/prefix}`")
    return store.append(record)


def latest_pass(cfg: Any, *, branch: str, suite: str, exclude_commit: str | None = None) -> dict[str, Any] | None:
    """The newest PASS record of `suite` on `branch` (the baseline), or None.

    `exclude_commit` skips records of that commit: a build on the baseline branch that was already recorded
    must not become its own baseline.
    """
    def accept(record: dict[str, Any]) -> bool:
        return not exclude_commit or (record.get("git") or {}).get("commit") != exclude_commit

    return _read(cfg, "no baseline", lambda st: st.first_pass(st.branch_prefix(branch, suite), accept))


def find_pass_for_image(cfg: Any, image_digest: str) -> dict[str, Any] | None:
    """The newest PASS record (any suite, any branch) produced by the image with this digest, or None.

    None as well when a FAIL record of the same image is newer than every PASS: the promotion gate must not
    promote an image whose latest evidence (e.g. the scheduled full suite) says it is worse than the gate.
    """
    if not image_digest:
        return None

    def lookup(st: Store) -> dict[str, Any] | None:
        for key, verdict, rid in st.entries(st.image_prefix(image_digest)):
            if verdict == "FAIL":
                warn(f"image {image_digest[:19]}... has a newer FAIL record ({rid}) than any PASS record")
                return None
            if verdict == "PASS":
                record = st.load_via(key)
                if record is not None and record.get("verdict") == "PASS":
                    return record
        return None

    return _read(cfg, "no passing record found", lookup)


def find_reusable(cfg: Any, *, suite: str, model_files: dict[str, str], dataset_sha256: str,
                  code_digest: str) -> dict[str, Any] | None:
    """A PASS record of `suite` whose model, dataset and inference-code digests all match (the result cache).

    The digests are re-checked on the loaded record (the index key is only a hash), and a record is reused only
    when its gates are the suite's current gates: a PASS against a lower threshold says nothing about today's.
    `report.reuse: false` turns the cache off (None).
    """
    try:
        if cfg["report"]["reuse"] is False:
            return None  # report.reuse: false -- always run the suite
    except (KeyError, TypeError):
        pass
    want = inputs_digest(model_files, dataset_sha256, code_digest)

    def accept(record: dict[str, Any]) -> bool:
        model, dataset = record.get("model") or {}, record.get("dataset") or {}
        same_inputs = (
            record.get("suite") == suite
            and model.get("files") == dict(model_files)
            and dataset.get("sha256") == dataset_sha256
            and model.get("code_digest") == code_digest
        )
        return same_inputs and gates_match(record.get("gates") or [], configured_gates(cfg, suite)) \
            and same_settings(record, cfg, suite)

    return _read(cfg, "running the suite", lambda st: st.first_pass(st.inputs_prefix(suite, want), accept))


def recent(cfg: Any, *, branch: str, suite: str, limit: int = 20) -> list[dict[str, Any]]:
    """Pointer summaries of the newest `limit` records of `suite` on `branch`, oldest first (for the trend)."""
    pointers = _read(cfg, "no trend", lambda st: st.recent(st.branch_prefix(branch, suite), limit), default=[])
    return list(reversed(pointers))


# ---------------------------------------------------------------- gate comparison for the result cache


def configured_gates(cfg: Any, suite: str) -> list[dict[str, Any]] | None:
    """The suite's gates from ml-ci.yaml, or None when the config has no such suite (then gates are not compared)."""
    try:
        return list(cfg["accuracy"]["suites"][suite]["gates"])
    except (KeyError, TypeError):
        return None


def same_settings(record: Mapping[str, Any], cfg: Any, suite: str) -> bool:
    """Predict functions, prediction type, threshold and error policy as recorded equal today's (a record without
    them predates them: not reusable)."""
    from ..accuracy.outputs import judged_settings

    try:
        want = judged_settings(cfg["accuracy"], cfg["accuracy"]["suites"][suite])
    except (KeyError, TypeError):
        return True
    return (record.get("plan") or {}).get("settings") == want


def _gate_spec_from_config(g: Mapping[str, Any]) -> tuple[Any, ...]:
    threshold = g.get("min") if g.get("min") is not None else g.get("max")
    return (g.get("metric"), g.get("kind", "absolute"), _cls(g.get("class")), _num(threshold),
            _num(g.get("margin")), _num(g.get("alpha")), _num(g.get("beta")))


def _gate_spec_from_record(g: Mapping[str, Any]) -> tuple[Any, ...]:
    # the engine may spend a smaller alpha/beta per gate than configured; `*_configured` is what ml-ci.yaml said
    alpha = g.get("alpha_configured", g.get("alpha"))
    beta = g.get("beta_configured", g.get("beta"))
    cls = g.get("class_configured", g.get("class"))  # as ml-ci.yaml said it (a name from accuracy.labels, say)
    return (g.get("metric"), g.get("kind", "absolute"), _cls(cls), _num(g.get("threshold")),
            _num(g.get("margin")), _num(alpha), _num(beta))


def _num(v: Any) -> float | None:
    return None if v is None else round(float(v), 12)


def _cls(v: Any) -> str | None:
    return None if v is None else str(v)


def gates_match(record_gates: list[Any], config_gates: list[Any] | None) -> bool:
    if config_gates is None:
        return True
    have = sorted((_gate_spec_from_record(g) for g in record_gates if isinstance(g, dict)), key=repr)
    want = sorted((_gate_spec_from_config(g) for g in config_gates if isinstance(g, dict)), key=repr)
    # A change gate's threshold is relative to a baseline the record does not pin; compare the rest only.
    have = [h if h[1] != "change" else (*h[:3], None, *h[4:]) for h in have]
    want = [w if w[1] != "change" else (*w[:3], None, *w[4:]) for w in want]
    return have == want

