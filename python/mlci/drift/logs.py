"""Production request/prediction logs from S3: the objects of a time window, read in parallel, sampled.

Layout: any objects under the prefix whose key has a date partition `dt=YYYY-MM-DD/` (or `date=`); JSON lines
or CSV, optionally gzip-compressed. The window covers whole days: `7d` ending on `until` (default today, UTC)
reads the partitions of the 7 days until then; `36h` reads the days it overlaps.

Sampling: when the window holds more rows than the cap, a uniform sample without replacement is kept by
bottom-k selection: each row gets a pseudo-random key seeded by (seed, object key, row index) and the cap
smallest keys win. The sample is therefore the same whatever order the parallel downloads finish in, and a
rerun of the same check reads the same rows.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import s3
from ..errors import UserError
from ..progress import Progress, human_bytes
from ..units import parse_duration
from .table import Columns, flatten, parse_csv, rows_to_columns

PARTITION = re.compile(r"(?:^|/)(?:dt|date)=(\d{4}-\d{2}-\d{2})(?:/|$)")
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
MAX_BAD_SHARE = 0.01


@dataclass
class LogObject:
    key: str
    size: int
    day: dt.date


@dataclass
class LogSample:
    """The sampled rows as columns, and what was read (for drift.json)."""

    columns: Columns
    info: dict[str, Any] = field(default_factory=dict)


def parse_window(text: str) -> dt.timedelta:
    return parse_duration(text, "window")


def window_days(window: dt.timedelta, until: dt.datetime) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) to read: `Nd` is the N daily partitions ending on until's day; a window in
    hours reads every day it overlaps (partitions are whole days, so the edges are not trimmed)."""
    if window % dt.timedelta(days=1) == dt.timedelta(0):
        return until.date() - (window - dt.timedelta(days=1)), until.date()
    return (until - window).date(), until.date()


def object_format(key: str, fmt: str) -> str | None:
    if fmt != "auto":
        return fmt
    name = key[:-3] if key.endswith(".gz") else key
    for ext, kind in FORMATS.items():
        if name.endswith(ext):
            return kind
    return None


def list_window(uri: str, first: dt.date, last: dt.date) -> tuple[list[LogObject], int]:
    """Objects in the window, and how many objects under the prefix had a date partition at all."""
    bucket, prefix = s3.parse_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    found, dated = [], 0
    try:
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                m = PARTITION.search(obj["Key"][len(prefix):])
                if not m:
                    continue
                dated += 1
                try:
                    day = dt.date.fromisoformat(m.group(1))
                except ValueError:
                    continue
                if first <= day <= last and obj["Size"] > 0 and not obj["Key"].endswith("/"):
                    found.append(LogObject(obj["Key"], int(obj["Size"]), day))
    except Exception as exc:  # boto3 raises many types; explain() maps them to a fix
        raise s3.explain(exc, uri, "log prefix") from None
    return sorted(found, key=lambda o: o.key), dated


