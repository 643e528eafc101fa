"""Pack files: many encrypted blobs in one object, with an encrypted header at the end.

In: sealed blobs from the blob store. Out: a finished pack file on local disk
(named by a random id) and the `BlobLocation`s it holds, which the index records
next. Every byte of a pack is authenticated (magic, sealed blobs, sealed header,
trailer), so no separate content hash is kept. Layout: docs/FORMAT.md.
"""
from __future__ import annotations

import os
import struct
import tempfile
from typing import Iterable, Iterator, NamedTuple

from ragbackup import direct, errors
from ragbackup.repo.crypto import Cipher

MAGIC = b"RBPACK01"
HEADER_AAD = b"rag-backup pack header v1"
# id(32) type(1) flags(1) offset(8) length(4) raw_length(4)
_RECORD = struct.Struct("<32sBBQII")
_TRAILER = struct.Struct("<I8s")  # header length, magic
RECORD_SIZE = _RECORD.size

BLOB_DATA = 0
BLOB_TREE = 1
FLAG_ZSTD = 1


class BlobLocation(NamedTuple):
    """Where one blob lives: pack id, byte range of its sealed form, and how to decode it.

    A named tuple, not a frozen dataclass: a restore makes one per chunk (hundreds of
    thousands for an RDB stored by record), and a frozen dataclass's __init__ sets each
    field through object.__setattr__, about four times the cost of building a tuple.
    """

    id: bytes
    type: int
    flags: int
    offset: int
    length: int
    raw_length: int
    pack: str = ""

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_ZSTD)


def pack_key(pack_id: str) -> str:
    """Storage key of a pack."""
    return f"data/{pack_id[:2]}/{pack_id}"


def blob_aad(blob_id: bytes) -> bytes:
    """Associated data binding a sealed blob to its id (a swapped blob fails to open)."""
    return b"blob:" + blob_id


