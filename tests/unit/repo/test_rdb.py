"""RDB record parsing and the rdb-records layout, on RDB files written by a real redis-server."""
from __future__ import annotations

import os
import struct

import pytest

from ragbackup import errors
from ragbackup.agent import restore
from ragbackup.repo import rdb, rdb_capture, rdb_layout
from ragbackup.repo.ids import chunk_id
from ragbackup.repo.tree import Entry, check_entry, decode_lines, encode_lines
from ragbackup.v1 import common_pb2

KEY = b"k" * 32


def _fill(c) -> None:
    """Keys of every type and encoding Redis 7 writes."""
    c.set("s:raw", "hello world")
    c.set("s:int", 12345)
    c.set("s:big", "x" * 5000)  # LZF-compressed
    c.set("s:exp", "v", px=10_000_000)
    c.set(b"\x00bin\xff", os.urandom(100))
    c.rpush("l:small", *range(10))
    c.rpush("l:big", *[f"item-{i}-" + "y" * 100 for i in range(2000)])  # several quicklist nodes
    c.sadd("set:int", *range(50))  # intset
    c.sadd("set:lp", "a", "b", "c")  # listpack (7.2) or hashtable (7.0)
    c.sadd("set:big", *[f"m{i}" for i in range(1000)])  # hashtable
    c.zadd("z:small", {"a": 1.5, "b": 2})
    c.zadd("z:big", {f"m{i}": i * 0.5 for i in range(500)})  # skiplist
    c.hset("h:small", mapping={"f1": "v1", "f2": 2})
    c.hset("h:big", mapping={f"f{i}": "v" * 80 for i in range(600)})  # hashtable
    c.xadd("st", {"a": "1"})
    c.xadd("st", {"b": "2"})
    c.xgroup_create("st", "g1", id="0")
    c.xreadgroup("g1", "consumer1", {"st": ">"}, count=1)
    for i in range(300):
        c.set(f"k:{i:04d}", f"value-{i}" * 3)


def _save(server) -> bytes:
    server.client().save()
    with open(os.path.join(server.data_dir, "dump.rdb"), "rb") as f:
        return f.read()


@pytest.fixture
def populated(redis_server_factory):
    server = redis_server_factory()
    c = server.client()
    _fill(c)
    server.client(db=3).set("other-db", "x")
    server.client().function_load(
        "#!lua name=mylib\nredis.register_function('f1', function(keys, args) return 1 end)")
    return server


def test_parse_every_type_tiles_the_file(populated):
    data = _save(populated)
    p = rdb.parse(data)
    assert p.version >= 10
    n = len(p.starts)
    assert n == populated.client().dbsize() + 1  # + db 3's key
    assert sum(c for _, c in p.runs) == n
    covered = sum(p.ends[i] - p.starts[i] for i in range(n))
    assert covered + len(p.skeleton) == len(data)
    assert {b"\x05s:big", b"\x02st", b"\x05h:big", b"\x05z:big"} <= set(p.keys)  # keys as encoded


def _stored(data: bytes) -> list[bytes]:
    return list(rdb_layout.canonicalise(data, rdb.parse(data)))


def test_round_trip_is_byte_identical(populated):
    data = _save(populated)
    chunks = _stored(data)
    assert b"".join(rdb_layout.rebuild(chunks)) == data
    # an old reader concatenating the chunks gets a different length, and refuses the file
    assert sum(len(c) for c in chunks) != len(data)


def _captured(data: bytes, tmp_path) -> list[bytes]:
    """The chunks the agent's bounded-memory capture (rdb_capture.py) stores for `data`."""
    path = tmp_path / "captured.rdb"
    path.write_bytes(data)
    with open(path, "rb") as f:
        return [bytes(c) for c in rdb_capture.canonicalise_file(f.fileno(), str(tmp_path))]


def _more_dbs(server) -> None:
    """Keys in three more databases, a third of them expiring, of every reordered type."""
    for db in (1, 5, 15):
        c = server.client(db=db)
        for i in range(1500):
            c.set(f"d{db}:{i}", f"v{i}" * (i % 7 + 1), px=10_000_000 + i if i % 3 == 0 else None)
        c.sadd(f"d{db}:set", *[f"m{i}" for i in range(700)])
        c.hset(f"d{db}:h", mapping={f"f{i}": str(i) for i in range(700)})
        c.pexpire(f"d{db}:h", 10_000_000)


# Whole-file defaults; one record a segment; small segments, with a parse step and spill reads
# smaller than a record (a record larger than the read buffer is read whole).
@pytest.mark.parametrize("run_bytes, step, read", [
    (rdb_capture.RUN_BYTES, rdb_capture.PARSE_STEP, rdb_capture.READ_BYTES), (1, 1, 1), (4096, 700, 50)])
