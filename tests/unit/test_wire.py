"""Hand-encoded chunk batches are exactly what protobuf would send, and parse back."""
import os
import random

import pytest

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