WRITE_BATCH = 1024 * 1024  # sealed bytes gathered before one writev(2)
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class PackWriter:
    """Appends sealed blobs to a temp file; `finish` writes the header and names the pack.

    Where the filesystem allows it the file is written with O_DIRECT (ragbackup.direct):
    a pack is written once, front to back, then synced, and is not read again soon,
    so its bytes need neither the page cache's copy nor its room. Otherwise sealed
    blobs are gathered and written with writev(2), WRITE_BATCH bytes at a time.
    """

    def __init__(self, directory: str, cipher: Cipher):
        self._cipher = cipher
        self._fd, self.path = tempfile.mkstemp(prefix=".pack-", dir=directory)
        self._direct = direct.DirectWriter() if direct.enable(self._fd) else None
        if self._direct is not None:
            self._direct.start(self._fd)
        self._records: list[bytes] = []  # one packed header record (_RECORD) per blob
        self._gathered: list[bytes | bytearray] = []
        self._gathered_bytes = 0
        self.size = 0
        self._write(MAGIC)

    def _write(self, data: bytes | bytearray) -> None:
        self.size += len(data)
        if self._direct is not None:
            self._direct.add(data)
            return
        self._gathered.append(data)
        self._gathered_bytes += len(data)
        if self._gathered_bytes >= WRITE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._direct is not None:
            self._direct.finish(self.size)
            return
        write_all(self._fd, self._gathered)
        self._gathered, self._gathered_bytes = [], 0

    def add(self, blob_id: bytes, blob_type: int, flags: int, raw_length: int, sealed: bytes | bytearray) -> None:
        self._records.append(_RECORD.pack(blob_id, blob_type, flags, self.size, len(sealed), raw_length))
        self._write(sealed)

    @property
    def count(self) -> int:
        return len(self._records)

    def finish(self, fsync: bool = True) -> tuple[str, list[BlobLocation]]:
        """Write header + trailer, fsync, close. Returns (a new random pack id, locations with pack set)."""
        header = b"".join(self._records)
        sealed = self._cipher.seal(header, HEADER_AAD)
        self._write(sealed)
        self._write(_TRAILER.pack(len(sealed), MAGIC))
        self._flush()
        if fsync:
            os.fsync(self._fd)
        self._close()
        pack_id = os.urandom(32).hex()
        return pack_id, [BlobLocation(*_RECORD.unpack(r), pack=pack_id) for r in self._records]

    def _close(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def abort(self) -> None:
        try:
            self._close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def write_all(fd: int, buffers: list) -> None:
    """writev(2) every buffer in order, however the kernel splits the writes."""
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    while views:
        n = os.writev(fd, views[:_IOV_MAX])
        i = 0
        while i < len(views) and n >= len(views[i]):
            n -= len(views[i])
            i += 1
        views = views[i:]
        if n:
            views[0] = views[0][n:]


def parse_header(cipher: Cipher, pack_id: str, data: bytes) -> list[BlobLocation]:
    """Read the blob list from a whole pack's bytes (used by verify and index rebuild)."""
    return [BlobLocation(*r, pack=pack_id) for r in header_records(cipher, pack_id, data)]


def header_records(cipher: Cipher, pack_id: str, data: bytes | memoryview) -> list[tuple]:
    """The authenticated header of a whole pack's bytes as plain rows
    (id, type, flags, offset, length, raw_length), the column order of the index cache.

    Rows, not BlobLocations: replication compares them with the index's rows for every
    pack it copies (a scale-0.5 snapshot holds 140,000 blobs). IntegrityError when the
    magic or trailer is wrong, the header fails authentication or places a blob outside.
    """
    if len(data) < len(MAGIC) + _TRAILER.size or bytes(data[:len(MAGIC)]) != MAGIC:
        raise errors.IntegrityError(f"pack {pack_id}: not a rag-backup pack (bad magic)")
    hlen, magic = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    if magic != MAGIC or hlen > len(data):
        raise errors.IntegrityError(f"pack {pack_id}: bad trailer")
    start = len(data) - _TRAILER.size - hlen
    if start < len(MAGIC):
        raise errors.IntegrityError(f"pack {pack_id}: bad trailer")
    rows = _header_rows(cipher, pack_id, memoryview(data)[start:start + hlen])
    if rows and (min(r[3] for r in rows) < len(MAGIC) or max(r[3] + r[4] for r in rows) > start):
        raise errors.IntegrityError(f"pack {pack_id}: header places a blob outside the pack")
    return rows


def _header_rows(cipher: Cipher, pack_id: str, sealed: bytes | memoryview) -> list[tuple]:
    return list(_RECORD.iter_unpack(_open_records(cipher, pack_id, sealed)))


def _open_records(cipher: Cipher, pack_id: str, sealed: bytes | memoryview) -> bytes:
    """The plaintext of a sealed header: IntegrityError when it fails authentication or is not whole records."""
    try:
        records = cipher.open(sealed, HEADER_AAD)
    except errors.IntegrityError:
        raise errors.IntegrityError(f"pack {pack_id}: header failed authentication") from None
    if len(records) % _RECORD.size:
        raise errors.IntegrityError(f"pack {pack_id}: header length {len(records)} is not whole records")
    return records


def read_header(storage, cipher: Cipher, pack_id: str, size: int) -> list[BlobLocation]:
    """The blob list of a stored pack of `size` bytes, read with two range requests (trailer, header).

    Packs describe their own blobs, so an index can be rebuilt from them. IntegrityError
    when the pack is too short, its trailer is wrong, or its header fails authentication.
    """
    header = read_header_bytes(storage, cipher, pack_id, size)
    return [header_record(header, pack_id, i) for i in range(len(header.records) // _RECORD.size)]


class PackHeader(NamedTuple):
    """A pack's authenticated header as stored: `records` (RECORD_SIZE bytes a blob, in the pack's
    order) and `data_end`, where its blobs end (no blob may reach past it)."""

    records: bytes
    data_end: int


def header_record(header: PackHeader, pack_id: str, i: int) -> BlobLocation:
    """The location of the header's `i`-th blob; IntegrityError when it lies outside the pack's blobs."""
    loc = BlobLocation(*_RECORD.unpack_from(header.records, i * _RECORD.size), pack=pack_id)
    if loc.offset < len(MAGIC) or loc.offset + loc.length > header.data_end:
        raise errors.IntegrityError(f"pack {pack_id}: header places a blob outside the pack")
    return loc


def read_header_bytes(storage, cipher: Cipher, pack_id: str, size: int) -> PackHeader:
    """The opened header of a stored pack of `size` bytes (two range requests: trailer, header),
    its records not yet parsed. IntegrityError when the pack is too short, its trailer is wrong,
    its header fails authentication or is not whole records."""
    if size < len(MAGIC) + _TRAILER.size:
        raise errors.IntegrityError(f"pack {pack_id}: {size} bytes is too short for a pack")
    trailer = storage.get_range(pack_key(pack_id), size - _TRAILER.size, _TRAILER.size)
    if len(trailer) != _TRAILER.size:
        raise errors.IntegrityError(f"pack {pack_id}: shorter than its listed {size} bytes")
    hlen, magic = _TRAILER.unpack(trailer)
    if magic != MAGIC or hlen > size - len(MAGIC) - _TRAILER.size:
        raise errors.IntegrityError(f"pack {pack_id}: bad trailer")
    sealed = storage.get_range(pack_key(pack_id), size - _TRAILER.size - hlen, hlen)
    return PackHeader(_open_records(cipher, pack_id, sealed), size - _TRAILER.size - hlen)


def read_runs(locs: Iterable[BlobLocation], max_span: int) -> Iterator[list[BlobLocation]]:
    """Pure: `locs` in order, grouped into runs that lie back to back in one pack.

    A run covers at most `max_span` bytes of its pack, except a single blob larger
    than that, which is a run of its own. Out: lists whose concatenated ranges are
    one contiguous range each.
    """
    run: list[BlobLocation] = []
    for loc in locs:
        if run:
            last = run[-1]
            if (loc.pack == last.pack and loc.offset == last.offset + last.length
                    and loc.offset + loc.length - run[0].offset <= max_span):
                run.append(loc)
                continue
            yield run
        run = [loc]
    if run:
        yield run
