"""IndexCache.packs_of: the packs holding a set of blobs, and the blobs no index names, across batches.

In: a temporary index cache with blobs in three packs, one of them known only from its header
(recovered). Out: assertions on the pack names and the unindexed ids.
"""
from __future__ import annotations

import os

from ragbackup.repo.index import IndexCache
from ragbackup.repo.packs import BlobLocation


def _loc(i: bytes) -> BlobLocation:
    return BlobLocation(i, 0, 0, 0, 10, 10)


def test_packs_of_names_each_pack_once_and_reports_unindexed_ids(tmp_path):
    idx = IndexCache(str(tmp_path / "index.sqlite"))
    a = [os.urandom(32) for _ in range(900)]
    b = [os.urandom(32) for _ in range(300)]
    unknown = [os.urandom(32) for _ in range(7)]
    idx.add_index_file("i1", [("pa", 100, [_loc(i) for i in a]), ("pb", 100, [_loc(i) for i in b])])

    assert idx.packs_of(a) == ({"pa"}, set())
    assert idx.packs_of(a[:600] + b[:1] + a[600:] + a[:50]) == ({"pa", "pb"}, set())  # repeats, across batches
    assert idx.packs_of(b + unknown[:3] + a + unknown[3:]) == ({"pa", "pb"}, set(unknown))
    assert idx.packs_of(unknown) == (set(), set(unknown))
    assert idx.packs_of([]) == (set(), set())


def test_packs_of_finds_a_recovered_pack(tmp_path):
    idx = IndexCache(str(tmp_path / "index.sqlite"))
    recovered = [os.urandom(32) for _ in range(5)]
    idx.add_recovered_pack("pr", 100, [_loc(i) for i in recovered])
    assert idx.packs_of(recovered) == ({"pr"}, set())


def test_a_reader_sees_what_was_committed_and_cannot_write(tmp_path):
    import sqlite3

    import pytest

    idx = IndexCache(str(tmp_path / "a dir with spaces" / "index.sqlite"))
    a = [os.urandom(32) for _ in range(700)]
    idx.add_index_file("i1", [("pa", 100, [_loc(i) for i in a[:650]]), ("pb", 100, [_loc(i) for i in a[650:]])])
    with idx.reader() as r:
        unknown = os.urandom(32)
        found = r.pack_of_each(a + [unknown])
        assert found == {**{i: "pa" for i in a[:650]}, **{i: "pb" for i in a[650:]}}
        idx.add_index_file("i2", [("pc", 100, [_loc(unknown)])])  # the writer is not held back by the reader
        assert r.pack_of_each([unknown]) == {unknown: "pc"}
        with pytest.raises(sqlite3.OperationalError):
            r._db.execute("DELETE FROM blobs")
    assert idx.pack_of_each([unknown, a[0]]) == {unknown: "pc", a[0]: "pa"}
