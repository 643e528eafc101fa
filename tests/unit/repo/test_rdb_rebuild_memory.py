"""rdb_layout.rebuild reading its permutation and element orders back from its spool: round
trips with many reordered records, damaged tails refused, and the memory it holds a record."""
from __future__ import annotations

import random
import struct
import tracemalloc

import pytest

from ragbackup import errors
from ragbackup.repo import rdb, rdb_layout


def _s(b: bytes) -> bytes:
    """A raw RDB string of fewer than 64 bytes."""
    return bytes([len(b)]) + b


def _n(n: int) -> bytes:
    """An RDB length up to 16,383."""
    return bytes([n]) if n < 0x40 else bytes([0x40 | n >> 8, n & 0xFF])


# Element counts of the SETs and HASHes: kept in stored order (0, 1), element orders of 1 byte an
# element (up to 256) and of 2.
SIZES = (0, 1, 2, 3, 40, 255, 256, 257, 300)


def _record(rng: random.Random, i: int, share: float, sizes: tuple[int, ...]) -> bytes:
    """Key `i`: a SET or HASH (`share` of the keys) of one of `sizes` elements in no sorted
    order, else a string; a third with an expire time."""
    key = _s(b"key:%07d" % i)
    members = [b"m%d-%d" % (rng.randrange(1000), j) for j in range(rng.choice(sizes))]
    rng.shuffle(members)
    if rng.random() >= share:
        rec = bytes([rdb.T_STRING]) + key + _s(b"value-%d" % i)
    elif i % 2:
        rec = bytes([rdb.T_SET]) + key + _n(len(members)) + b"".join(_s(m) for m in members)
    else:
        rec = bytes([rdb.T_HASH]) + key + _n(len(members)) + b"".join(_s(m) + _s(b"v%d" % i) for m in members)
    return (bytes([rdb.OP_EXPIRETIME_MS]) + struct.pack("<Q", 10**13 + i) if i % 3 == 0 else b"") + rec


def _rdb(records_per_db: list[int], seed: int = 7, share: float = 0.5, sizes: tuple[int, ...] = SIZES) -> bytes:
    """A version-9 RDB file: a database (a run) for each count, keys in shuffled order."""
    rng = random.Random(seed)
    out = [b"REDIS0009", bytes([rdb.OP_AUX]), _s(b"redis-ver"), _s(b"5.0.0")]
    first = 0
    for db, count in enumerate(records_per_db):
        keys = list(range(first, first + count))
        rng.shuffle(keys)
        out += [bytes([rdb.OP_SELECTDB, db])] + [_record(rng, i, share, sizes) for i in keys]
        first += count
    return b"".join(out) + bytes([rdb.OP_EOF]) + b"\x00" * 8


def _stored(data: bytes) -> list[bytes]:
    return list(rdb_layout.canonicalise(data, rdb.parse(data)))


def _tail(chunks: list[bytes]) -> tuple[rdb_layout.Descriptor, list[bytes], bytes, bytes]:
    """(descriptor, record groups, permutation, element orders) of a file's stored chunks."""
    desc = rdb_layout.Descriptor.decode(chunks[0])
    left, i = desc.canonical, 1
    while left > 0:
        left -= len(chunks[i])
        i += 1
    rest = b"".join(chunks[i:])
    return desc, chunks[1:i], rest[:desc.permutation], rest[desc.permutation:]


def _rebuilt(desc: rdb_layout.Descriptor, groups: list[bytes], perm: bytes, orders: bytes) -> bytes:
    return b"".join(rdb_layout.rebuild([desc.encode(), *groups, *rdb_layout.pieces(perm), *rdb_layout.pieces(orders)]))


@pytest.fixture(scope="module")
def many() -> tuple[bytes, list[bytes]]:
    """3,000 keys in three databases, about half of them SETs or HASHes stored with their elements sorted."""
    data = _rdb([1000, 1, 1999])
    return data, _stored(data)


# Blocks of the permutation of 3 entries (runs of 1,000, 1 and 1,999 records end inside them) and
# of the default size; output pieces of about 100 bytes and of the default size.
@pytest.mark.parametrize("perm_read, out_batch", [(12, 100), (rdb_layout.PERM_READ, rdb_layout.OUT_BATCH)])
def test_reordered_records_round_trip_byte_identical(many, monkeypatch, perm_read, out_batch):
    data, chunks = many
    desc, groups, perm, orders = _tail(chunks)
    p = rdb.parse(data)
    stream = b"".join(groups)
    moved = [i for i in range(len(p.starts)) if p.types[i] in rdb_layout.REORDERED
             and data[p.starts[i]:p.ends[i]] not in stream]
    assert len(moved) > 1000 and len(orders) > 100_000  # records put back in file order, 1 and 2 bytes an element
    monkeypatch.setattr(rdb_layout, "PERM_READ", perm_read)
    monkeypatch.setattr(rdb_layout, "OUT_BATCH", out_batch)
    assert b"".join(rdb_layout.rebuild(chunks)) == data


