"""`mlci cache gc` against a real cache filled from the real S3 server: least recently used objects go first,
recently used ones and ones a pull is holding stay, files already placed in a DEST are untouched, and a pull
that loses an object to gc between finding and placing it fetches it again."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mlci.artifacts import api, gc
from mlci.artifacts.cache import Cache, stamp_file
from mlci.config import load_config

from .conftest import mlci, write_repo

DAY = 86400.0


def _obj(digest: str, size: int, age_days: float, now: float = 1e9) -> gc.CachedObject:
    return gc.CachedObject("sha256", digest, size, now - age_days * DAY)


def test_choose_is_lru_within_the_limit_and_spares_recent_objects():
    objs = [_obj("a", 100, 10), _obj("b", 200, 5), _obj("c", 300, 0.5), _obj("d", 50, 40)]
    evict, spared = gc.choose(objs, now=1e9, max_bytes=350, older_than=None, keep_recent=DAY)
    assert [o.digest for o in evict] == ["d", "a", "b"] and spared == []  # 650 -> 300: oldest first
    evict, spared = gc.choose(objs, now=1e9, max_bytes=100, older_than=None, keep_recent=DAY)
    assert [o.digest for o in evict] == ["d", "a", "b"] and [o.digest for o in spared] == ["c"]
    evict, _ = gc.choose(objs, now=1e9, max_bytes=None, older_than=7 * DAY, keep_recent=DAY)
    assert [o.digest for o in evict] == ["d", "a"]  # unused for over a week, whatever the size
    assert gc.choose(objs, now=1e9, max_bytes=10_000, older_than=None, keep_recent=DAY) == ([], [])
    evict, _ = gc.choose(objs, now=1e9, max_bytes=0, older_than=None, keep_recent=60 * DAY)
    assert evict == []  # everything was used recently enough


def _age(cache: Cache, digest: str, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(stamp_file(cache.object_path("sha256", digest)), (t, t))


@pytest.fixture()
def filled(tmp_path: Path, s3_bucket: str):
    """Three models added (so in S3 and in the cache) and pulled into DEST; last used 10 days, 5 days and
    2 hours ago."""
    repo = write_repo(tmp_path / "repo", s3_bucket, tmp_path / "cache")
    cfg = load_config(repo / "ml-ci.yaml")
    src = tmp_path / "src"
    src.mkdir()
    blobs = {"a.bin": os.urandom(100_000), "b.bin": os.urandom(200_000), "c.bin": os.urandom(300_000)}
    for name, data in blobs.items():
        (src / name).write_bytes(data)
    entries = {e.path: e for e in api.add_models(cfg, [str(src / n) for n in blobs])}
    assert api.pull_models(cfg)["cache_hits"] == 3
    cache = Cache(tmp_path / "cache")
    for name, days in (("a.bin", 10), ("b.bin", 5), ("c.bin", 2 / 24)):
        _age(cache, entries[name].digest, days)
    return repo, cfg, cache, blobs, {n: e.digest for n, e in entries.items()}


def test_gc_evicts_least_recently_used_and_leaves_dest_alone(tmp_path: Path, filled):
    repo, cfg, cache, blobs, digests = filled
    cache_arg = ("--cache", str(cache.root))
    dry = mlci(repo, "cache", "gc", "--max-size", "350K", "--dry-run", "--json", *cache_arg)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["evicted_objects"] == [f"sha256:{digests['a.bin']}", f"sha256:{digests['b.bin']}"]
    assert all(cache.object_path("sha256", d).exists() for d in digests.values())  # dry run removed nothing

    proc = mlci(repo, "cache", "gc", "--max-size", "350K", *cache_arg)
    assert proc.returncode == 0, proc.stderr
    assert "evicted 2 objects (293.0 KB), kept 1 (293.0 KB)" in proc.stderr
    assert not cache.object_path("sha256", digests["a.bin"]).exists()
    assert not stamp_file(cache.object_path("sha256", digests["b.bin"])).exists()
    assert cache.object_path("sha256", digests["c.bin"]).exists()

    for name, data in blobs.items():  # DEST holds hardlinks: evicting the cache entry never touches them
        assert (repo / "models" / name).read_bytes() == data
    warm = api.pull_models(cfg)
    assert warm["unchanged"] == 3 and warm["downloaded_files"] == 0
    fresh = api.pull_models(cfg, dest=str(tmp_path / "dest2"))
    assert fresh["downloaded_files"] == 2 and fresh["cache_hits"] == 1
    assert all((tmp_path / "dest2" / n).read_bytes() == d for n, d in blobs.items())


def test_gc_spares_recent_and_busy_objects_and_cleans_stale_files(tmp_path: Path, filled):
    repo, cfg, cache, blobs, digests = filled
    stale = time.time() - 8 * DAY
    (cache.root / "partial").mkdir(exist_ok=True)
    for name in ("old.part", "old.part.json", "new.part"):
        (cache.root / "partial" / name).write_bytes(b"x")
    for name in ("old.part", "old.part.json"):
        os.utime(cache.root / "partial" / name, (stale, stale))
    api.pull_models(cfg, dest=str(tmp_path / "gone"))
    (tmp_path / "gone").rename(tmp_path / "moved")  # its dest stamps now describe nothing
    for name, days in (("a.bin", 10), ("b.bin", 5)):  # that pull was a use: make a and b old again
        _age(cache, digests[name], days)

    with cache.lock("sha256", digests["a.bin"]):  # a pull is working on `a`
        summary = gc.collect(cache, max_bytes=0, older_than=None, keep_recent=DAY, stale_after=7 * DAY)
    assert summary["evicted_objects"] == [f"sha256:{digests['b.bin']}"]
    assert summary["busy"] == 1 and summary["recent_over_limit"] == 1  # a held by the pull; c used 2 h ago
    assert summary["stale_partial"] == 2 and sorted(os.listdir(cache.root / "partial")) == ["new.part"]
    assert summary["forgotten_dests"] == 1
    assert cache.object_path("sha256", digests["a.bin"]).exists()
    assert cache.object_path("sha256", digests["c.bin"]).exists()


def test_every_use_refreshes_the_last_use(filled):
    repo, cfg, cache, blobs, digests = filled
    before = time.time() - 60
    api.pull_models(cfg)  # a warm pull: DEST unchanged, nothing read from the cache, but still a use
    for digest in digests.values():
        assert stamp_file(cache.object_path("sha256", digest)).stat().st_mtime > before
    assert gc.collect(cache, max_bytes=0, older_than=None, keep_recent=DAY, stale_after=7 * DAY)["evicted"] == 0


def test_pull_refetches_an_object_evicted_between_ensure_and_place(tmp_path: Path, filled, monkeypatch):
    repo, cfg, cache, blobs, digests = filled
    real_place, lost = api.place, []

    def evicted_first(obj: Path, target: Path, stop=None) -> None:
        if not lost:  # gc runs at the worst moment: after ensure() found the object, before place()
            lost.append(obj)
            obj.unlink()
            stamp_file(obj).unlink()
        real_place(obj, target, stop)

    monkeypatch.setattr(api, "place", evicted_first)
    summary = api.pull_models(cfg, dest=str(tmp_path / "dest3"), jobs=1)
    assert lost and summary["downloaded_files"] == 1 and summary["cache_hits"] == 2
    assert all((tmp_path / "dest3" / n).read_bytes() == d for n, d in blobs.items())


def test_sizes_and_durations():
    from mlci.units import parse_duration, parse_size

    assert [parse_size(t, "x") for t in ("50G", "500MB", "1.5TiB", "1024", "2 k")] == [
        50 << 30, 500 << 20, int(1.5 * (1 << 40)), 1024, 2048]
    assert parse_duration("36h", "x").total_seconds() == 36 * 3600 and parse_duration("7d", "x").days == 7


def test_gc_bad_input_exits_2(tmp_path: Path):
    for flag, value, msg in (("--max-size", "lots", "--max-size 'lots' is not valid"),
                             ("--older-than", "7 days", "--older-than '7 days' is not valid")):
        proc = mlci(tmp_path, "cache", "gc", flag, value, "--cache", str(tmp_path / "c"))
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr
