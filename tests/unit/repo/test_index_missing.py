"""IndexCache.missing answers the same with its all-present shortcut; the in-flight bloom keeps its bits.

In: a temporary index cache with indexed and header-only (recovered) blobs. Out: assertions on the sets.
"""
from __future__ import annotations

import os

from ragbackup.repo.index import IndexCache
from ragbackup.repo.inflight import Bloom
from ragbackup.repo.packs import BlobLocation


def _loc(i: bytes) -> BlobLocation:
    return BlobLocation(i, 0, 0, 0, 10, 10)


def test_missing_with_all_some_none_and_repeated_ids_present(tmp_path):
    idx = IndexCache(str(tmp_path / "index.sqlite"))
    stored = [os.urandom(32) for _ in range(1200)]
    absent = [os.urandom(32) for _ in range(30)]
    idx.add_index_file("i1", [("p1", 100, [_loc(i) for i in stored])])

    assert idx.missing(stored) == set()
    assert idx.missing(stored + stored[:10]) == set()  # repeats count once
    mixed = stored[:700] + absent[:3] + stored[700:] + absent[3:]
    assert idx.missing(mixed) == set(absent)
    assert idx.missing(absent + absent) == set(absent)
    assert idx.missing([]) == set()


def test_a_blob_only_in_a_recovered_pack_is_still_missing(tmp_path):
    idx = IndexCache(str(tmp_path / "index.sqlite"))
    indexed = [os.urandom(32) for _ in range(600)]
    recovered = [os.urandom(32) for _ in range(5)]
    idx.add_index_file("i1", [("p1", 100, [_loc(i) for i in indexed])])
    idx.add_recovered_pack("p2", 100, [_loc(i) for i in recovered])

    assert idx.missing(indexed) == set()
    assert idx.missing(indexed + recovered) == set(recovered)


def test_bloom_sets_the_bits_of_the_ids_first_four_words():
    bloom = Bloom(1024)
    ids = [os.urandom(32) for _ in range(50)]
    bloom.add_many(ids[:25])
    for i in ids[25:]:
        bloom.add(i)
    mask = 1024 * 8 - 1
    expected = bytearray(1024)
    for i in ids:
        for k in range(4):
            p = int.from_bytes(i[4 * k:4 * k + 4], "little") & mask
            expected[p >> 3] |= 1 << (p & 7)
    assert bytes(bloom._bits) == bytes(expected)
    assert all(i in bloom for i in ids)
