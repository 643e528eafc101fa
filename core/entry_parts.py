"""An entry's chunk ids over several messages: a file of millions of chunks never crosses as one.

In (split_entry): a protobuf Entry and its chunk ids joined (32 bytes each). Out: the entry
carrying its first PART_IDS ids with `more_chunk_ids` set, then bare entries carrying only the
next ids, the last with the flag clear. In (EntryJoiner.feed): entries in stream order. Out:
(entry, its chunk ids) per whole entry, a split entry's parts joined into one ChunkIds.

A peer sends parts only to a peer that reads them: the controller asks for them in
CaptureStart.entry_parts, an agent names wire.ENTRY_PARTS in HealthReply.features. Without parts,
an entry is one message, under gRPC's 64 MiB limit: an RDB taken by record names a chunk per
KiB, so that limit held RDBs to 1 GiB (docs/FORMAT.md).
"""
from __future__ import annotations

import tempfile
from typing import IO, Any, Iterable, Iterator

from ragbackup import errors
from ragbackup.repo.tree import ID_SIZE, ChunkIds, received_chunk_ids

PART_IDS = 65_536  # chunk ids a message carries at most (2 MiB)
READ_BLOCK = 1 << 20  # bytes of ids a SpilledIds reads back at once (a whole number of ids)
Entry = Any  # a protobuf ragbackup.v1.Entry (core does not import the generated code)
_PART_FIELDS = {"chunk_ids", "more_chunk_ids"}  # all a part after the first may set


def split_entry(entry: Entry, ids: bytes | bytearray | memoryview) -> Iterator[Entry]:
    """`entry` with `ids` (joined) put in: itself when they fit one part, else its parts in order.

    Each part is a copy of at most PART_IDS ids; `entry` (the first part) is changed in place.
    """
    step = PART_IDS * ID_SIZE
    if len(ids) <= step:
        if ids:
            entry.chunk_ids = bytes(ids)
        yield entry
        return
    with memoryview(ids) as view:
        for at in range(0, len(view), step):
            part = entry if at == 0 else type(entry)()
            part.chunk_ids = bytes(view[at:at + step])
            part.more_chunk_ids = at + step < len(view)
            yield part


class SpilledIds(Iterable[bytes]):
    """A split entry's chunk ids joined in an unlinked temporary file, read back in order, once.

    An agent restoring a file needs its ids only in order, as its chunks arrive, and they all
    come before the first chunk: an RDB of 4,000,000 records names 1,090,000 (35 MB). The file
    is closed once they are read (or when this is dropped).
    """

    def __init__(self, f: IO[bytes], count: int):
        self._f, self._count = f, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        f = self._f
        if f.closed:
            raise ValueError("spilled chunk ids are read once")
        try:
            f.seek(0)
            while block := f.read(READ_BLOCK):
                yield from (block[i:i + ID_SIZE] for i in range(0, len(block), ID_SIZE))
        finally:
            f.close()


class EntryJoiner:
    """Whole entries from a stream's entries, a split entry's parts joined; one per stream.

    In: `spill`, a directory where a split entry's ids are kept in a temporary file (SpilledIds,
    for a reader that needs them only in order), or None to keep them in memory (ChunkIds).
    IntegrityError, naming the entry, for a first part that also sets `chunks`, a later part that
    sets any field but chunk_ids and more_chunk_ids (an entry cut short), a part of no ids, and,
    from `end()`, a stream that stopped before an entry's last part.
    """

    def __init__(self, spill: str | None = None) -> None:
        self._spill = spill
        self._head: Entry | None = None
        self._ids = bytearray()  # the parts' ids so far (grown in place: no copy at twice the size)
        self._file: IO[bytes] | None = None  # or there, with `spill`
        self._bytes = 0

    def feed(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, Iterable[bytes]]]:
        """(entry, its chunk ids) for each entry of `entries` that is whole once they are read."""
        for e in entries:
            if self._head is None and not e.more_chunk_ids:
                yield e, received_chunk_ids(e)
            elif self._head is None:
                self._start(e)
            else:
                self._add(e)
                if not e.more_chunk_ids:
                    yield self._finish()

    def end(self) -> None:
        """The stream is over: IntegrityError when an entry still waits for parts."""
        if self._file is not None:
            self._file.close()
        if self._head is not None:
            raise errors.IntegrityError(f"entry {self._head.path!r}: the stream ended before the last part "
                                        "of its chunk ids")

    def _start(self, e: Entry) -> None:
        if e.chunks or not e.chunk_ids:
            raise errors.IntegrityError(f"entry {e.path!r}: its first part names no chunk ids joined")
        self._head = e
        if self._spill is not None:
            self._file = tempfile.TemporaryFile(dir=self._spill)
        self._take(e.chunk_ids)
        e.ClearField("chunk_ids")

    def _add(self, e: Entry) -> None:
        head = self._head
        fields = {f.name for f, _ in e.ListFields()}
        if not fields <= _PART_FIELDS or not e.chunk_ids:
            raise errors.IntegrityError(f"entry {head.path!r}: a part of its chunk ids came with other fields "
                                        f"({', '.join(sorted(fields - _PART_FIELDS)) or 'no ids'}): "
                                        "the entry was cut short")
        self._take(e.chunk_ids)

    def _take(self, ids: bytes) -> None:
        if self._file is not None:
            self._file.write(ids)
        else:
            self._ids += ids
        self._bytes += len(ids)

    def _finish(self) -> tuple[Entry, ChunkIds | SpilledIds]:
        head, ids, f, size = self._head, self._ids, self._file, self._bytes
        self._head, self._ids, self._file, self._bytes = None, bytearray(), None, 0
        head.more_chunk_ids = False
        if size % ID_SIZE:
            if f is not None:
                f.close()
            raise errors.IntegrityError(f"entry {head.path!r}: chunk id buffer of {size} bytes is not a whole "
                                        "number of ids")
        return head, (ChunkIds(ids) if f is None else SpilledIds(f, size // ID_SIZE))
