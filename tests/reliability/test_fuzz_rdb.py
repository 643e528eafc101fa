"""Hostile input: Redis RDB files (core/repo/rdb.py) and their stored rdb-records chunks (rdb_layout.py)."""
from __future__ import annotations

import os

import pytest
from hypothesis import strategies as st

from reliability.fuzzlib import _OPS, apply, expect_typed, fuzz, mutated

from ragbackup import errors
from ragbackup.repo import rdb, rdb_capture, rdb_layout


def _fill(c, n: int) -> None:
    """Keys of every type and encoding Redis writes, small enough to mutate thousands of times."""
    c.set("s:raw", "hello world")
    c.set("s:int", 12345)
    c.set("s:lzf", "x" * 300)
    c.set("s:exp", "v", px=10_000_000)
    c.set(b"\x00bin\xff", os.urandom(20))
    c.rpush("l:small", *range(5))
    c.sadd("set:int", *range(10))
    c.sadd("set:big", *[f"m{i}" for i in range(n)])  # hashtable once past the listpack limit
    c.zadd("z:big", {f"m{i}": i * 0.5 for i in range(n)})
    c.hset("h:big", mapping={f"f{i}": "v" * 10 for i in range(n)})
    c.xadd("st", {"a": "1"})
    c.xgroup_create("st", "g1", id="0")
    c.xreadgroup("g1", "consumer1", {"st": ">"}, count=1)
    for i in range(20):
        c.set(f"k:{i:04d}", f"value-{i}")


def _captured(data: bytes) -> list[bytes]:
    """rdb_capture's chunks of `data`, from a file in memory (memfd), in segments of a few records."""
    fd = os.memfd_create("rdb")
    try:
        os.write(fd, data)
        return [bytes(c) for c in rdb_capture.canonicalise_file(fd)]
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[bytes]:
    """RDB files written by a real redis-server: small keyspaces, one past the listpack limits."""
    from fixtures.redis_server import RedisServer
    out = []
    for n in (3, 140):
        server = RedisServer(tmp_path_factory.mktemp("redis"), None, [])
        server.start()
        try:
            c = server.client()
            _fill(c, n)
            c.save()
            with open(os.path.join(server.data_dir, "dump.rdb"), "rb") as f:
                out.append(f.read())
        finally:
            server.stop()
    return out


def test_damaged_rdb_files_are_refused_typed_or_stored_and_rebuilt_exactly(record_property, seeds, monkeypatch):
    """A damaged or hostile dump.rdb is refused by the record parser (stored as plain chunks) or rebuilt byte-identical"""
    monkeypatch.setattr(rdb_capture, "RUN_BYTES", 512)  # several sorted segments a database
    monkeypatch.setattr(rdb_capture, "PARSE_STEP", 300)
    monkeypatch.setattr(rdb_capture, "READ_BYTES", 100)

    def check(data: bytes):
        parsed = expect_typed(lambda: rdb.parse(data), rdb.Unknown)
        if parsed is None:
            return
        chunks = [bytes(c) for c in rdb_layout.canonicalise(data, parsed)]
        assert b"".join(rdb_layout.rebuild(chunks)) == data
        assert _captured(data) == chunks  # the agent's bounded-memory capture stores the same
    record_property("tries", fuzz(check, mutated(st.sampled_from(seeds))))
    assert issubclass(rdb.Unknown, errors.RagBackupError)


def test_damaged_rdb_records_chunks_are_refused_typed(record_property, seeds):
    """Damaged rdb-records chunks (descriptor, record groups, permutation) restore as IntegrityError, never wrong bytes"""
    stored = [[bytes(c) for c in rdb_layout.canonicalise(s, rdb.parse(s))] for s in seeds]

    def check(args):
        which, target, ops, drop = args
        chunks = list(stored[which % len(stored)])
        i = target % len(chunks)
        chunks[i] = apply(chunks[i], ops)
        if drop:
            del chunks[drop % len(chunks)]
        out = expect_typed(lambda: b"".join(rdb_layout.rebuild(chunks)), errors.IntegrityError)
        assert out is None or out == seeds[which % len(seeds)]
    record_property("tries", fuzz(check, st.tuples(st.integers(0, 1), st.integers(0, 1 << 16),
                                                   st.lists(_OPS, min_size=1, max_size=3),
                                                   st.one_of(st.just(0), st.integers(1, 64)))))
