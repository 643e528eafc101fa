"""Hand-encoded chunk batches are exactly what protobuf would send, and parse back."""
import os
import random

import pytest

from google.protobuf.message import DecodeError

from ragbackup import wire
from ragbackup.v1 import agent_pb2, common_pb2


def _chunks(seed: int, n: int) -> list[tuple[bytes, bytes, bool, int]]:
    rnd = random.Random(seed)
    sizes = [0, 1, 127, 128, 16383, 16384, 300_000, 2 * 1024 * 1024 + 3]
    return [(os.urandom(32) if rnd.random() > 0.1 else b"", os.urandom(rnd.choice(sizes)),
             rnd.random() > 0.5, rnd.choice([0, 1, 127, 128, 4 * 1024 * 1024])) for _ in range(n)]


@pytest.mark.parametrize("cls", [agent_pb2.CaptureEvent, agent_pb2.RestoreCommand])
@pytest.mark.parametrize("seed", range(6))
def test_encoding_equals_protobuf_serialization(cls, seed):
    chunks = _chunks(seed, seed * 3)
    expected = cls(chunks=common_pb2.ChunkBatch(
        chunks=[common_pb2.Chunk(id=i, payload=p, compressed=c, raw_size=r) for i, p, c, r in chunks]))
    got = wire.encode_chunk_batch(3, chunks)
    assert got == expected.SerializeToString()
    parsed = cls.FromString(got)
    assert parsed.WhichOneof("kind") == "chunks"
    assert [(c.id, c.payload, c.compressed, c.raw_size) for c in parsed.chunks.chunks] == chunks


def test_memoryview_payloads_and_varints():
    data = os.urandom(1000)
    got = wire.encode_chunk_batch(3, [(b"i" * 32, memoryview(data)[10:500], True, 490)])
    assert agent_pb2.RestoreCommand.FromString(got).chunks.chunks[0].payload == data[10:500]
    for n in (0, 1, 127, 128, 300, 2**32 - 1, 2**63):
        raw = wire.varint(n)
        value = sum((b & 0x7F) << (7 * i) for i, b in enumerate(raw))
        assert value == n and all(b & 0x80 for b in raw[:-1]) and not raw[-1] & 0x80


def test_serialize_passes_bytes_and_serializes_messages():
    msg = agent_pb2.RestoreCommand(finish=agent_pb2.RestoreFinish())
    assert wire.serialize(msg) == msg.SerializeToString()
    assert wire.serialize(b"\x1a\x00") == b"\x1a\x00"


@pytest.mark.parametrize("cls", [agent_pb2.CaptureEvent, agent_pb2.RestoreCommand])
@pytest.mark.parametrize("seed", range(4))
def test_deserializer_gives_what_protobuf_parses(cls, seed):
    chunks = _chunks(seed, 1 + seed * 5)
    raw = wire.encode_chunk_batch(3, chunks)
    got = wire.chunk_batch_deserializer(cls)(raw)
    assert isinstance(got, wire.ChunkMessage) and got.WhichOneof("kind") == "chunks"
    ref = cls.FromString(raw).chunks.chunks
    assert [(c.id, bytes(c.payload), c.compressed, c.raw_size) for c in got.chunks.chunks] == \
        [(c.id, c.payload, c.compressed, c.raw_size) for c in ref]
    assert all(isinstance(c.payload, memoryview) for c in got.chunks.chunks)


def test_deserializer_skips_unknown_fields_and_keeps_the_last_value():
    chunk = (b"\x0a\x02id" + b"\x12\x03abc" + b"\x18\x01" + b"\x20\x05"   # the four known fields
             + b"\x28\x07" + b"\x31" + b"8bytes!!" + b"\x3a\x01z" + b"\x45" + b"4byt"  # unknown ones
             + b"\x20\x06")                                                 # raw_size again: last wins
    batch = b"\x0a" + wire.varint(len(chunk)) + chunk + b"\x10\x01"         # and an unknown batch field
    raw = b"\x1a" + wire.varint(len(batch)) + batch
    got = wire.chunk_batch_deserializer(agent_pb2.RestoreCommand)(raw).chunks.chunks
    ref = agent_pb2.RestoreCommand.FromString(raw).chunks.chunks
    assert [(c.id, bytes(c.payload), c.compressed, c.raw_size) for c in got] == \
        [(c.id, c.payload, c.compressed, c.raw_size) for c in ref] == [(b"id", b"abc", True, 6)]


def test_deserializer_leaves_other_messages_to_protobuf():
    de = wire.chunk_batch_deserializer(agent_pb2.RestoreCommand)
    finish = agent_pb2.RestoreCommand(finish=agent_pb2.RestoreFinish()).SerializeToString()
    assert de(finish).WhichOneof("kind") == "finish"
    assert de(b"") == agent_pb2.RestoreCommand()
    two_fields = wire.encode_chunk_batch(3, [(b"a" * 32, b"x", False, 1)]) + b"\x22\x00"
    assert isinstance(de(two_fields), agent_pb2.RestoreCommand)


@pytest.mark.parametrize("cut", [1, 2, 5, 40, 60])
def test_deserializer_refuses_a_truncated_batch(cut):
    batch = common_pb2.ChunkBatch(chunks=[common_pb2.Chunk(id=b"a" * 32, payload=b"p" * 100, compressed=True,
                                                           raw_size=100)]).SerializeToString()
    inner = batch[:-cut]  # a batch whose chunk is cut short, framed as if whole
    framed = b"\x1a" + wire.varint(len(inner)) + inner
    with pytest.raises(DecodeError):
        wire.chunk_batch_deserializer(agent_pb2.RestoreCommand)(framed)


@pytest.mark.parametrize("tail", [b"", b"\x28\x07", b"\x20\x09", b"\x18\x00"])
def test_restore_framed_chunks_parse_as_protobuf_does_and_anything_more_the_general_way(tail):
    """A chunk framed as the sender frames it (32-byte id, payload, flag, raw size) is read
    at fixed places; one with a field more (unknown, repeated, a zero flag) is parsed in full."""
    chunks = [(os.urandom(32), os.urandom(n), n % 2 == 0, n + 7) for n in (1, 127, 128, 1000, 16383, 16384)]
    batch = wire.encode_chunk_batch(3, chunks)
    _, pos = wire._varint_at(batch, 1, len(batch))
    body = b"".join(b"\x0a" + wire.varint(len(c) + len(tail)) + c + tail for c in _split_chunks(batch[pos:]))
    raw = b"\x1a" + wire.varint(len(body)) + body
    got = wire.chunk_batch_deserializer(agent_pb2.RestoreCommand)(raw).chunks.chunks
    ref = agent_pb2.RestoreCommand.FromString(raw).chunks.chunks
    assert [(c.id, bytes(c.payload), c.compressed, c.raw_size) for c in got] == \
        [(c.id, c.payload, c.compressed, c.raw_size) for c in ref]
    if not tail:
        assert [(c.id, bytes(c.payload), c.compressed, c.raw_size) for c in got] == chunks


def _split_chunks(batch: bytes) -> list[bytes]:
    """The encoded Chunk messages of a ChunkBatch's body."""
    out, pos = [], 0
    while pos < len(batch):
        n, start = wire._varint_at(batch, pos + 1, len(batch))
        out.append(batch[start:start + n])
        pos = start + n
    return out
