"""An RDB file captured by record in bounded memory: the chunks of the "rdb-records" layout.

In: an open RDB file (its descriptor) and a scratch directory. Out: the chunks that
rdb_layout.canonicalise gives for the whole file held in memory, byte for byte and in the
same order (descriptor, record groups in key order, permutation, element orders); next,
the capture pipeline hashes and sends them, and rdb_layout.rebuild restores them.

The file is mapped and parsed once, in order, a step at a time. Its records leave memory
in segments sorted by key (about RUN_BYTES each, never across two databases), written
with their bytes to a spill file in the scratch directory, and the mapped pages read so
far are let go. Each database's segments are then merged back in key order. What memory
holds grows with the file only by the permutation (4 bytes a record) and a read buffer
per segment; the 1,000,000-key RDB held whole cost 410 MB (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import heapq
import mmap
import os
import struct
import sys
import tempfile
import zlib
from array import array
from dataclasses import dataclass
from typing import IO, Iterator

import blake3

from ragbackup.repo import rdb, rdb_layout

# Bytes of records sorted in memory and spilled as one segment: the mapped pages they lie
# in are held until then, with their keys (about 60,000 records of the benchmark's mix).
RUN_BYTES = 16 * 1024 * 1024
PARSE_STEP = 4 * 1024 * 1024  # bytes of records parsed between looks at what to spill
READ_BYTES = 32 * 1024  # bytes read from the spill at a time, per segment being merged (52 at 3,000,000 keys)
SPILL_RECORDS = 4096  # records encoded per write to the spill
# A spilled record: file index, value type, key length, record length; the key and the record follow.
_ENTRY = struct.Struct("<QBIQ")

Entry = tuple[bytes, int, int, bytes]  # (encoded key, file index, value type, record bytes)


@dataclass(frozen=True)
class _Segment:
    first: int  # file index of its first record (segments are in file order)
    offset: int  # where it lies in the spill
    length: int


def _drop(m: mmap.mmap) -> None:
    """Let go of the mapped pages touched so far (they stay in the page cache, not in our RSS)."""
    if hasattr(mmap, "MADV_DONTNEED"):
        m.madvise(mmap.MADV_DONTNEED)


def _encode(m, first: int, pending: rdb.Parsed, order: list[int]) -> bytes:
    """The pending records named by `order` (indexes into it; file indexes from `first`) as
    spill entries, their bytes read from the mapped file `m`."""
    keys, starts, ends, types = pending.keys, pending.starts, pending.ends, pending.types
    pack = _ENTRY.pack
    parts: list[bytes] = []
    add = parts.extend
    for j in order:
        k, s, e = keys[j], starts[j], ends[j]
        add((pack(first + j, types[j], len(k), e - s), k, m[s:e]))
    return b"".join(parts)


class _Spiller:
    """rdb.parse's `after`: takes the records found, spills them as key-sorted segments.

    In: the mapped file and an open spill file. Out (once parsed): `segments`, the
    records' total bytes (`canonical`) and the whole file's BLAKE3 (`hash`).
    """

    def __init__(self, m: mmap.mmap, spill: IO[bytes]) -> None:
        self.m, self.spill = m, spill
        self.pending = rdb.Parsed(version=0, size=0, skeleton=b"")
        self.taken = self.canonical = self.written = self.hashed = 0
        self.segments: list[_Segment] = []
        self.hash = blake3.blake3()

    def __call__(self, out: rdb.Parsed) -> None:
        p = self.pending
        if out.starts:  # the records of one call are contiguous: all of one run
            self.canonical += out.ends[-1] - out.starts[0]
        self.taken += len(out.starts)
        p.keys += out.keys
        p.starts += out.starts
        p.ends += out.ends
        p.types += out.types
        out.keys.clear()
        del out.starts[:], out.ends[:], out.types[:]
        run_done = sum(c for _, c in out.runs) == self.taken
        if p.starts and (run_done or p.ends[-1] - p.starts[0] >= RUN_BYTES):
            self._spill()

    def _spill(self) -> None:
        p = self.pending
        first, end = self.taken - len(p.starts), p.ends[-1]
        order = sorted(range(len(p.keys)), key=p.keys.__getitem__)  # stable: equal keys keep file order
        size = 0
        for lo in range(0, len(order), SPILL_RECORDS):
            size += self.spill.write(_encode(self.m, first, p, order[lo:lo + SPILL_RECORDS]))
        self.segments.append(_Segment(first, self.written, size))
        self.written += size
        self.pending = rdb.Parsed(version=0, size=0, skeleton=b"")
        self.hash_to(end)
        _drop(self.m)

    def hash_to(self, end: int) -> None:
        """Hash the file up to `end` (records and the skeleton between them, in file order)."""
        with memoryview(self.m) as view, view[self.hashed:end] as part:
            self.hash.update(part)
        self.hashed = max(self.hashed, end)


def _more(fd: int, rest: bytes, at: int, end: int, need: int) -> tuple[bytes, int]:
    """`rest` with more of the spill read from `at` (before `end`): at least `need` bytes,
    unless the segment ends first. Out: (the buffer, the spill offset after it)."""
    want = min(end - at, max(READ_BYTES, need - len(rest)))
    return rest + os.pread(fd, want, at), at + want


def _entries(fd: int, seg: _Segment) -> Iterator[Entry]:
    """One segment's records, in its (key) order."""
    at, end = seg.offset, seg.offset + seg.length
    buf, pos = b"", 0
    unpack, head = _ENTRY.unpack_from, _ENTRY.size
    while pos < len(buf) or at < end:
        if len(buf) - pos < head:
            (buf, at), pos = _more(fd, buf[pos:], at, end, head), 0
        i, t, kl, rl = unpack(buf, pos)
        need = head + kl + rl
        if len(buf) - pos < need:
            (buf, at), pos = _more(fd, buf[pos:], at, end, need), 0
        k = pos + head
        pos += need
        yield buf[k:k + kl], i, t, buf[k + kl:pos]