def test_bounded_capture_stores_exactly_the_in_memory_chunks(populated, tmp_path, monkeypatch, run_bytes, step,
                                                             read):
    """The agent's capture through sorted spilled segments stores the same descriptor, groups,
    permutation and element orders, byte for byte, as the layout's in-memory canonicalise."""
    monkeypatch.setattr(rdb_capture, "RUN_BYTES", run_bytes)
    monkeypatch.setattr(rdb_capture, "PARSE_STEP", step)
    monkeypatch.setattr(rdb_capture, "READ_BYTES", read)
    _more_dbs(populated)
    data = _save(populated)
    assert len(rdb.parse(data).runs) == 5  # databases 0, 1, 3, 5 and 15
    got = _captured(data, tmp_path)
    assert got == _stored(data)
    assert b"".join(rdb_layout.rebuild(got)) == data


def test_bounded_capture_of_an_empty_and_a_one_key_rdb(redis_server_factory, tmp_path):
    server = redis_server_factory()
    empty = _save(server)
    assert _captured(empty, tmp_path) == _stored(empty)
    server.client(db=2).set("only", "one", px=10_000_000)
    one = _save(server)
    assert _captured(one, tmp_path) == _stored(one)
    assert b"".join(rdb_layout.rebuild(_captured(one, tmp_path))) == one


def test_bounded_capture_refuses_unknown_files_before_any_chunk(populated, tmp_path):
    data = _save(populated)
    with pytest.raises(rdb.Unknown):
        _captured(data[:9] + bytes([rdb.OP_MODULE_AUX]) + data[9:], tmp_path)
    with pytest.raises(rdb.Unknown):
        _captured(data[:-30], tmp_path)


def _records(data: bytes) -> dict[bytes, bytes]:
    p = rdb.parse(data)
    return {k: data[s:e] for k, s, e in zip(p.keys, p.starts, p.ends)}


def _groups(chunks: list[bytes]) -> list[bytes]:
    """The record groups among a file's stored chunks."""
    left, out = rdb_layout.Descriptor.decode(chunks[0]).canonical, []
    for c in chunks[1:]:
        if left <= 0:
            break
        out.append(c)
        left -= len(c)
    return out


def test_restart_changes_order_not_groups(populated):
    before_data = _save(populated)
    before = _stored(before_data)
    populated.stop()
    populated.start()
    after_data = _save(populated)
    after = _stored(after_data)
    assert b"".join(rdb_layout.rebuild(after)) == after_data
    # Redis writes keys, and the members of large sets and hashes, in hash-table order,
    # which a restart changes: the file differs, its record groups do not.
    r0, r1 = _records(before_data), _records(after_data)
    assert {k for k in r1 if r0[k] != r1[k]} >= {b"\x07set:big", b"\x05h:big"}
    assert _groups(after) == _groups(before)


def test_damaged_chunks_are_refused(populated):
    chunks = _stored(_save(populated))
    bad = list(chunks)
    bad[1] = bytes(bad[1][:-1]) + bytes([bad[1][-1] ^ 1])
    with pytest.raises(errors.IntegrityError):
        b"".join(rdb_layout.rebuild(bad))
    with pytest.raises(errors.IntegrityError):
        b"".join(rdb_layout.rebuild([b"not a descriptor", *chunks[1:]]))
    with pytest.raises(errors.IntegrityError):
        b"".join(rdb_layout.rebuild(chunks[:-1]))


@pytest.mark.parametrize("mutate, why", [
    (lambda d: d[:5] + b"0099" + d[9:], "version"),
    (lambda d: d[:9] + bytes([rdb.OP_MODULE_AUX]) + d[9:], "opcode"),
    (lambda d: d[:-30], "truncated"),
    (lambda d: b"REDIS" + b"x" * 20, "version"),
])
def test_unknown_files_raise_unknown(populated, mutate, why):
    with pytest.raises(rdb.Unknown):
        rdb.parse(mutate(_save(populated)))


def test_module_value_type_is_unknown():
    body = bytes([rdb.OP_SELECTDB, 0, 7, 1]) + b"k" + struct.pack(">Q", 1) + b"\x00" * 8
    data = b"REDIS0010" + body + bytes([rdb.OP_EOF]) + b"\x00" * 8
    with pytest.raises(rdb.Unknown, match="value type 7"):
        rdb.parse(data)


def test_empty_database_round_trips(redis_server_factory):
    server = redis_server_factory()
    data = _save(server)
    p = rdb.parse(data)
    assert len(p.starts) == 0
    assert b"".join(rdb_layout.rebuild(_stored(data))) == data


# ------------------------------------------------------------ tree entries and the restore writer

def test_tree_lines_round_trip_the_layout_and_unknown_layouts_are_refused():
    e = Entry(path=b"dump.rdb", type="file", size=10, chunks=[b"\1" * 32], layout=rdb_layout.LAYOUT)
    (back,) = decode_lines(encode_lines([e]))
    assert back.layout == rdb_layout.LAYOUT and '"ly":"rdb-records"' in e.to_json()
    assert '"ly"' not in Entry(path=b"a", type="file").to_json()  # plain files: no key, as before
    check_entry(back)
    with pytest.raises(errors.UnsupportedFormat, match="layout 'rdb-v9'"):
        check_entry(Entry(path=b"dump.rdb", type="file", layout="rdb-v9"))


