"""Chunking: CDC survives insertions; SQLite files are cut on page boundaries."""
import io
import os
import random
import sqlite3

from ragbackup.repo import chunking

PARAMS = chunking.ChunkerParams(64 * 1024, 128 * 1024, 512 * 1024, seed=7)


def _ids(chunks):
    return [chunking.prepare(b"k" * 32, c, chunking.Compressor()).id for c in chunks]


def test_cdc_insertion_changes_few_chunks():
    data = random.Random(1).randbytes(8 * 1024 * 1024)
    a = _ids(bytes(v) for v in chunking.cut_buffer(PARAMS, data))
    b = _ids(bytes(v) for v in chunking.cut_buffer(PARAMS, data[:4_000_000] + b"x" * 100 + data[4_000_000:]))
    assert len(set(b) - set(a)) <= 3, (len(a), len(set(b) - set(a)))


def _db(path, rows):
    con = sqlite3.connect(path)
    con.execute("PRAGMA page_size=4096")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    rnd = random.Random(2)
    con.executemany("INSERT INTO t VALUES (?, ?)", ((i, rnd.randbytes(300)) for i in range(rows)))
    con.commit()
    return con


def test_sqlite_page_size_header(tmp_path):
    _db(str(tmp_path / "a.db"), 10).close()
    with open(tmp_path / "a.db", "rb") as f:
        assert chunking.sqlite_page_size(f.read(100)) == 4096
    assert chunking.sqlite_page_size(b"not sqlite" * 10) is None
    assert chunking.sqlite_chunk_size(4096) == chunking.SQLITE_CHUNK
    assert chunking.sqlite_chunk_size(65536) == 65536


def test_sqlite_scattered_updates_store_little(tmp_path):
    path = str(tmp_path / "a.db")
    con = _db(path, 40_000)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        before = set(_ids(chunking.cut_fixed(f, chunking.sqlite_chunk_size(4096))))
    with open(path, "rb") as f:
        cdc_before = set(_ids(bytes(v) for v in chunking.cut_stream(PARAMS, f)))
    rnd = random.Random(3)
    for i in rnd.sample(range(40_000), 100):  # 0.25% of rows, scattered
        con.execute("UPDATE t SET v=? WHERE id=?", (rnd.randbytes(300), i))
    con.commit()
    con.close()
    with open(path, "rb") as f:
        after = _ids(chunking.cut_fixed(f, chunking.sqlite_chunk_size(4096)))
    with open(path, "rb") as f:
        cdc_after = _ids(bytes(v) for v in chunking.cut_stream(PARAMS, f))
    new_paged = len(set(after) - before) * chunking.SQLITE_CHUNK
    new_cdc = sum(1 for c in set(cdc_after) - cdc_before) * (size / len(cdc_after))
    assert new_paged < size * 0.3, (new_paged, size)
    assert new_paged * 2 < new_cdc, (new_paged, new_cdc)


def test_fixed_cut_reassembles():
    data = os.urandom(100_000)
    assert b"".join(chunking.cut_fixed(io.BytesIO(data), 4096)) == data


def test_cdc_batches_equal_streaming():
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 12345)
    streamed = [bytes(v) for v in chunking.cut_stream(PARAMS, io.BytesIO(data))]
    batched = [bytes(v) for batch in chunking.cdc_batches(PARAMS, io.BytesIO(data), batch=700_000) for v in batch]
    assert batched == streamed
    assert b"".join(batched) == data


def test_cdc_batches_smaller_than_the_largest_chunk_still_equal_streaming():
    # Random bytes give long chunks: a batch below max_size would hold one chunk only.
    data = random.Random(6).randbytes(4 * 1024 * 1024 + 777)
    streamed = [bytes(v) for v in chunking.cut_stream(PARAMS, io.BytesIO(data))]
    for batch in (PARAMS.max_size // 4, PARAMS.max_size - 1, PARAMS.min_size):
        got = [bytes(v) for b in chunking.cdc_batches(PARAMS, io.BytesIO(data), batch=batch) for v in b]
        assert b"".join(got) == data, batch
        assert got == streamed, batch


def test_fixed_batches_reassemble():
    data = os.urandom(100_000)
    batches = list(chunking.fixed_batches(io.BytesIO(data), 4096, batch=40_000))
    assert all(len(v) == 4096 for b in batches for v in b[:-1])
    assert b"".join(bytes(v) for b in batches for v in b) == data
    assert list(chunking.fixed_batches(io.BytesIO(b""), 4096)) == []


def test_small_chunks_use_the_fast_level_only_in_the_default_tier():
    assert chunking.small_chunk_level(3) == 1
    assert chunking.small_chunk_level(2) == 1
    assert chunking.small_chunk_level(1) == 1
    assert chunking.small_chunk_level(9) == 9


def test_small_and_large_chunks_round_trip_at_their_levels():
    comp = chunking.Compressor(3)
    text = b"".join(b"row %08d: the quick brown fox\n" % i for i in range(20000))
    for data in (text[:16384], text[:65535], text[:65536], text):
        payload, compressed = comp.compress(data)
        assert compressed and len(payload) < len(data) // 2
        assert chunking.decompress(payload, compressed, len(data)) == data