def _merged(fd: int, runs: list[tuple[int, int]], segments: list[_Segment]) -> Iterator[Entry]:
    """Every record in canonical order: each run's segments merged by (key, file index)."""
    first, k = 0, 0
    for _, count in runs:
        mine = []
        while k < len(segments) and segments[k].first < first + count:
            mine.append(_entries(fd, segments[k]))
            k += 1
        yield from heapq.merge(*mine)
        first += count


class _Orders:
    """The reordered values' element orders, as rdb_layout.sorted_record appends them, kept in the
    unlinked file `f` (joined in memory they grew with the file: 7.5 MB at 4,000,000 keys of the
    benchmark's mix) and read back in rdb_layout.PERM_CHUNK pieces once all are in."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f, self.size = f, 0

    def append(self, order: bytes) -> None:
        self._f.write(order)
        self.size += len(order)

    def pieces(self) -> Iterator[bytes]:
        self._f.flush()
        fd, step = self._f.fileno(), rdb_layout.PERM_CHUNK
        for at in range(0, self.size, step):
            yield os.pread(fd, min(step, self.size - at), at)


def _groups(entries: Iterator[Entry], inv: array, inner: _Orders) -> Iterator[bytes]:
    """The canonical record stream in groups (rdb_layout.GROUP_TARGET); fills `inv`, the
    permutation (file index -> canonical index), and `inner`, the reordered values' element orders."""
    crc32, reordered, sort = zlib.crc32, rdb_layout.REORDERED, rdb_layout.sorted_record
    scale = (1 << 32) // rdb_layout.GROUP_TARGET
    part: list[bytes] = []
    size = 0
    for c, (key, i, t, rec) in enumerate(entries):
        inv[i] = c
        n = len(rec)
        part.append(sort(rec, 0, n, inner) if t in reordered else rec)
        size += n
        if crc32(key) < n * scale or size >= rdb_layout.GROUP_MAX:
            yield b"".join(part)
            part, size = [], 0
    if part:
        yield b"".join(part)


def _pieces(a: array) -> Iterator[bytes]:
    """The permutation (as little-endian u32) in rdb_layout.PERM_CHUNK pieces."""
    if sys.byteorder != "little":
        a.byteswap()
    with memoryview(a) as view, view.cast("B") as raw:
        for i in range(0, len(raw), rdb_layout.PERM_CHUNK):
            yield bytes(raw[i:i + rdb_layout.PERM_CHUNK])


def _scan(m: mmap.mmap, spill: IO[bytes]) -> tuple[rdb_layout.Descriptor, list[_Segment]]:
    """Parse the mapped file, spilling its records; its descriptor and the spilled segments.
    rdb.Unknown for a file the parser does not know."""
    sink = _Spiller(m, spill)
    p = rdb.parse(m, PARSE_STEP, sink)
    sink.hash_to(len(m))
    _drop(m)
    spill.flush()
    n = sink.taken
    desc = rdb_layout.Descriptor(p.size, n, sink.canonical, 4 * n, sink.hash.digest(), p.runs, p.skeleton)
    return desc, sink.segments


def canonicalise_file(fd: int, scratch: str | None = None) -> Iterator[bytes]:
    """The chunks that store the RDB file open as `fd`, in order (as rdb_layout.canonicalise).

    The spill is a temporary file in `scratch` (None: the system's). The file is parsed
    before the first chunk comes out: rdb.Unknown then, having given nothing, for a file
    the parser does not know. The file must not change while read (Redis replaces its
    dump by renaming a new one over it, which leaves this one whole).
    """
    size = os.fstat(fd).st_size
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as m, tempfile.TemporaryFile(dir=scratch) as spill, \
            tempfile.TemporaryFile(dir=scratch) as orders:
        desc, segments = _scan(m, spill)
        yield desc.encode()
        inv = array("I", bytes(4 * desc.records))
        inner = _Orders(orders)
        yield from _groups(_merged(spill.fileno(), desc.runs, segments), inv, inner)
        yield from _pieces(inv)
        del inv
        yield from inner.pieces()
