"""The accuracy history store in S3 (`report.history: s3://bucket/prefix`).

Why a store at all: baselines for the change gate, the metric trend in the report, the result cache and the
deploy promotion gate all need "what did earlier runs say", across builds and agents, without Jenkins.

Layout (all under `<prefix>/<service>/`; `q()` = percent-encoding, so `release/1.0` is one path segment):

    records/<q(branch)>/<commit>/<record_id>.json          the complete accuracy.json + a `history` block
    index/branch/<q(branch)>/<q(suite)>/<entry>.json       pointer per record, newest first
    index/image/<q(image digest)>/<entry>.json             pointer per record that ran on an image
    index/inputs/<q(suite)>/<result key>/<entry>.json      pointer per record, keyed by its result-cache key
    index/ids/<q(record id)>.json                          pointer per record, by the id the engine gave it

    <entry> = <reverse timestamp>-<VERDICT>-<record_id>

S3 lists keys in ascending order, so a reverse timestamp makes the first key the newest, and the verdict in the
key lets lookups skip non-PASS records without reading them: a baseline lookup is one LIST + one GET. Appending a
record whose id is already stored is a no-op (recording the same accuracy.json twice adds no second point), and
a record of a working tree with uncommitted changes (`git.dirty`) is refused: it is not the commit it names.
Every object is written with one PUT of the complete body (atomic in S3: readers see the whole object or
nothing); the record is written before its pointers, so a pointer never names a record that was not written.
A missing, unreachable or corrupt store never crashes a reader: it warns and answers "nothing found".
"""

from __future__ import annotations

import datetime as _dt
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
    if is_dirty(record):
        raise UserError(f"the {record['suite']} record was made from a working tree with uncommitted changes",
                        hint="commit, rebuild and run again: a record names a commit and must be about it")
    if record["service"] != service:
        raise UserError(f"record is for service '{record['service']}' but ml-ci.yaml says '{service}'",
                        hint="record results with the ml-ci.yaml of the service that produced them")


def is_dirty(record: Mapping[str, Any]) -> bool:
    return bool((record.get("git") or {}).get("dirty"))


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
        "run_id": (record.get("run") or {}).get("id"),
        "reused": bool(record.get("reused_from")),
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

    def id_key(self, engine_id: str) -> str:
        return f"{self.root}/index/ids/{q(engine_id)}.json"

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

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
        """Store a record and its index entries; returns its history id (the existing one when the engine's record
        id was stored before)."""
        validate_record(record, service=self.service)
        engine_id = record.get("id")
        if isinstance(engine_id, str) and engine_id:
            try:
                if self.exists(self.id_key(engine_id)):
                    known = self.get_json(self.id_key(engine_id)) or {}
                    warn(f"record {engine_id} ({record['suite']}) is already in the history store; not added again")
                    return str(known.get("record_id") or engine_id)
            except _S3_ERRORS as exc:
                raise s3.explain(exc, self.url(self.id_key(engine_id)), "history store") from None
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
        cache_key = record.get("cache_key")
        if isinstance(cache_key, str) and cache_key:
            index_keys.append(self.inputs_prefix(record["suite"], cache_key) + entry)
        if isinstance(engine_id, str) and engine_id:
            index_keys.append(self.id_key(engine_id))  # last: present only once everything else is
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
        if is_dirty(record):  # never a baseline: it is not the commit it names
            return False
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


def find_reusable(cfg: Any, *, suite: str, key: str) -> dict[str, Any] | None:
    """The newest PASS record of `suite` with this result-cache key (stages/accuracy_inputs.result_key), or None.

    None as well when any record with the same key says FAIL or INCONCLUSIVE: identical inputs were judged
    otherwise before (a model whose predictions vary, or a lucky PASS after a FAIL), so the suite runs again.
    The key is re-checked on the loaded record (the index key is only a pointer). `report.reuse: false` turns the
    cache off (None).
    """
    try:
        if cfg["report"]["reuse"] is False:
            return None  # report.reuse: false -- always run the suite
    except (KeyError, TypeError):
        pass

    def lookup(st: Store) -> dict[str, Any] | None:
        found = None
        for index_key, verdict, rid in st.entries(st.inputs_prefix(suite, key)):
            if verdict != "PASS":
                warn(f"record {rid} of suite {suite} has the same result key and says {verdict}: not reusing a PASS "
                     "(identical inputs were judged otherwise); running the suite")
                return None
            if found is None:
                record = st.load_via(index_key)
                if (record is not None and record.get("verdict") == "PASS" and record.get("suite") == suite
                        and record.get("cache_key") == key and not is_dirty(record)):
                    found = record
        return found

    return _read(cfg, "running the suite", lookup)


def recent(cfg: Any, *, branch: str, suite: str, limit: int = 20) -> list[dict[str, Any]]:
    """Pointer summaries of the newest `limit` records of `suite` on `branch`, oldest first (for the trend)."""
    pointers = _read(cfg, "no trend", lambda st: st.recent(st.branch_prefix(branch, suite), limit), default=[])
    return list(reversed(pointers))
