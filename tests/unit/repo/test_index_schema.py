"""The index cache's schema: packs named by number, and a cache of the earlier schema refilled.

In: a real local repository and its SQLite index cache. Out: a blob's pack is stored as the
pack's row number (a pack keeps its number when an index object names it again), every query
still answers with the pack's id; a cache written by the earlier schema (pack ids as text in
every blob row) is emptied when opened and filled again from storage by sync_index.
"""
from __future__ import annotations

import os
import sqlite3

from ragbackup.repo import chunking
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.index import IndexCache
from ragbackup.repo.packs import BLOB_DATA, BlobLocation
from ragbackup.repo.repository import Repository
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage.local import LocalStorage

PASS = Unlocker("passphrase", b"correct horse")

_EARLIER = """
CREATE TABLE blobs (id BLOB PRIMARY KEY, pack TEXT NOT NULL, type INT, flags INT,
    offset INT, length INT, raw_length INT) WITHOUT ROWID;
CREATE TABLE packs (id TEXT PRIMARY KEY, size INT, index_file TEXT) WITHOUT ROWID;
CREATE TABLE index_files (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INT) WITHOUT ROWID;
INSERT INTO blobs VALUES (x'00', 'stale', 0, 0, 0, 1, 1);
INSERT INTO packs VALUES ('stale', 10, 'gone');
INSERT INTO index_files VALUES ('gone');
"""


def _loc(i: int, pack: str = "") -> BlobLocation:
    return BlobLocation(bytes([i]) * 32, BLOB_DATA, 0, 8 + 100 * i, 100, 90, pack)


def test_blobs_name_their_pack_by_number_and_queries_answer_with_its_id(tmp_path):
    """Rows hold the pack's number; lookups, pack lists and a re-indexed pack answer with its id."""
    cache = IndexCache(str(tmp_path / "index.sqlite"))
    try:
        cache.add_index_file("i1", [("a" * 64, 1000, [_loc(1), _loc(2)]), ("b" * 64, 500, [_loc(3)])])
        cache.add_index_file("i2", [("a" * 64, 1000, [_loc(1)])])  # the same pack named again
        nums = dict(cache._db.execute("SELECT id, num FROM packs"))
        assert {r[0] for r in cache._db.execute("SELECT DISTINCT typeof(pack_num) FROM blobs")} == {"integer"}
        assert cache._db.execute("SELECT pack_num FROM blobs WHERE id = ?", (_loc(1).id,)).fetchone()[0] \
            == nums["a" * 64]
        assert cache.lookup(_loc(2).id) == _loc(2, "a" * 64)
        assert cache.lookup_many([_loc(3).id, b"\x09" * 32]) == {_loc(3).id: _loc(3, "b" * 64)}
        assert cache.pack_of_each([_loc(1).id, _loc(3).id]) == {_loc(1).id: "a" * 64, _loc(3).id: "b" * 64}
        assert cache.blob_ids_in_pack("a" * 64) == {_loc(1).id, _loc(2).id}
        assert cache.packs_of([_loc(1).id, b"\x09" * 32]) == ({"a" * 64}, {b"\x09" * 32})
        assert cache.pack_index_files() == {"a" * 64: "i2", "b" * 64: "i1"}
        cache.forget_index_file("i1")
        assert cache.lookup(_loc(3).id) is None and cache.lookup(_loc(1).id) == _loc(1, "a" * 64)
    finally:
        cache.close()


def test_a_cache_of_the_earlier_schema_is_emptied_and_refilled_from_storage(tmp_path):
    """An index cache left by the earlier schema is dropped on open; sync_index loads every index object."""
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"))
    w = BlobWriter(repo, str(tmp_path / "staging"))
    ids = [w.add_plain(os.urandom(300), BLOB_DATA, chunking.Compressor()) for _ in range(5)]
    w.commit()
    w.close()
    repo.close()
    path = os.path.join(repo.cache_dir, "index.sqlite")
    os.remove(path)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with sqlite3.connect(path) as db:
        db.executescript(_EARLIER)
    db.close()

    again = Repository.open(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"))
    try:
        assert again.index.known_index_files() == set() and again.index.lookup(b"\x00") is None
        assert again.sync_index() == 1
        assert all(again.index.lookup(i) is not None for i in ids)
        assert again.index.removals() >= 1  # lists verified against the old rows no longer count
    finally:
        again.close()
