"""The agent's file cache keeps a long chunk id list in pieces (agent/cache.py, LONG_IDS).

In: files recorded with id lists below, at and above the piece size (made 64 bytes here), in a
published cache. Out: the same ids, layout and holes read back; a long list stored only in
long_files/long_ids (a reader that predates them finds no row and reads the file again).
"""
from __future__ import annotations

import os
import sqlite3

import pytest

from ragbackup.agent import cache


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(cache, "LONG_IDS", 64)  # two ids a piece


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_ids_come_back_whole_whatever_their_length(tmp_path, n):
    f = tmp_path / "dump.rdb"
    f.write_bytes(b"x" * 10)
    st = os.stat(f)
    ids = bytearray(os.urandom(32 * n))
    writer = cache.CacheWriter(str(tmp_path / "c"), "redis", "one")
    writer.record(b"dump.rdb", st, ids, "rdb-records", (0, 4))
    writer.publish()
    reader = cache.CacheReader.open(str(tmp_path / "c"), "redis", "one")
    got = reader.lookup(b"dump.rdb", st)
    assert (bytes(got.ids), got.layout, got.holes) == (bytes(ids), "rdb-records", (0, 4))
    assert got.chunks == [bytes(ids[i:i + 32]) for i in range(0, len(ids), 32)]
    assert all(type(c) is bytes for c in got.chunks)
    changed = os.stat_result((*st[:6], st.st_size + 1, *st[7:]))
    assert reader.lookup(b"dump.rdb", changed) is None
    reader.close()

    db = sqlite3.connect(str(tmp_path / "c" / "redis" / "one.sqlite"))
    in_files = db.execute("SELECT count(*) FROM files").fetchone()[0]
    pieces = db.execute("SELECT count(*) FROM long_ids").fetchone()[0]
    db.close()
    assert (in_files, pieces) == ((1, 0) if n <= 2 else (0, (n + 1) // 2))