def _restore(root: str, e: common_pb2.Entry, chunks: list[bytes]) -> str:
    writer = restore.TreeWriter(root, KEY)
    data = iter(chunks)
    writer.write(e, lambda expected: next(data))
    writer.finish()
    return os.path.join(root, os.fsdecode(e.path))


def test_restore_writer_rebuilds_the_rdb_and_refuses_unknown_layouts(populated, tmp_path):
    data = _save(populated)
    chunks = _stored(data)
    e = common_pb2.Entry(path=b"dump.rdb", type=common_pb2.ENTRY_TYPE_FILE, size=len(data), layout=rdb_layout.LAYOUT,
                         chunks=[chunk_id(KEY, c) for c in chunks], mode=0o600)
    with open(_restore(str(tmp_path / "a"), e, chunks), "rb") as f:
        assert f.read() == data
    e.layout = "rdb-v9"
    with pytest.raises(errors.UnsupportedFormat):
        _restore(str(tmp_path / "b"), e, chunks)
    e.layout = ""  # what a reader that predates layouts does: the chunks never hold the file's size
    with pytest.raises(errors.IntegrityError, match="chunks hold"):
        _restore(str(tmp_path / "c"), e, chunks)


@pytest.mark.parametrize("policy, opcode", [("allkeys-lru", rdb.OP_IDLE), ("allkeys-lfu", rdb.OP_FREQ)])
def test_idle_and_freq_prefixes_round_trip(redis_server_factory, policy, opcode):
    server = redis_server_factory(extra_args=["--maxmemory-policy", policy, "--maxmemory", "100mb"])
    c = server.client()
    for i in range(200):
        c.set(f"k{i}", "v" * i, px=10_000_000 if i % 2 else None)
    c.sadd("members", *[f"m{i}" for i in range(300)])
    data = _save(server)
    p = rdb.parse(data)
    assert len(p.starts) == 201
    assert all(data[s] in (opcode, rdb.OP_EXPIRETIME_MS) for s in p.starts)  # every record has a prefix
    assert b"".join(rdb_layout.rebuild(_stored(data))) == data


def _s(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def test_older_encodings_parse_by_extent():
    """Types Redis 7.0 no longer writes (zset with string scores, ziplist and zipmap blobs,
    a plain list, a 32-bit length, a 14-bit length), in a synthetic version-9 file."""
    recs = [
        bytes([rdb.T_ZSET]) + _s(b"z") + b"\x02" + _s(b"a") + _s(b"1.5") + _s(b"b") + b"\xfd",
        bytes([9]) + _s(b"zipmap") + _s(b"\x01\x02\x03"),
        bytes([10]) + _s(b"zl") + b"\x80" + struct.pack(">I", 5) + b"12345",
        bytes([rdb.T_LIST]) + _s(b"l") + b"\x02" + _s(b"x") + b"\xc0\x07",  # an int8-encoded element
        bytes([rdb.T_STRING]) + _s(b"long") + bytes([0x40 | 1, 0x00]) + b"y" * 256,  # 14-bit length
    ]
    data = (b"REDIS0009" + bytes([rdb.OP_AUX]) + _s(b"redis-ver") + _s(b"5.0.0") + bytes([rdb.OP_SELECTDB, 0])
            + b"".join(recs) + bytes([rdb.OP_EOF]) + b"\x00" * 8)
    p = rdb.parse(data)
    assert [data[s:e] for s, e in zip(p.starts, p.ends)] == recs
    assert b"".join(rdb_layout.rebuild(_stored(data))) == data


def test_a_record_stream_cut_inside_records_still_rebuilds(populated, monkeypatch):
    """Groups end at records, but the reader does not rely on it: the stream re-cut every
    37 bytes, indexed in pieces of about 100 bytes, rebuilds the same file; cut short, it is refused."""
    data = _save(populated)
    chunks = _stored(data)
    groups = _groups(chunks)
    stream = b"".join(groups)
    recut = [stream[i:i + 37] for i in range(0, len(stream), 37)]
    rest = chunks[1 + len(groups):]
    monkeypatch.setattr(rdb_layout, "OUT_BATCH", 100)
    assert b"".join(rdb_layout.rebuild([chunks[0], *recut, *rest])) == data
    short = rdb_layout.Descriptor.decode(chunks[0])
    desc = rdb_layout.Descriptor(short.size, short.records, short.canonical - 1, short.permutation, short.digest,
                                 short.runs, short.skeleton)
    with pytest.raises(errors.IntegrityError):
        b"".join(rdb_layout.rebuild([desc.encode(), stream[:-1], *rest]))
