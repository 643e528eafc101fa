"""Byte shuffle of arrays of 4-byte numbers (embeddings), and its marker in a stored payload.

In: plaintext chunks. Out: whether a chunk is worth shuffling (a sample compressed
both ways), the shuffled bytes (byte 0 of every 4-byte word, then byte 1, ...),
their inverse, and the marker that says a payload holds a shuffled frame.

float32 vectors (Chroma's HNSW `data_level0.bin`, numpy arrays) compress poorly
as they are: the exponent bytes repeat, but every fourth byte. Grouped by lane
they compress about 10% smaller at zstd level 1 than unshuffled ones do at level 3
(Chroma's HNSW vectors: 3.44 against 3.85 MB for their first 4 MiB).

The marker is a zstd skippable frame before the data frame: magic 0x184D2A5E,
length 4, then the stride as a little-endian u32. The zstd tool skips it (and
prints the shuffled bytes); rag-backup's decoder reads it and unshuffles.
"""
from __future__ import annotations

import struct

from ragbackup import errors

STRIDE = 4
MAGIC = 0x184D2A5E
_HEADER = struct.Struct("<III")  # magic, content length (4), stride
MARKER = _HEADER.pack(MAGIC, 4, STRIDE)
HEADER_LEN = _HEADER.size

SAMPLE = 16 * 1024  # bytes of a chunk compressed both ways to decide
GAIN = 0.95  # shuffle when the sample's lanes compress to at most this share of the plain sample
INCOMPRESSIBLE = 0.97  # a sample that compresses no better than this is not tried shuffled
# A sample that compresses better than this as it is is not tried shuffled either: float32
# vectors compress poorly unshuffled (0.88-0.92 of a 16 KiB sample at level 1), text
# (0.37-0.40) and a Redis RDB (0.64-0.68) well, and for those the four lane compressions
# were most of the probe's cost.
COMPRESSIBLE = 0.75


def shuffle(data: bytes | memoryview, stride: int = STRIDE) -> bytes:
    """Lane i of every `stride`-byte word, for i in 0..stride-1, then the tail that fills no word."""
    raw = data if isinstance(data, bytes) else bytes(data)  # bytes slicing with a step runs in C
    whole = len(raw) - len(raw) % stride
    return b"".join([*(raw[i:whole:stride] for i in range(stride)), raw[whole:]])


def unshuffle(data: bytes | memoryview, stride: int = STRIDE) -> bytearray:
    """Inverse of shuffle."""
    view = memoryview(data).cast("B")
    whole = len(view) - len(view) % stride
    words = whole // stride
    out = bytearray(len(view))
    for i in range(stride):
        out[i:whole:stride] = view[i * words:(i + 1) * words]
    out[whole:] = view[whole:]
    return out


def worth_shuffling(data: bytes | memoryview, compress) -> bool:
    """True when the first SAMPLE bytes compress clearly smaller as separate byte lanes.

    `compress` is bytes -> bytes (zstd level 1). Each lane is compressed on its own,
    as zstd sees a shuffled chunk (a 128 KiB block holds one lane): compressing the
    shuffled sample whole would mix the lanes' byte statistics in one block and show
    no gain. Measured on 16 KiB: float32 vectors 0.90-0.92 of the plain size, text
    1.4-1.5, a Redis RDB 1.16, compressed media 1.00. Only a sample that compresses
    to between COMPRESSIBLE and INCOMPRESSIBLE of its size as it is gets its lanes tried.
    """
    sample = bytes(memoryview(data)[:SAMPLE])
    plain = len(compress(sample))
    if not len(sample) * COMPRESSIBLE <= plain < len(sample) * INCOMPRESSIBLE:
        return False
    lanes = sum(len(compress(sample[i::STRIDE])) for i in range(STRIDE))
    return lanes <= plain * GAIN


def split(payload: bytes | memoryview) -> tuple[int, memoryview]:
    """(stride, data frame) of a stored payload; stride 0 when it carries no marker.

    IntegrityError for a marker of another length or stride (a damaged or foreign payload).
    """
    view = memoryview(payload)
    if len(view) < HEADER_LEN or view[:4] != MARKER[:4]:
        return 0, view
    _, length, stride = _HEADER.unpack_from(view)
    if length != 4 or stride != STRIDE:
        raise errors.IntegrityError(f"chunk has a shuffle marker of length {length}, stride {stride}")
    return stride, view[HEADER_LEN:]
