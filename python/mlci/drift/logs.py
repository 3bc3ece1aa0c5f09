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
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import s3
from ..errors import UserError
from ..progress import Progress, human_bytes
from .table import Columns, parse_csv, parse_jsonl, rows_to_columns

PARTITION = re.compile(r"(?:^|/)(?:dt|date)=(\d{4}-\d{2}-\d{2})(?:/|$)")
WINDOW = re.compile(r"([1-9][0-9]*)([hd])")
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
    m = WINDOW.fullmatch(text.strip())
    if not m:
        raise UserError(f"window '{text}' is not valid", hint="write a number and h or d, e.g. 7d or 36h")
    n = int(m.group(1))
    return dt.timedelta(days=n) if m.group(2) == "d" else dt.timedelta(hours=n)


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


def _read_object(bucket: str, obj: LogObject, fmt: str) -> tuple[list[dict[str, Any]], list[str]]:
    uri = f"s3://{bucket}/{obj.key}"
    kind = object_format(obj.key, fmt)
    if kind is None:
        return [], [f"{uri}: unknown format (not .jsonl/.json/.ndjson/.csv[.gz]); skipped"]
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
    return parse_jsonl(text, uri) if kind == "jsonl" else parse_csv(text, uri)


def read_window(uri: str, window: str, *, fmt: str = "auto", cap: int = 50000, seed: int = 0,
                until: dt.datetime | None = None, jobs: int = 8) -> LogSample:
    """Read (a uniform sample of at most `cap` rows of) the logs of the window ending at `until`."""
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
    keys_kept = np.empty(0)
    rows_kept: list[dict[str, Any]] = []
    rows_read = 0
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(objects)))) as pool:
        for obj, (rows, errors) in zip(objects, pool.map(lambda o: _read_object(bucket, o, fmt), objects), strict=True):
            problems.extend(errors)
            rows_read += len(rows)
            rng = np.random.default_rng([seed, zlib.crc32(obj.key.encode())])
            keys = np.concatenate([keys_kept, rng.random(len(rows))])
            rows_all = rows_kept + rows
            if len(rows_all) > cap:
                keep = np.sort(np.argpartition(keys, cap - 1)[:cap])
                keys_kept = keys[keep]
                rows_kept = [rows_all[i] for i in keep]
            else:
                keys_kept, rows_kept = keys, rows_all
            progress.advance(1, f"{obj.key} ({human_bytes(obj.size)}, {len(rows)} rows)")
    bad = sum(1 for p in problems if "skipped" not in p)
    if rows_read + bad and bad / (rows_read + bad) > MAX_BAD_SHARE:
        raise UserError(f"{bad} malformed log record(s) in the window; first: {problems[0]}",
                        hint="the logs must be JSON objects one per line, or CSV with a header")
    for p in problems[:5]:
        progress.log(p)
    progress.close(f"{len(objects)} object(s), {human_bytes(total_bytes)}, {rows_read} rows, kept {len(rows_kept)}")
    info = {
        "prefix": uri, "window": window, "from": first.isoformat(), "to": last.isoformat(),
        "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "objects": len(objects), "bytes": total_bytes,
        "rows_read": rows_read, "rows_used": len(rows_kept), "sampled": rows_read > cap, "cap": cap,
        "malformed": bad, "seed": seed,
    }
    return LogSample(rows_to_columns(rows_kept), info)
