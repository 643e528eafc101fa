"""IndexCache.add_packs_from and index_packs: a copy's index cache filled from its source's in SQL,
and the packs a sealed index object names, read without a location per blob.

In: two temporary index caches (a source with blobs in three packs, a tier's copy, one of whose blobs
is known only from a recovered pack) and a sealed index object. Out: the copy's rows, packs and index
object names; IntegrityError for a pack the source lacks or a damaged object.
"""
from __future__ import annotations

import json
import os

import pytest
import zstandard

from ragbackup import errors
from ragbackup.repo.crypto import Cipher, MasterKey
from ragbackup.repo.index import INDEX_AAD, IndexCache, encode_index, index_packs
from ragbackup.repo.packs import BlobLocation


def _locs(pack: str, n: int) -> list[BlobLocation]:
    return [BlobLocation(os.urandom(32), 0, 1, 8 + 20 * k, 20, 30, pack) for k in range(n)]


@pytest.fixture
def caches(tmp_path):
    src, dst = IndexCache(str(tmp_path / "src" / "index.sqlite")), IndexCache(str(tmp_path / "dst" / "index.sqlite"))
    packs = {p: _locs(p, n) for p, n in (("pa", 700), ("pb", 3), ("pc", 5))}
    src.add_index_file("i1", [(p, 1000 + len(locs), locs) for p, locs in packs.items()])
    yield src, dst, packs
    src.close()
    dst.close()


def test_rows_packs_and_the_object_name_are_copied(caches):
    src, dst, packs = caches
    dst.add_packs_from(src, "i1", ["pa", "pb"])
    assert dst.blobs_in_pack("pa") and sorted(dst.blobs_in_pack("pa"), key=lambda b: b.id) == sorted(
        src.blobs_in_pack("pa"), key=lambda b: b.id)
    assert len(dst.blobs_in_pack("pa")) == 700 and dst.blobs_in_pack("pc") == []
    assert dst.pack_index_files() == {"pa": "i1", "pb": "i1"} and dst.known_index_files() == {"i1"}
    assert dict(dst.packs()) == {"pa": 700 + 1000, "pb": 1003}
    assert dst.lookup(packs["pb"][1].id) == packs["pb"][1]
    assert dst.missing([packs["pa"][0].id, packs["pc"][0].id]) == {packs["pc"][0].id}


def test_an_indexed_copy_replaces_a_recovered_one(caches):
    src, dst, packs = caches
    blob = packs["pb"][0]
    dst.add_recovered_pack("px", 99, [BlobLocation(blob.id, 0, 1, 8, 20, 30, "px")])
    dst.add_packs_from(src, "i1", ["pb"])
    assert dst.lookup(blob.id).pack == "pb"


def test_a_pack_the_source_lacks_records_nothing(caches):
    src, dst, _ = caches
    with pytest.raises(errors.IntegrityError, match="not in the source"):
        dst.add_packs_from(src, "i2", ["pa", "nope"])
    assert dst.known_index_files() == set() and dst.totals() == (0, 0, 0)
    with pytest.raises(errors.RepositoryError):
        src.add_packs_from(src, "i1", ["pa"])


def test_index_packs_names_the_packs_and_sizes_of_a_sealed_object():
    cipher = Cipher(MasterKey.generate())
    pa, pb = os.urandom(32).hex(), os.urandom(32).hex()
    sealed = encode_index(cipher, [(pa, 10, _locs(pa, 3)), (pb, 20, [])])
    assert index_packs(cipher, "n", sealed) == [(pa, 10), (pb, 20)]
    other = cipher.seal(zstandard.compress(json.dumps({"version": 1, "packs": [
        {"id": pa, "size": 10, "blobs": []}]}).encode()), INDEX_AAD)  # another form (spaces): not read by pattern
    assert index_packs(cipher, "n", bytes(other)) is None
    with pytest.raises(errors.IntegrityError, match="index/n failed authentication"):
        index_packs(cipher, "n", sealed[:-1])
