"""Byte shuffle of 4-byte numbers: exact inverse, chosen only where it pays, marked in the payload."""
from __future__ import annotations

import os
import random
import subprocess

import numpy as np
import pytest
import zstandard
from ragbackup import errors
from ragbackup.repo import chunking, shuffle
from ragbackup.repo.dictionary import frame_dict_id

PROBE = zstandard.ZstdCompressor(level=1).compress


def vectors(n: int, seed: int = 1) -> bytes:
    """float32 embeddings of dimension 384, as Chroma's HNSW segment holds them."""
    return (np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32) * 0.05).tobytes()


def text(n: int) -> bytes:
    rng = random.Random(3)
    words = [b"vector", b"retrieval", b"chunk", b"document", b"the", b"of", b"index", b"query"]
    return b" ".join(rng.choice(words) for _ in range(n // 6))[:n]


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 7, 8, 9, 4096, 100_003])
def test_unshuffle_inverts_shuffle(size):
    data = os.urandom(size)
    shuffled = shuffle.shuffle(data)
    assert len(shuffled) == size
    assert bytes(shuffle.unshuffle(shuffled)) == data
    assert bytes(shuffle.unshuffle(shuffle.shuffle(memoryview(data)))) == data


def test_shuffle_groups_each_lane():
    assert shuffle.shuffle(b"ABCDabcd12") == b"AaBbCcDd12"


def test_only_arrays_of_4_byte_numbers_are_worth_shuffling():
    assert shuffle.worth_shuffling(vectors(100), PROBE)
    assert not shuffle.worth_shuffling(text(200_000), PROBE)
    assert not shuffle.worth_shuffling(os.urandom(200_000), PROBE)


def test_compressor_shuffles_vectors_and_decompress_restores_them_exactly():
    data = vectors(700) + b"tail"
    payload, compressed = chunking.Compressor(3).compress(data)
    assert compressed and payload[:shuffle.HEADER_LEN] == shuffle.MARKER
    plain_level3 = len(zstandard.ZstdCompressor(level=3).compress(data))
    assert len(payload) < 0.95 * plain_level3
    assert bytes(chunking.decompress(payload, True, len(data))) == data
    assert frame_dict_id(payload) == 0


def test_text_and_small_chunks_carry_no_marker():
    comp = chunking.Compressor(3)
    for data in (text(300_000), vectors(10)[:chunking.SMALL_CHUNK - 1]):
        payload, compressed = comp.compress(data)
        assert compressed and payload[:4] != shuffle.MARKER[:4]
        assert bytes(chunking.decompress(payload, True, len(data))) == data


def test_zstd_tool_skips_the_marker_and_prints_the_shuffled_bytes():
    data = vectors(300)
    payload, _ = chunking.Compressor(3).compress(data)
    out = subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, check=True).stdout
    assert out == shuffle.shuffle(data)


def test_damaged_marker_is_an_integrity_error():
    data = vectors(300)
    payload = bytearray(chunking.Compressor(3).compress(data)[0])
    payload[8] = 8  # stride 8: not one this version writes
    with pytest.raises(errors.IntegrityError, match="stride 8"):
        chunking.decompress(payload, True, len(data))
