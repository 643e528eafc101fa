"""Content-defined chunking, chunk ids and compression of chunk payloads.

In: file streams or buffers plus the repository's ChunkerParams and id key.
Out: `Prepared` chunks (id, payload, compressed flag, raw size) ready to offer
to the controller's blob store. Used by the agent (files) and controller (trees).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator

import pyfastcdc
import zstandard

from ragbackup import errors
from ragbackup.repo import shuffle
from ragbackup.repo.ids import chunk_id
from ragbackup.repo.dictionary import NO_DICTIONARIES, Dictionaries, frame_dict_id

MiB = 1024 * 1024

# Stored raw when compression saves less than this fraction.
MIN_SAVING = 0.01


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC parameters; `avg_size` is what FastCDC calls avg (actual mean is avg+min)."""

    min_size: int = 256 * 1024
    avg_size: int = 768 * 1024
    max_size: int = 4 * MiB
    seed: int = 0

    def make(self) -> pyfastcdc.FastCDC:
        return pyfastcdc.FastCDC(self.avg_size, min_size=self.min_size, max_size=self.max_size,
                                 seed=self.seed & 0xFFFFFFFF)


@dataclass(frozen=True)
class Prepared:
    """A chunk ready for the blob store; `payload` is zstd data when `compressed`."""

    id: bytes
    payload: bytes
    compressed: bool
    raw_size: int


# Chunks below this size (SQLite pages, small files) are compressed at SMALL_LEVEL when the
# configured level is at most SMALL_LEVEL_UP_TO: within a 16 KiB input zstd's level 3 finds
# almost nothing level 1 misses (0.8% fewer bytes on Chroma's pages) for 50% more CPU.
SMALL_CHUNK = 64 * 1024
SMALL_LEVEL = 1
SMALL_LEVEL_UP_TO = 3


def small_chunk_level(level: int) -> int:
    """The zstd level for chunks below SMALL_CHUNK, given the repository's configured level."""
    return min(level, SMALL_LEVEL) if level <= SMALL_LEVEL_UP_TO else level


class Compressor:
    """zstd at the configured level (small chunks: small_chunk_level); one per thread.

    With `dictionary` (bytes of a repository dictionary, see dictionary.py) small
    chunks are compressed against it and their frames name its id. A larger chunk
    of 4-byte numbers (shuffle.worth_shuffling) is byte-shuffled, compressed at
    small_chunk_level, and stored behind shuffle.MARKER.
    """

    def __init__(self, level: int = 3, dictionary: bytes | None = None):
        self.level = level
        self.dictionary = dictionary
        self._cctx = zstandard.ZstdCompressor(level=level)
        small = small_chunk_level(level)
        if dictionary:
            d = zstandard.ZstdCompressionDict(dictionary)
            d.precompute_compress(level=small)
            self._small = zstandard.ZstdCompressor(level=small, dict_data=d)
        else:
            self._small = self._cctx if small == level else zstandard.ZstdCompressor(level=small)
        self._fast = zstandard.ZstdCompressor(level=small)  # shuffled chunks
        self._probe = zstandard.ZstdCompressor(level=1)

    def compress(self, data: bytes | memoryview) -> tuple[bytes, bool]:
        """Return (payload, compressed): raw bytes when zstd does not shrink by MIN_SAVING."""
        raw = len(data)
        if raw < 64:
            return bytes(data), False
        if raw < SMALL_CHUNK:
            out = self._small.compress(data)
        elif shuffle.worth_shuffling(data, self._probe.compress):
            out = shuffle.MARKER + self._fast.compress(shuffle.shuffle(data))
        else:
            out = self._cctx.compress(data)
        if len(out) > raw * (1 - MIN_SAVING):
            return bytes(data), False
        return out, True


_DICT_ID_FLAG = 0x03


def decompress(payload: bytes | memoryview, compressed: bool, raw_size: int,
               dicts: Dictionaries = NO_DICTIONARIES) -> bytes | bytearray:
    """Inverse of Compressor.compress; IntegrityError if the payload does not decode to raw_size bytes.

    A frame that names a dictionary is decoded with that one from `dicts`
    (IntegrityError if `dicts` lacks it); a payload behind shuffle.MARKER is unshuffled.
    """
    if not compressed:
        return bytes(payload)
    stride, frame = shuffle.split(payload)
    # Byte 4 of a zstd frame (its header descriptor) says in bits 0-1 whether it names a
    # dictionary: most frames do not, and reading that byte costs less than parsing the
    # header (a restore decodes a few hundred thousand small frames).
    names_dict = len(frame) < 5 or frame[4] & _DICT_ID_FLAG
    dctx = dicts.decompressor(frame_dict_id(frame) if names_dict else 0)
    try:
        data = dctx.decompress(frame, max_output_size=raw_size)
    except zstandard.ZstdError as exc:
        raise errors.IntegrityError(f"chunk does not decompress: {exc}") from None
    if len(data) != raw_size:
        raise errors.IntegrityError(f"chunk decompressed to {len(data)} bytes, expected {raw_size}")
    return shuffle.unshuffle(data, stride) if stride else data


