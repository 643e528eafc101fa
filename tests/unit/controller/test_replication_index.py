"""A replicated pack's part size; index objects of a replicated snapshot: each names only packs
already on the tier, every pack reported is indexed once, and a failed write stops the copy.

In: pack ids reported to an IndexWriter whose copier's write_index is a recording stand-in (the
write order is what is tested, not S3). Out: the groups written.
"""
from __future__ import annotations

import threading

import pytest

from ragbackup import errors
from ragbackup.controller.replication import INDEX_MIN, INDEX_PACKS, MIN_PART, IndexWriter, pack_part_size

MiB = 1024 * 1024


@pytest.mark.parametrize("size,part", [
    (34 * MiB, 8.5 * MiB),  # a default pack: 4 equal parts
    (128 * MiB, 32 * MiB),
    (20 * MiB, MIN_PART),  # 8 + 8 + 4
    (6 * MiB, MIN_PART),  # one PUT (put_checked: at most part_size)
])
def test_pack_part_size(size, part):
    assert pack_part_size(size) == part


class Recorder:
    """The copier as IndexWriter sees it: a tier name and write_index, recorded."""

    def __init__(self, fail: bool = False) -> None:
        self.tier = type("T", (), {"name": "s3"})()
        self.written: list[tuple[str, ...]] = []
        self.headers: dict = {}  # the authenticated headers of streamed packs (none here)
        self.fail = fail
        self.lock = threading.Lock()

    def write_index(self, group: tuple[str, ...], headers: dict) -> None:
        if self.fail:
            raise errors.StorageUnavailable("S3 endpoint gone")
        with self.lock:
            self.written.append(group)


def test_each_reported_pack_is_indexed_once_and_no_object_is_too_large():
    rec = Recorder()
    w = IndexWriter(rec)
    reported = [f"p{i:04d}" for i in range(3 * INDEX_PACKS + 5)]
    try:
        for pid in reported + reported[:10]:  # reported twice: indexed once
            w.on_tier(pid)
        w.finish()
    finally:
        w.close()
    indexed = [p for group in rec.written for p in group]
    assert sorted(indexed) == reported
    assert all(len(g) <= INDEX_PACKS for g in rec.written)


def test_nothing_is_written_for_fewer_than_the_minimum_until_finish():
    rec = Recorder()
    w = IndexWriter(rec)
    try:
        for i in range(INDEX_MIN - 1):
            w.on_tier(f"p{i}")
        w.thread.join(0.3)
        assert rec.written == []  # waits for more packs while uploads go on
        w.finish()
        assert rec.written == [tuple(f"p{i}" for i in range(INDEX_MIN - 1))]
    finally:
        w.close()


def test_close_without_finish_writes_nothing_more():
    rec = Recorder()
    w = IndexWriter(rec)
    w.on_tier("p0")
    w.close()  # the copy was cut short: one pack on the tier, not indexed
    assert rec.written == []


def test_a_failed_write_stops_the_copy():
    w = IndexWriter(Recorder(fail=True))
    try:
        for i in range(INDEX_MIN):
            w.on_tier(f"p{i}")
        w.thread.join(5)
        with pytest.raises(errors.StorageUnavailable):
            w.on_tier("later")
        with pytest.raises(errors.StorageUnavailable):
            w.finish()
    finally:
        w.close()