def _u32(perm: bytes, i: int, value: int) -> bytes:
    return perm[:4 * i] + struct.pack("<I", value) + perm[4 * i + 4:]


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_permutation_naming_no_record_is_refused_before_its_block_is_used(many, monkeypatch, where):
    data, chunks = many
    desc, groups, perm, orders = _tail(chunks)
    monkeypatch.setattr(rdb_layout, "PERM_READ", 64)
    i = 0 if where == "first" else desc.records - 1
    for value in (desc.records, 0xFFFFFFFF):
        out = rdb_layout.rebuild([desc.encode(), *groups, *rdb_layout.pieces(_u32(perm, i, value)),
                                  *rdb_layout.pieces(orders)])
        got = bytearray()
        with pytest.raises(errors.IntegrityError, match="names a record that does not exist"):
            for piece in out:
                got += piece
        assert data.startswith(got)  # what came out before the bad block is the file's


def test_a_permutation_cut_short_or_inside_an_entry_is_refused(many):
    desc, groups, perm, orders = _tail(many[1])
    head = [desc.encode(), *groups]
    with pytest.raises(errors.IntegrityError, match=f"permutation of {len(perm) - 4} bytes, expected {len(perm)}"):
        b"".join(rdb_layout.rebuild([*head, perm[:-4]]))
    with pytest.raises(errors.IntegrityError, match="ends inside an entry"):
        b"".join(rdb_layout.rebuild([*head, perm[:4001], perm[4001:], *rdb_layout.pieces(orders)]))
    with pytest.raises(errors.IntegrityError, match="ends inside an entry"):
        b"".join(rdb_layout.rebuild([*head, perm[:-2]]))


@pytest.mark.parametrize("orders_of", [lambda o: o[:-1], lambda o: o[:-300], lambda o: o + b"\x00", lambda o: b""])
def test_element_orders_of_the_wrong_length_are_refused(many, orders_of):
    desc, groups, perm, orders = _tail(many[1])
    with pytest.raises(errors.IntegrityError, match="element orders of"):
        _rebuilt(desc, groups, perm, orders_of(orders))


def test_an_element_order_naming_no_element_is_refused(many):
    desc, groups, perm, orders = _tail(many[1])
    bad = orders[:-2] + b"\xff\xff"  # the last record's last element: u8 or u16 either way past its end
    with pytest.raises(errors.IntegrityError, match="names an element that does not exist"):
        _rebuilt(desc, groups, perm, bad)


def test_a_descriptor_whose_counts_disagree_is_refused(many):
    desc, *_ = _tail(many[1])
    fields = dict(size=desc.size, records=desc.records, canonical=desc.canonical, permutation=desc.permutation,
                  digest=desc.digest, runs=desc.runs, skeleton=desc.skeleton)
    short = rdb_layout.Descriptor(**{**fields, "permutation": desc.permutation - 4})
    with pytest.raises(errors.IntegrityError, match="permutation of"):
        rdb_layout.Descriptor.decode(short.encode())
    runs = [(offset, count + 1) for offset, count in desc.runs]
    with pytest.raises(errors.IntegrityError, match="runs of 3003 records for 3000"):
        rdb_layout.Descriptor.decode(rdb_layout.Descriptor(**{**fields, "runs": runs}).encode())


def test_the_rebuild_holds_about_4_bytes_a_record(monkeypatch, tmp_path):
    """50,000 keys, a tenth of them SETs or HASHes of up to 255 elements: the rebuild holds each
    record's start (4 bytes) and, for a reordered one, where its element order starts (4 bytes);
    not the permutation (4 bytes a record) nor the element orders (here 10 bytes a record)."""
    n = 50_000
    data = _rdb([n], seed=3, share=0.1, sizes=(2, 60, 100, 255))
    chunks = _stored(data)
    monkeypatch.setattr(rdb_layout, "OUT_BATCH", 16 * 1024)
    monkeypatch.setattr(rdb_layout, "PERM_READ", 4096)
    tracemalloc.start()
    try:
        size = sum(len(piece) for piece in rdb_layout.rebuild(chunks, str(tmp_path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    bound = 6 * n + 192 * 1024  # measured: 346,000 bytes
    assert size == len(data)
    assert len(_tail(chunks)[3]) > bound  # held, the element orders alone would pass it
    assert peak < bound, peak