def prepare(id_key: bytes, data: bytes | memoryview, compressor: Compressor) -> Prepared:
    """Hash and compress one chunk of plaintext."""
    payload, compressed = compressor.compress(data)
    return Prepared(chunk_id(id_key, data), payload, compressed, len(data))


def cut_stream(params: ChunkerParams, stream: BinaryIO) -> Iterator[memoryview]:
    """Yield chunk views of `stream`; each view is valid only until the next one is taken."""
    for c in params.make().cut_stream(stream):
        yield c.data


def cut_buffer(params: ChunkerParams, buf: bytes | memoryview) -> Iterator[memoryview]:
    """Yield chunk views of an in-memory buffer."""
    for c in params.make().cut_buf(buf):
        yield c.data


SQLITE_MAGIC = b"SQLite format 3\x00"
# Chunk size for SQLite files: a whole number of pages. Pages change in place and
# scattered, so content-defined 1 MiB chunks would nearly all change on a small
# update; page-aligned small chunks keep the unchanged pages deduplicated.
SQLITE_CHUNK = 16 * 1024


def sqlite_page_size(header: bytes) -> int | None:
    """The page size of a SQLite database file from its first 100 bytes, or None if not SQLite."""
    if len(header) < 18 or not header.startswith(SQLITE_MAGIC):
        return None
    size = int.from_bytes(header[16:18], "big")
    size = 65536 if size == 1 else size
    if size < 512 or size & (size - 1):
        return None
    return size


def sqlite_chunk_size(page_size: int, target: int = SQLITE_CHUNK) -> int:
    """A multiple of the page size close to `target` (at least one page)."""
    return page_size * max(1, target // page_size)


BATCH = 2 * MiB


def read_full(stream: BinaryIO, view: memoryview) -> int:
    """readinto until `view` is full or the stream ends; returns the byte count."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def cdc_batches(params: ChunkerParams, stream: BinaryIO, batch: int = BATCH) -> Iterator[list[memoryview]]:
    """FastCDC chunks of a stream as views, in lists of about `batch` bytes.

    Each list's views point into one buffer of its own, so they stay valid after the
    next list is produced (workers can hash them without copying). Boundaries equal
    those of streaming FastCDC: the buffer's last, possibly forced, chunk is carried
    over and cut again with the following bytes.
    """
    cdc = params.make()
    batch = max(batch, params.max_size)  # a buffer always holds a whole chunk past the carried one
    carry = b""
    while True:
        buf = bytearray(len(carry) + batch)
        buf[:len(carry)] = carry
        n = len(carry) + read_full(stream, memoryview(buf)[len(carry):])
        eof = n < len(buf)
        views = [c.data for c in cdc.cut_buf(memoryview(buf)[:n])] if n else []
        carry = bytes(views.pop()) if not eof and len(views) > 1 else b""
        if views:
            yield views
        if eof:
            return


def fixed_batches(stream: BinaryIO, size: int, batch: int = BATCH) -> Iterator[list[memoryview]]:
    """Fixed-size chunk views (the last may be shorter), in lists of about `batch` bytes."""
    per = max(size, batch - batch % size)
    while True:
        buf = bytearray(per)
        n = read_full(stream, memoryview(buf))
        if n:
            view = memoryview(buf)[:n]
            yield [view[i:i + size] for i in range(0, n, size)]
        if n < per:
            return


def cut_fixed(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Fixed-size chunks (the last may be shorter)."""
    while True:
        data = stream.read(size)
        if not data:
            return
        yield data


class _Replay:
    """A forward-only stream that yields `head` again before the rest of `stream`."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = memoryview(head)
        self._stream = stream

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._stream.readinto(buf)

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            piece = bytearray(size - len(out))
            n = self.readinto(memoryview(piece))
            if not n:
                break
            out += piece[:n]
        return bytes(out)


def file_batches(params: ChunkerParams, stream: BinaryIO) -> Iterator[list[memoryview | bytes]]:
    """Chunks of one file, as every capture and import cuts them, in batches; forward-only reads.

    One chunk up to `params.min_size`; page-aligned fixed chunks for a SQLite database;
    FastCDC otherwise. The same bytes always give the same chunks, so imports deduplicate
    against captures.
    """
    head = read_up_to(stream, params.min_size + 1)
    if len(head) <= params.min_size:
        if head:
            yield [head]
        return
    rest = _Replay(head, stream)
    page = sqlite_page_size(head[:100])
    if page is not None:
        yield from fixed_batches(rest, sqlite_chunk_size(page))
    else:
        yield from cdc_batches(params, rest)


def read_up_to(stream: BinaryIO, n: int) -> bytes:
    buf = bytearray(n)
    return bytes(memoryview(buf)[:read_full(stream, memoryview(buf))])


def cut_file(params: ChunkerParams, stream: BinaryIO) -> Iterator[bytes]:
    """file_batches, one chunk at a time, as bytes."""
    for batch in file_batches(params, stream):
        for view in batch:
            yield bytes(view)
