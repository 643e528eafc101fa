"""ChunkDecoder: hands out decoded chunks in stream order, batch by batch, and refuses what does not match."""
import os

import pytest

from ragbackup import errors, wire
from ragbackup.agent.restore import ChunkDecoder
from ragbackup.repo import chunking
from ragbackup.repo.ids import chunk_id

KEY = b"k" * 32


def _batches(sizes: list[int]) -> tuple[list[list[wire.ViewChunk]], list[bytes], list[bytes]]:
    """Batches of received chunks (half compressed), their plaintexts and ids, in order."""
    comp = chunking.Compressor(3)
    batches, plain, ids = [], [], []
    for n in sizes:
        batch = []
        for i in range(n):
            data = (b"line %d\n" % i) * 500 if i % 2 else os.urandom(3000)
            payload, compressed = comp.compress(data)
            cid = chunk_id(KEY, data)
            batch.append(wire.ViewChunk(cid, memoryview(payload), compressed, len(data)))
            plain.append(data)
            ids.append(cid)
        batches.append(batch)
    return batches, plain, ids


def _decoder(batches, max_bytes=8 * 1024 * 1024):
    it = iter(batches)
    return ChunkDecoder(lambda: next(it, None), KEY, workers=2, max_bytes=max_bytes)


@pytest.mark.parametrize("max_bytes", [1, 10_000, 8 * 1024 * 1024])
def test_chunks_come_out_in_order_across_batches(max_bytes):
    batches, plain, ids = _batches([3, 1, 7, 2])
    dec = _decoder(batches, max_bytes)
    try:
        assert [bytes(dec(i)) for i in ids] == plain
        with pytest.raises(errors.IntegrityError, match="ended before all chunks"):
            dec(ids[0])
    finally:
        dec.close()


def test_out_of_order_and_damaged_chunks_are_refused():
    batches, _, ids = _batches([3])
    dec = _decoder(batches)
    try:
        with pytest.raises(errors.IntegrityError, match="out of order"):
            dec(ids[1])
    finally:
        dec.close()
    batches, _, ids = _batches([2])
    c = batches[0][0]
    bad = bytearray(c.payload)
    bad[-1] ^= 1
    batches[0][0] = wire.ViewChunk(c.id, memoryview(bytes(bad)), c.compressed, c.raw_size)
    dec = _decoder(batches)
    try:
        with pytest.raises(errors.IntegrityError):
            dec(ids[0])
    finally:
        dec.close()