def _read_object(bucket: str, obj: LogObject, fmt: str) -> tuple[str, list[Any], list[str]]:
    """Download one object: ("jsonl", its non-empty lines, []) unparsed -- only the lines that can still enter
    the sample get parsed -- or ("csv", parsed rows, errors), or ("skip", [], [why])."""
    uri = f"s3://{bucket}/{obj.key}"
    kind = object_format(obj.key, fmt)
    if kind is None:
        return "skip", [], [f"{uri}: unknown format (not .jsonl/.json/.ndjson/.csv[.gz]); skipped"]
    try:
        body = s3.client().get_object(Bucket=bucket, Key=obj.key)["Body"].read()
    except Exception as exc:
        raise s3.explain(exc, uri, "log object") from None
    if obj.key.endswith(".gz"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise UserError(f"{uri} is not valid gzip: {exc}") from None
    text = body.decode("utf-8", errors="replace")
    if kind == "jsonl":
        return "jsonl", [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()], []
    rows, errors = parse_csv(text, uri)
    return "csv", rows, errors


def _parse_lines(lines: list[tuple[int, str]], where: str) -> tuple[list[dict[str, Any]], list[bool], list[str]]:
    """Parse chosen JSON lines: (rows, ok flag per line, error messages)."""
    rows, ok, errors = [], [], []
    for number, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            record, why = None, f"not JSON ({exc.msg})"
        else:
            why = "" if isinstance(record, dict) else f"a JSON {type(record).__name__}, not an object"
        if why:
            ok.append(False)
            errors.append(f"{where}:{number}: {why}")
        else:
            ok.append(True)
            rows.append(flatten(record))
    return rows, ok, errors


class _BottomK:
    """Uniform sample without replacement of at most `cap` rows: keep the rows with the smallest random keys.
    Once full, a row whose key is above the largest kept key can never enter, so it is not even parsed."""

    def __init__(self, cap: int):
        self.cap = cap
        self.keys = np.empty(0)
        self.rows: list[dict[str, Any]] = []

    def candidates(self, keys: np.ndarray) -> np.ndarray:
        if len(self.rows) < self.cap:
            return np.arange(keys.size)
        return np.flatnonzero(keys < self.keys.max())

    def add(self, keys: np.ndarray, rows: list[dict[str, Any]]) -> None:
        all_keys = np.concatenate([self.keys, keys])
        all_rows = self.rows + rows
        if len(all_rows) > self.cap:
            keep = np.sort(np.argpartition(all_keys, self.cap - 1)[: self.cap])
            self.keys, self.rows = all_keys[keep], [all_rows[i] for i in keep]
        else:
            self.keys, self.rows = all_keys, all_rows


def read_window(uri: str, window: str, *, fmt: str = "auto", cap: int = 50000, seed: int = 0,
                until: dt.datetime | None = None, jobs: int = 8) -> LogSample:
    """Read (a uniform sample of at most `cap` rows of) the logs of the window ending at `until`.

    Downloads run `jobs` at a time with at most 2 x jobs objects in memory; rows are merged in object order.
    """
    until = until or dt.datetime.now(dt.timezone.utc)
    first, last = window_days(parse_window(window), until)
    bucket, _ = s3.parse_uri(uri)
    objects, dated = list_window(uri, first, last)
    if not objects:
        if dated == 0:
            raise UserError(f"no date-partitioned logs under {uri}",
                            hint="write logs under <prefix>/dt=YYYY-MM-DD/ (JSON lines or CSV) or fix drift.logs")
        raise UserError(f"no logs under {uri} for {first}..{last} (window {window})",
                        hint="is the service logging? widen drift.window or check the prefix")
    total_bytes = sum(o.size for o in objects)
    progress = Progress(len(objects), "drift logs")
    sample = _BottomK(cap)
    counts = {"rows": 0, "parsed": 0, "bad": 0}
    problems: list[str] = []

    def merge(obj: LogObject, result: tuple[str, list[Any], list[str]]) -> None:
        kind, items, errors = result
        problems.extend(errors)
        where = f"s3://{bucket}/{obj.key}"
        rng = np.random.default_rng([seed, zlib.crc32(obj.key.encode())])
        keys = rng.random(len(items))
        chosen = sample.candidates(keys)
        if kind == "jsonl":
            rows, ok, errors = _parse_lines([items[i] for i in chosen], where)
            problems.extend(errors)
            counts["parsed"] += len(ok)
            counts["bad"] += len(ok) - len(rows)
            sample.add(keys[chosen][np.asarray(ok, dtype=bool)], rows)
            counts["rows"] += len(items)
        else:
            counts["parsed"] += len(items) + len(errors)
            counts["bad"] += len(errors)
            sample.add(keys[chosen], [items[i] for i in chosen])
            counts["rows"] += len(items)
        progress.advance(1, f"{obj.key} ({human_bytes(obj.size)}, {len(items)} rows)")

    workers = max(1, min(jobs, len(objects)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[LogObject, Future[tuple[str, list[Any], list[str]]]]] = deque()
        for obj in objects:
            pending.append((obj, pool.submit(_read_object, bucket, obj, fmt)))
            if len(pending) >= 2 * workers:
                done, fut = pending.popleft()
                merge(done, fut.result())
        while pending:
            done, fut = pending.popleft()
            merge(done, fut.result())
    # the parsed lines are a uniform subset of all lines, so their bad share estimates the window's
    if counts["parsed"] and counts["bad"] / counts["parsed"] > MAX_BAD_SHARE:
        first_bad = next(p for p in problems if "skipped" not in p)
        raise UserError(f"{counts['bad']} of {counts['parsed']} log records checked are malformed; first: {first_bad}",
                        hint="the logs must be JSON objects one per line, or CSV with a header")
    for p in problems[:5]:
        progress.log(p)
    rows_read = counts["rows"]
    progress.close(f"{len(objects)} object(s), {human_bytes(total_bytes)}, {rows_read} rows, kept {len(sample.rows)}")
    info = {
        "prefix": uri, "window": window, "from": first.isoformat(), "to": last.isoformat(),
        "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "objects": len(objects), "bytes": total_bytes,
        "rows_read": rows_read, "rows_used": len(sample.rows), "sampled": rows_read > cap, "cap": cap,
        "rows_parsed": counts["parsed"], "malformed": counts["bad"], "seed": seed,
    }
    return LogSample(rows_to_columns(sample.rows), info)
