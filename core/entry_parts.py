"""An entry's chunk ids over several messages: a file of millions of chunks never crosses as one.

In (split_entry): a protobuf Entry and its chunk ids joined (32 bytes each), or a SpilledIds.
Out: the entry carrying its first PART_IDS ids with `more_chunk_ids` set, then bare entries
carrying only the next ids, the last with the flag clear. In (EntryJoiner.feed): entries in
stream order. Out: (entry, its chunk ids) per whole entry, a split entry's parts joined (a
ChunkIds, or with a spill directory a SpilledIds).

A peer sends parts only to a peer that reads them: the controller asks for them in
CaptureStart.entry_parts, an agent names wire.ENTRY_PARTS in HealthReply.features. Without parts,
an entry is one message, under gRPC's 64 MiB limit: an RDB taken by record names a chunk per
KiB, so that limit held RDBs to 1 GiB (docs/FORMAT.md).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, TypeVar

from ragbackup import errors
from ragbackup.repo.tree import ID_SIZE, IdBuffer, SpilledIds, received_chunk_ids

PART_IDS = 65_536  # chunk ids a message carries at most (2 MiB)
Entry = Any  # a protobuf ragbackup.v1.Entry (core does not import the generated code)
_PART_FIELDS = {"chunk_ids", "more_chunk_ids"}  # all a part after the first may set
T = TypeVar("T")


def runs(items: Iterable[T], id_count: Callable[[T], int]) -> Iterator[tuple[list[T], bool]]:
    """Pure: `items` in order, as (run, split): runs of those of at most PART_IDS ids (`id_count`),
    which share a message, and each larger one alone (split True), which goes in parts."""
    run: list[T] = []
    for item in items:
        if id_count(item) <= PART_IDS:
            run.append(item)
            continue
        if run:
            yield run, False
            run = []
        yield [item], True
    if run:
        yield run, False


def split_entry(entry: Entry, ids: bytes | bytearray | memoryview | SpilledIds) -> Iterator[Entry]:
    """`entry` with `ids` (joined, or spilled) put in: itself when they fit one part, else its
    parts in order. Each part is a copy of at most PART_IDS ids; `entry` (the first part) is
    changed in place."""
    step = PART_IDS * ID_SIZE
    size = len(ids) * ID_SIZE if isinstance(ids, SpilledIds) else len(ids)
    if size <= step:
        if size:
            entry.chunk_ids = b"".join(ids.blocks(step)) if isinstance(ids, SpilledIds) else bytes(ids)
        yield entry
        return
    if isinstance(ids, SpilledIds):
        yield from _parts(entry, ids.blocks(step), size, step)
        return
    with memoryview(ids) as view:
        yield from _parts(entry, (bytes(view[at:at + step]) for at in range(0, size, step)), size, step)


def _parts(entry: Entry, blocks: Iterator[bytes], size: int, step: int) -> Iterator[Entry]:
    """`entry` and bare entries carrying `blocks` (`step` bytes each but the last; `size` in all)."""
    for at, block in zip(range(0, size, step), blocks):
        part = entry if at == 0 else type(entry)()
        part.chunk_ids = block
        part.more_chunk_ids = at + step < size
        yield part


class EntryJoiner:
    """Whole entries from a stream's entries, a split entry's parts joined; one per stream.

    In: `spill`, a directory where a split entry's ids are kept in an unlinked file (SpilledIds,
    for a reader that needs them only in order), or None to keep them in memory (ChunkIds).
    IntegrityError, naming the entry, for a first part that also sets `chunks`, a later part that
    sets any field but chunk_ids and more_chunk_ids (an entry cut short), a part of no ids, and,
    from `end()`, a stream that stopped before an entry's last part.
    """

    def __init__(self, spill: str | None = None) -> None:
        self._spill = spill
        self._head: Entry | None = None
        self._ids = IdBuffer()

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
        self._ids.close()
        if self._head is not None:
            raise errors.IntegrityError(f"entry {self._head.path!r}: the stream ended before the last part "
                                        "of its chunk ids")

    def _start(self, e: Entry) -> None:
        if e.chunks or not e.chunk_ids:
            raise errors.IntegrityError(f"entry {e.path!r}: its first part names no chunk ids joined")
        self._head = e
        self._ids = IdBuffer(self._spill, spill_after=0)  # in memory (gathered in place) without `spill`
        self._ids.add(e.chunk_ids)
        e.ClearField("chunk_ids")

    def _add(self, e: Entry) -> None:
        head = self._head
        fields = {f.name for f, _ in e.ListFields()}
        if not fields <= _PART_FIELDS or not e.chunk_ids:
            raise errors.IntegrityError(f"entry {head.path!r}: a part of its chunk ids came with other fields "
                                        f"({', '.join(sorted(fields - _PART_FIELDS)) or 'no ids'}): "
                                        "the entry was cut short")
        self._ids.add(e.chunk_ids)

    def _finish(self) -> tuple[Entry, Iterable[bytes]]:
        head, self._head = self._head, None
        head.more_chunk_ids = False
        try:
            return head, self._ids.take()
        except ValueError as exc:
            raise errors.IntegrityError(f"entry {head.path!r}: {exc}") from None
