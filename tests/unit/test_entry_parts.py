"""An entry's chunk ids split over several entries and joined again (core/entry_parts.py).

In: protobuf entries with chunk ids around the part size (made 3 ids here), and streams of parts
damaged as a faulty or hostile peer could send them. Out: the same entries and ids after a
split and a join, and a typed error naming the entry for every damaged stream.
"""
from __future__ import annotations

import os

import pytest
from ragbackup import entry_parts, errors
from ragbackup.entry_parts import EntryJoiner, split_entry
from ragbackup.repo.tree import ChunkIds, SpilledIds
from ragbackup.v1 import common_pb2

FILE = common_pb2.ENTRY_TYPE_FILE


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    monkeypatch.setattr(entry_parts, "PART_IDS", 3)


def _entry(path: bytes, **fields) -> common_pb2.Entry:
    return common_pb2.Entry(path=path, type=FILE, size=1234, mode=0o600, layout="rdb-records", **fields)


def _ids(n: int) -> bytes:
    return os.urandom(32 * n)


def _wire(entries) -> list[common_pb2.Entry]:
    """The entries as a peer receives them (serialized and parsed, one message each)."""
    return [common_pb2.Entry.FromString(e.SerializeToString()) for e in entries]


@pytest.mark.parametrize("n, parts", [(0, 1), (1, 1), (3, 1), (4, 2), (6, 2), (7, 3)])
def test_split_then_joined_gives_the_entry_and_its_ids_back(n, parts):
    ids = _ids(n)
    sent = _wire(split_entry(_entry(b"dump.rdb"), bytearray(ids)))
    assert len(sent) == parts
    assert all(len(p.chunk_ids) <= 3 * 32 for p in sent)
    assert [p.more_chunk_ids for p in sent] == [True] * (parts - 1) + [False]
    assert all(not p.path and not p.size for p in sent[1:]), "a later part carries only ids"
    (entry, got), = EntryJoiner().feed(sent)
    assert got == ChunkIds(ids) if n else list(got) == []
    # gathered in a bytearray, given as bytes: an id is hashable, a slice a list of ids
    assert all(type(i) is bytes for i in [*got, *got[:2]]) and len(set(got)) == n
    assert [got[i] for i in range(-n, n)] == [ids[j * 32:(j + 1) * 32] for j in [*range(n), *range(n)]]
    assert (entry.path, entry.size, entry.layout, entry.more_chunk_ids) == (b"dump.rdb", 1234, "rdb-records", False)


def test_whole_entries_around_a_split_one_keep_their_order_across_messages():
    small, big = _ids(2), _ids(8)
    joiner = EntryJoiner()
    stream = [_entry(b"a", chunk_ids=small), *split_entry(_entry(b"b"), big), _entry(b"c")]
    got = []
    for one in _wire(stream):  # one entry a message: the parts straddle feeds
        got += joiner.feed([one])
    joiner.end()
    assert [(e.path, bytes(b"".join(ids))) for e, ids in got] == [(b"a", small), (b"b", big), (b"c", b"")]


def _damaged(kind: str) -> list[common_pb2.Entry]:
    head, *rest = split_entry(_entry(b"dump.rdb"), _ids(7))
    if kind == "a later part names a path":
        rest[0].path = b"other"
    elif kind == "a whole entry in place of a part":
        rest[0] = _entry(b"next", chunk_ids=_ids(1))
    elif kind == "a later part names no ids":
        rest[0].ClearField("chunk_ids")
    elif kind == "a part cuts an id":
        rest[-1].chunk_ids = rest[-1].chunk_ids[:-1]
    elif kind == "a first part with ids one field each":
        head.chunks.append(head.chunk_ids[:32])
    return [head, *rest]


@pytest.mark.parametrize("kind, message", [
    ("a later part names a path", "came with other fields \\(path\\)"),
    ("a whole entry in place of a part", "came with other fields"),
    ("a later part names no ids", "came with other fields \\(no ids\\)"),
    ("a part cuts an id", "not a whole number of ids"),
    ("a first part with ids one field each", "its first part names no chunk ids joined"),
])
def test_a_damaged_stream_of_parts_is_refused_naming_the_entry(kind, message):
    with pytest.raises(errors.IntegrityError, match=message) as info:
        list(EntryJoiner().feed(_wire(_damaged(kind))))
    assert "dump.rdb" in info.value.message


def test_a_stream_that_ends_between_parts_is_refused():
    joiner = EntryJoiner()
    head, *_ = split_entry(_entry(b"dump.rdb"), _ids(7))
    assert list(joiner.feed(_wire([head]))) == []
    with pytest.raises(errors.IntegrityError, match="ended before the last part") as info:
        joiner.end()
    assert "dump.rdb" in info.value.message


def test_a_joiner_with_a_spill_dir_keeps_a_split_entrys_ids_in_a_file(tmp_path):
    """An agent's joiner: the ids of a split entry go to an unlinked file in the spill dir, not memory,
    read back as often as needed; a whole entry's ids stay as they came."""
    small, big = _ids(2), _ids(8)
    got = list(EntryJoiner(str(tmp_path)).feed(_wire([_entry(b"a", chunk_ids=small),
                                                      *split_entry(_entry(b"dump.rdb"), big)])))
    (a, a_ids), (rdb, rdb_ids) = got
    assert isinstance(a_ids, ChunkIds) and isinstance(rdb_ids, SpilledIds)
    assert os.listdir(tmp_path) == [], "the file is unlinked: nothing is left behind"
    assert len(rdb_ids) == 8 and b"".join(rdb_ids) == big
    assert b"".join(rdb_ids) == big == b"".join(rdb_ids.blocks(96)), "read again, whole or in blocks"
    parts = _wire(split_entry(_entry(b"again"), rdb_ids))  # a spilled list splits as a joined one
    assert [len(p.chunk_ids) for p in parts] == [96, 96, 64] and b"".join(p.chunk_ids for p in parts) == big
    rdb_ids.close()


def test_a_spilled_entry_whose_parts_cut_an_id_is_refused(tmp_path):
    with pytest.raises(errors.IntegrityError, match="not a whole number of ids") as info:
        list(EntryJoiner(str(tmp_path)).feed(_wire(_damaged("a part cuts an id"))))
    assert "dump.rdb" in info.value.message


def test_runs_keep_order_and_put_each_large_item_alone():
    """Items of at most PART_IDS (3 here) ids share a run; a larger one is alone, marked split."""
    sizes = [1, 3, 4, 0, 2, 9, 7, 1]
    got = list(entry_parts.runs(sizes, lambda n: n))
    assert got == [([1, 3], False), ([4], True), ([0, 2], False), ([9], True), ([7], True), ([1], False)]
    assert list(entry_parts.runs([], len)) == []
