"""Hostile input: chunk batches on the wire (core/wire.py), damaged and random, against protobuf's parser;
streams of split entries (core/entry_parts.py)."""
from __future__ import annotations

from google.protobuf.message import DecodeError
from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz, mutated

from ragbackup import entry_parts, errors, wire
from ragbackup.v1 import agent_pb2, common_pb2

CLASSES = (agent_pb2.CaptureEvent, agent_pb2.RestoreCommand)
_CHUNK = st.tuples(st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)), st.binary(max_size=300),
                   st.booleans(), st.integers(0, 2**32 - 1))
CHUNKS = st.lists(_CHUNK, max_size=6)
VALID = CHUNKS.map(lambda chunks: wire.encode_chunk_batch(3, chunks))
# Besides chunk batches, the other messages of both streams (protobuf parses them)
OTHER = st.sampled_from([agent_pb2.RestoreCommand(finish=agent_pb2.RestoreFinish()).SerializeToString(),
                         agent_pb2.CaptureEvent(chunks=common_pb2.ChunkBatch()).SerializeToString() + b"\x08\x01"])


def _tuples(chunks) -> list[tuple]:
    return [(c.id, bytes(c.payload), c.compressed, c.raw_size) for c in chunks]


def test_chunk_batches_round_trip_through_the_deserializer(record_property):
    """A chunk batch encoded by the sender is what the receiver's deserializer and protobuf read."""
    def check(chunks):
        raw = wire.encode_chunk_batch(3, chunks)
        for cls in CLASSES:
            got = wire.chunk_batch_deserializer(cls)(raw)
            assert _tuples(got.chunks.chunks) == [(i, p, c, r) for i, p, c, r in chunks]
            assert _tuples(cls.FromString(raw).chunks.chunks) == _tuples(got.chunks.chunks)
    record_property("tries", fuzz(check, CHUNKS, fast=200, long=1_000))


def test_damaged_chunk_batches_are_refused_typed_or_read_as_protobuf_reads_them(record_property):
    """A damaged or hostile gRPC message (bit flips, truncation, splices, bad lengths) is MalformedMessage, exit 2"""
    def check(raw: bytes):
        for cls in CLASSES:
            got = expect_typed(lambda: wire.chunk_batch_deserializer(cls)(raw), wire.MalformedMessage)
            if isinstance(got, wire.ChunkMessage):
                try:
                    ref = cls.FromString(raw)
                except Exception:
                    continue  # protobuf refuses some inputs the fast path reads (e.g. field number 0)
                assert _tuples(got.chunks.chunks) == _tuples(ref.chunks.chunks)
    record_property("tries", fuzz(check, mutated(st.one_of(VALID, OTHER))))
    assert wire.MalformedMessage.exit_code == 2


PART = 3  # chunk ids a part, here (entry_parts.PART_IDS is 65,536)
_ENTRIES = st.lists(st.tuples(st.binary(min_size=1, max_size=12), st.integers(0, 4 * PART + 1)), min_size=1,
                    max_size=4)


def _split_stream(entries: list[tuple[bytes, int]]) -> tuple[list[common_pb2.Entry], list[tuple[bytes, bytes]]]:
    """Entries of `n` ids each, split as a peer sends them: (the entries on the wire, (path, ids) of each)."""
    sent, whole = [], []
    for i, (path, n) in enumerate(entries):
        ids = bytes([i]) * 32 * n
        sent += entry_parts.split_entry(common_pb2.Entry(path=path, type=common_pb2.ENTRY_TYPE_FILE, size=n), ids)
        whole.append((path, ids))
    return sent, whole


def _joined(entries) -> list[tuple[bytes, bytes]]:
    joiner = entry_parts.EntryJoiner()
    got = [(e.path, b"".join(ids)) for e, ids in joiner.feed(entries)]
    joiner.end()
    return got


def test_split_entries_join_back_whatever_their_sizes(record_property, monkeypatch):
    """Entries of 0 to 13 ids, split at 3 ids a part (entry_parts.py), join back to the same ids in order."""
    monkeypatch.setattr(entry_parts, "PART_IDS", PART)

    def check(entries):
        sent, whole = _split_stream(entries)
        on_wire = common_pb2.EntryBatch.FromString(common_pb2.EntryBatch(entries=sent).SerializeToString())
        assert _joined(on_wire.entries) == whole
    record_property("tries", fuzz(check, _ENTRIES, fast=200, long=1_000))


def test_damaged_streams_of_entry_parts_are_refused_typed(record_property, monkeypatch):
    """A damaged stream of split entries (parts lost, doubled, with other fields, ids cut) is IntegrityError, exit 6

    Never a traceback, nor ids that are not whole."""
    monkeypatch.setattr(entry_parts, "PART_IDS", PART)
    valid = _ENTRIES.map(lambda es: common_pb2.EntryBatch(entries=_split_stream(es)[0]).SerializeToString())

    def check(raw: bytes):
        try:
            batch = common_pb2.EntryBatch.FromString(raw)
        except DecodeError:
            return  # gRPC refuses it before the joiner sees it
        got = expect_typed(lambda: _joined(batch.entries), errors.IntegrityError)
        for _path, ids in got or ():
            assert len(ids) % 32 == 0
    record_property("tries", fuzz(check, mutated(valid)))
    assert errors.IntegrityError.exit_code == 6
