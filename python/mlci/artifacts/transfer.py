"""Verified, resumable, parallel downloads from S3 into the cache.

Each object is fetched into `partial/<algo>-<digest>.part` and renamed into the cache only when its digest
matches; a mismatch is quarantined and reported (expected vs actual, URI), so it never reaches DEST.

- Small objects (one part): one GET, hashed while streaming.
- Large objects: ranged GETs of `MLCI_PART_SIZE` bytes (default 16 MiB) run in parallel, hashed in byte
  order as they arrive: the part at the hash frontier hashes its chunks in-stream, bytes that arrived ahead
  of it are hashed back from the page cache when the frontier reaches them, so verification overlaps the
  transfer instead of following it. Completed parts are recorded in `<part>.json`: a pull that was killed
  resumes with the missing parts only (a changed ETag discards the partial file).
- Every request retries with exponential backoff on throttling, 5xx, timeouts and dropped, reset or refused
  connections, for up to `MLCI_S3_RETRY_SECONDS` (default 300) of wall time without progress: connect and read
  timeouts are cut to what is left of that budget, and botocore repeats nothing itself, so a stalled endpoint
  fails after the budget, not after several 60 s reads. A broken stream resumes at the byte it reached, so an
  S3 endpoint that dies mid-transfer and comes back still yields a complete, verified file. Missing objects,
  denied access and missing credentials fail at once.
- `cancel()` (Ctrl-C) stops every transfer at its next chunk or retry; worker threads are daemons, so a
  thread blocked on a silent socket cannot keep the process alive.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from .. import s3 as s3mod
from ..errors import UserError
from ..fsutil import read_json
from .cache import Cache, plain, write_hint
from .hashing import CHUNK, new_hash, update_from_file
from .pool import Cancelled, Pool

T = TypeVar("T")

RETRYABLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "RequestTimeout",
                   "InternalError", "ServiceUnavailable", "500", "502", "503", "504"}


@lru_cache(maxsize=1)
def _retryable_types() -> tuple[type[BaseException], ...]:
    """Transient transport failures: refused, reset or closed connections (botocore's ConnectionClosedError is
    an HTTPClientError, like its ReadTimeoutError), timeouts, streams cut short."""
    import botocore.exceptions
    import urllib3.exceptions

    return (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError,
            botocore.exceptions.IncompleteReadError, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def part_size() -> int:
    return max(1 << 20, int(os.environ.get("MLCI_PART_SIZE") or 16 << 20))


def retry_seconds() -> float:
    return float(os.environ.get("MLCI_S3_RETRY_SECONDS") or 300)


class IntegrityError(UserError):
    """Downloaded bytes do not match the dependency file: the object in S3 is not what was locked."""


@dataclass
class Fetched:
    path: Path
    hit: bool
    downloaded: int = 0
    resumed: int = 0


def retryable(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:  # botocore's ClientError
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in RETRYABLE_CODES or status >= 500 or status == 429
    return isinstance(exc, _retryable_types())


class Downloader:
    """Fetches objects into a Cache; thread-safe, one instance per pull."""

    missing_hint: str | None = None  # how to fix an object missing from S3 (e.g. `dvc push` for DVC's objects)

    def __init__(self, cache: Cache, jobs: int, on_bytes: Callable[[int], None] | None = None,
                 log: Callable[[str], None] | None = None):
        self.cache = cache
        self.jobs = max(1, jobs)
        self.on_bytes = on_bytes or (lambda n: None)
        self.log = log or (lambda msg: None)
        self.stop = threading.Event()
        self._parts: Pool | None = None
        self._lock = threading.Lock()

    def client(self, deadline: float | None = None) -> Any:
        """Created on first use (a warm pull never needs S3); its socket timeouts fit within `deadline`, counted
        after the first client exists (loading boto3 is not a request that can stall)."""
        first = s3mod.client(max_pool=2 * self.jobs + 4, max_attempts=1)
        if deadline is None:
            return first
        return s3mod.client(max_pool=2 * self.jobs + 4, max_attempts=1, timeout=deadline - time.monotonic())

    def close(self) -> None:
        if self._parts:
            self._parts.shutdown()

    def cancel(self) -> None:
        """Stop: no new request, no further chunk, no retry (Ctrl-C). In-flight threads notice within a chunk."""
        self.stop.set()
        if self._parts:
            self._parts.shutdown(cancel=True)

    def _part_pool(self) -> Pool:
        with self._lock:
            if self._parts is None:
                self._parts = Pool(self.jobs, "mlci-part")
            return self._parts

    def check(self) -> None:
        if self.stop.is_set():
            raise Cancelled()

    # --- retry policy ----------------------------------------------------------------------------------------
    def call(self, fn: Callable[[Any], T], uri: str, where: str | None, what: str = "object",
             deadline: float | None = None) -> T:
        """Run one S3 request `fn(client)` with backoff on transient failures until `deadline` (default: the
        retry budget from now); permanent ones, and transient ones past the deadline, become UserErrors."""
        deadline = deadline or time.monotonic() + retry_seconds()
        attempt = 0
        while True:
            self.check()
            try:
                return fn(self.client(deadline))
            except Exception as exc:  # noqa: BLE001 - classified below
                left = deadline - time.monotonic()
                if not retryable(exc) or left < 0.5:  # too little left for another attempt's timeouts
                    err = _located(s3mod.explain(exc, uri, what), where)
                    if self.missing_hint and _is_missing(exc):
                        err.hint = self.missing_hint
                    raise err from None
                attempt += 1
                delay = min(left, min(10.0, 0.2 * 2 ** min(attempt, 8)) * (0.5 + random.random() / 2))
                if attempt in (1, 4) or attempt % 10 == 0:
                    self.log(f"retrying {uri} in {delay:.1f}s after {type(exc).__name__}: {str(exc)[:120]}")
                if self.stop.wait(delay):
                    raise Cancelled() from None

    # --- entry point -------------------------------------------------------------------------------------------
    def ensure(self, algo: str, digest: str, uri: str, size: int | None, where: str | None) -> Fetched:
        """The verified cache path of an object, downloading it unless a verified copy is there.

        The per-object flock makes racing pulls (threads, processes, containers) download once: the others
        wait, then find the object committed."""
        cache = self.cache
        if cache.trusted(algo, digest):
            cache.touch(algo, digest)
            return Fetched(cache.object_path(algo, digest), hit=True)
        with cache.lock(algo, digest, on_wait=lambda: self.log(f"waiting: another pull is fetching {uri}")):
            if cache.check(algo, digest, uri):
                cache.touch(algo, digest)
                return Fetched(cache.object_path(algo, digest), hit=True)
            downloaded, resumed = self._download(algo, digest, uri, size, where)
            return Fetched(cache.object_path(algo, digest), hit=False, downloaded=downloaded, resumed=resumed)

    def _download(self, algo: str, digest: str, uri: str, expected_size: int | None,
                  where: str | None) -> tuple[int, int]:
        bucket, key = s3mod.parse_uri(uri)
        part = self.cache.partial_path(algo, digest)
        if expected_size and not part.with_name(part.name + ".json").exists():
            size, etag = expected_size, None  # no HEAD round trip: the GETs' Content-Range checks the size
        else:
            head = self.call(lambda s3: s3.head_object(Bucket=bucket, Key=key), uri, where)
            size, etag = int(head["ContentLength"]), str(head.get("ETag", ""))
        if expected_size is not None and size != expected_size:
            raise _size_error(uri, size, expected_size, where)
        for attempt in (1, 2):
            actual, resumed = self.transfer(bucket, key, size, etag, part, algo, uri, where)
            if actual == plain(digest):
                self.cache.commit(part, algo, digest)
                return size - resumed, resumed
            if resumed and attempt == 1:  # a resumed partial may hold bytes lost in a crash: retry clean
                self.log(f"{uri}: resumed download did not verify; downloading it again from scratch")
                part.unlink()
                continue
            break
        q = self.cache.quarantine(part, algo, digest, actual, uri, "digest mismatch on download")
        raise IntegrityError(
            f"{algo} mismatch for {uri}: expected {plain(digest)}, got {actual} (quarantined as {q})",
            where=where,
            hint="the object in S3 is not the one the dependency file names: re-upload it "
            "(`mlci models add FILE` / `dvc push`) or fix the entry",
        )

    def fetch_unknown(self, uri: str, where: str | None) -> tuple[str, Fetched]:
        """Fetch an object whose digest nobody recorded (a dataset without `sha256`): the sha256 computed
        while streaming becomes its cache key; `uris/` maps (URI, ETag, size) to it so a second fetch of an
        unchanged object costs one HEAD request."""
        import hashlib

        bucket, key = s3mod.parse_uri(uri)
        head = self.call(lambda s3: s3.head_object(Bucket=bucket, Key=key), uri, where)
        size, etag = int(head["ContentLength"]), str(head.get("ETag", ""))
        ukey = hashlib.sha256(uri.encode()).hexdigest()[:40]
        index = self.cache.root / "uris" / f"{ukey}.json"
        with self.cache.lock("uri", ukey):
            try:
                known = json.loads(index.read_text())
            except (FileNotFoundError, ValueError):
                known = {}
            if known.get("etag") == etag and known.get("size") == size and known.get("sha256"):
                sha = str(known["sha256"])
                if self.cache.check("sha256", sha, uri):
                    self.cache.touch("sha256", sha)
                    return sha, Fetched(self.cache.object_path("sha256", sha), hit=True)
            part = self.cache.root / "partial" / f"uri-{ukey}.part"
            sha, resumed = self.transfer(bucket, key, size, etag, part, "sha256", uri, where)
            with self.cache.lock("sha256", sha):
                if self.cache.check("sha256", sha, uri):
                    part.unlink()
                else:
                    self.cache.commit(part, "sha256", sha)
            write_hint(index, json.dumps({"uri": uri, "etag": etag, "size": size, "sha256": sha}))
            return sha, Fetched(self.cache.object_path("sha256", sha), hit=False, downloaded=size - resumed,
                                resumed=resumed)

    def transfer(self, bucket: str, key: str, size: int, etag: str | None, part: Path, algo: str, uri: str,
                 where: str | None) -> tuple[str, int]:
        """Download into `part` (resuming recorded parts); returns (hex digest of the file, bytes resumed)."""
        meta = part.with_name(part.name + ".json")
        part.parent.mkdir(parents=True, exist_ok=True)
        psize = part_size()
        done = self._resume_state(part, meta, size, etag, psize)
        resumed = sum(_part_len(i, psize, size) for i in done)
        if resumed:
            self.log(f"resuming {uri}: {resumed} of {size} bytes already here")
        h = new_hash(algo)
        job = _Job(size, etag, uri, where)
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            nparts = max(1, math.ceil(size / psize))
            if nparts == 1:
                if size:
                    self._get_range(bucket, key, 0, size, fd, h, job)
            else:
                self._get_parts(bucket, key, psize, nparts, done, fd, h, part, meta, job)
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()
        return h.hexdigest(), resumed

    def _resume_state(self, part: Path, meta: Path, size: int, etag: str | None, psize: int) -> set[int]:
        try:
            state = read_json(meta)
        except (FileNotFoundError, ValueError):
            state = None
        if (etag and isinstance(state, dict) and state.get("size") == size and state.get("etag") == etag
                and state.get("part_size") == psize and part.exists()):
            return {int(i) for i in state.get("done", [])}
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        return set()

    def _get_parts(self, bucket: str, key: str, psize: int, nparts: int, done: set[int], fd: int,
                   h: Any, part: Path, meta: Path, job: _Job) -> None:
        """Ranged GETs in parallel; the digest is computed in byte order as the bytes arrive.

        The part at the hash frontier feeds its chunks straight into the hash as it streams; bytes that
        arrive ahead of the frontier are written only, and this (the file's) thread hashes them back from the
        page cache once every earlier byte is hashed. So verification finishes moments after the last byte."""
        pool = self._part_pool()
        size = job.size
        state_lock = threading.Lock()
        finished = set(done)
        frontier = _Frontier(h)

        def fetch(i: int) -> None:
            start = i * psize
            self._get_range(bucket, key, start, start + _part_len(i, psize, size), fd, None, job, frontier.offer)
            with state_lock:
                finished.add(i)
                write_hint(meta, json.dumps({"size": size, "etag": job.etag, "part_size": psize,
                                             "done": sorted(finished)}))

        futures: dict[int, Future[None]] = {i: pool.submit(fetch, i) for i in range(nparts) if i not in done}
        try:
            for i in range(nparts):
                if i in futures:
                    futures[i].result()
                frontier.catch_up(part, i * psize + _part_len(i, psize, size))
        except BaseException:
            for f in futures.values():
                f.cancel()
            if not self.stop.is_set():  # a failed part: let the others stop writing before the caller moves on
                for f in futures.values():
                    with contextlib.suppress(BaseException):
                        f.result()
            raise

    def _get_range(self, bucket: str, key: str, start: int, end: int, fd: int, h: Any, job: _Job,
                   on_chunk: Callable[[int, bytes], None] | None = None) -> None:
        """Bytes [start, end) into fd at their offset (hashing them when `h` is given); a dropped stream
        resumes at the byte it reached. Each response's total size is checked against the expected size. The
        retry budget runs from the last byte received: a stream that stalls fails after it, however it stalls."""
        uri, where = job.uri, job.where
        pos, stalls = start, 0
        deadline = time.monotonic() + retry_seconds()
        while pos < end:
            if stalls > 20:
                raise UserError(f"{uri}: the server keeps ending the transfer at byte {pos} of {end}",
                                where=where, hint="check the S3 endpoint; the object may be truncated")
            stalls, before = stalls + 1, pos
            whole = pos == 0 and start == 0 and h is not None
            kwargs = {} if whole else {"Range": f"bytes={pos}-{end - 1}"}
            resp = self.call(lambda s3, kw=kwargs: s3.get_object(Bucket=bucket, Key=key, **kw), uri, where,
                             deadline=deadline)
            job.check(resp)
            body = resp["Body"]
            try:
                while pos < end:
                    self.check()
                    chunk = body.read(min(CHUNK, end - pos))
                    if not chunk:
                        break
                    os.pwrite(fd, chunk, pos)
                    if h is not None:
                        h.update(chunk)
                    elif on_chunk is not None:
                        on_chunk(pos, chunk)
                    pos += len(chunk)
                    deadline = time.monotonic() + retry_seconds()
                    self.on_bytes(len(chunk))
            except Exception as exc:  # noqa: BLE001
                if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
                    raise  # a local write error (disk full): reported as such by the caller
                if not retryable(exc) or time.monotonic() >= deadline:
                    raise _located(s3mod.explain(exc, uri), where) from None
                self.log(f"connection dropped while reading {uri} at byte {pos}; resuming")
                if self.stop.wait(0.2):
                    raise Cancelled() from None
            finally:
                body.close()
            if pos > before:
                stalls = 0


class _Frontier:
    """A digest fed strictly in byte order by several threads: whoever holds the next bytes hashes them."""

    def __init__(self, h: Any):
        self.h = h
        self.hashed = 0  # every byte before this offset is in the digest
        self.lock = threading.Lock()

    def offer(self, pos: int, chunk: bytes) -> None:
        """A chunk just written at `pos`: hash it now if it is next in order (never wait for the lock)."""
        if self.hashed == pos and self.lock.acquire(blocking=False):
            try:
                if self.hashed == pos:
                    self.h.update(chunk)
                    self.hashed += len(chunk)
            finally:
                self.lock.release()

    def catch_up(self, path: Path, end: int) -> None:
        """All bytes before `end` are on disk: hash whatever of them the streams did not."""
        with self.lock:
            if self.hashed < end:
                self.hashed += update_from_file(self.h, path, self.hashed, end - self.hashed)


@dataclass
class _Job:
    """One object being transferred: its expected size and the ETag seen (recorded for resuming)."""

    size: int
    etag: str | None
    uri: str
    where: str | None

    def check(self, resp: dict[str, Any]) -> None:
        content_range = resp.get("ContentRange")
        total = int(content_range.rsplit("/", 1)[1]) if content_range else int(resp.get("ContentLength", -1))
        if total != self.size:
            raise _size_error(self.uri, total, self.size, self.where)
        if self.etag is None:
            self.etag = str(resp.get("ETag", ""))


def _is_missing(exc: BaseException) -> bool:
    """An S3 'no such object' answer (HEAD gives a bare 404, GET a NoSuchKey)."""
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


def _size_error(uri: str, size: int, expected: int, where: str | None) -> IntegrityError:
    return IntegrityError(f"{uri} is {size} bytes but the dependency file says {expected}", where=where,
                          hint="the object was overwritten or the entry is stale: re-add the file "
                          "(`mlci models add` / `dvc push`) and commit the dependency file")


def _part_len(i: int, psize: int, size: int) -> int:
    return max(0, min(psize, size - i * psize))


def _located(err: UserError, where: str | None) -> UserError:
    if where and not err.where:
        err.where = where
    return err
