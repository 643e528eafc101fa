"""Hostile input: chunk batches on the wire (core/wire.py), damaged and random, against protobuf's parser."""
from __future__ import annotations

from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz, mutated

from ragbackup import wire
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
