"""The "rdb-records" layout: an RDB file stored as its records in key order, and rebuilt.

In (capture): a file's bytes and its `rdb.Parsed`. Out: the chunks to store, in order:
a descriptor (skeleton, runs, whole-file BLAKE3), the records sorted by key and cut
into small groups at record boundaries chosen by the keys, and the file's own record
order (a permutation). In (restore): those chunks in order. Out: the file's exact
bytes, piece by piece, checked against the whole-file hash at the end.

Redis writes its keys in hash-table order, which changes at every restart; in key
order an unchanged record is stored in an unchanged chunk, so a day that changes 2%
of the keys stores about the groups holding them and the permutation.
"""
from __future__ import annotations

import os
import struct
import sys
import tempfile
import zlib
from array import array
from dataclasses import dataclass
from typing import Iterable, Iterator

import blake3

from ragbackup import errors
from ragbackup.repo import rdb
from ragbackup.repo.tree import RDB_RECORDS

LAYOUT = RDB_RECORDS
DESC_MAGIC = b"RAGRDB\x01\n"
_DESC = struct.Struct("<8sQQQQ32sI")  # magic, file size, records, canonical bytes, permutation bytes, hash, runs
_RUN = struct.Struct("<QQ")
# A group of records ends after a record whose key's CRC-32 falls below
# len(record) * 2**32 / GROUP_TARGET: groups of about GROUP_TARGET bytes whose
# boundaries depend only on the records around them. Redis values of a few hundred
# bytes and a day changing 1-2% of them: 1 KiB groups leave most groups unchanged.
GROUP_TARGET = 1024
GROUP_MAX = 64 * 1024  # a group is closed at a record boundary once this long
PERM_CHUNK = 64 * 1024  # bytes of the permutation per chunk
PERM_READ = 64 * 1024  # bytes of the permutation a rebuild reads back from its spool at a time (16,384 records)
_PERM_WIDTH = 4
OUT_BATCH = 1024 * 1024  # bytes of the rebuilt file per piece handed to the writer
# Values Redis writes in hash-table order (a set or hash too large for a listpack): their
# members, or field-value pairs, are stored sorted, and their own order (1, 2 or 4 bytes
# an element, by count) follows the permutation.
REORDERED = frozenset({rdb.T_SET, rdb.T_HASH})


@dataclass(frozen=True)
class Descriptor:
    size: int
    records: int
    canonical: int  # bytes of the canonical record stream
    permutation: int  # bytes of the permutation
    digest: bytes  # BLAKE3 of the whole file
    runs: list[tuple[int, int]]
    skeleton: bytes

    def encode(self) -> bytes:
        head = _DESC.pack(DESC_MAGIC, self.size, self.records, self.canonical, self.permutation, self.digest,
                          len(self.runs))
        return head + b"".join(_RUN.pack(o, n) for o, n in self.runs) + self.skeleton

    @classmethod
    def decode(cls, data: bytes | memoryview) -> "Descriptor":
        """IntegrityError for anything that is not a descriptor of this layout."""
        data = bytes(data)
        if len(data) < _DESC.size or data[:8] != DESC_MAGIC:
            raise errors.IntegrityError("rdb-records: the first chunk is not an RDB layout descriptor")
        _, size, n, canonical, perm, digest, nruns = _DESC.unpack_from(data)
        at = _DESC.size + nruns * _RUN.size
        if len(data) < at:
            raise errors.IntegrityError("rdb-records: the descriptor is truncated")
        runs = [_RUN.unpack_from(data, _DESC.size + i * _RUN.size) for i in range(nruns)]
        if perm != _PERM_WIDTH * n:
            raise errors.IntegrityError(f"rdb-records: a permutation of {perm} bytes for {n} records")
        if (counted := sum(count for _, count in runs)) != n:
            raise errors.IntegrityError(f"rdb-records: runs of {counted} records for {n} records")
        return cls(size, n, canonical, perm, digest, runs, data[at:])


def _order(p: rdb.Parsed) -> array:
    """Record indexes (file order) sorted by key within each run: the canonical order."""
    keys = p.keys
    order = array("Q")
    first = 0
    for _, count in p.runs:
        order.extend(sorted(range(first, first + count), key=keys.__getitem__))
        first += count
    return order


def _permutation(order: array) -> bytes:
    """For each record in file order, its index in the canonical stream (u32 little-endian)."""
    inv = array("I", bytes(4 * len(order)))
    for c, i in enumerate(order):
        inv[i] = c
    if sys.byteorder != "little":
        inv.byteswap()
    return inv.tobytes()


def _code(n: int) -> str:
    """The array type code of an element order for `n` elements."""
    return "B" if n <= 0x100 else "H" if n <= 0x10000 else "I"


def _le(a: array) -> array:
    if sys.byteorder != "little":
        a.byteswap()
    return a


def sorted_record(b, s: int, e: int, inner: list[bytes]) -> bytes:
    """A SET or HASH record with its elements sorted; their file order is appended to `inner`."""
    _, head, items = rdb.elements(b, s)
    n = len(items)
    if n < 2:
        return b[s:e]
    order = sorted(range(n), key=lambda j: b[items[j][0]:items[j][1]])
    inv = array(_code(n), bytes(array(_code(n)).itemsize * n))
    for c, j in enumerate(order):
        inv[j] = c
    inner.append(_le(inv).tobytes())
    out = b[s:head] + b"".join([b[items[j][0]:items[j][2]] for j in order])
    if len(out) != e - s:
        raise ValueError(f"RDB record at offset {s}: its sorted elements hold {len(out)} bytes, not {e - s}")
    return out


def _groups(b, p: rdb.Parsed, order: array, inner: list[bytes]) -> Iterator[bytes]:
    """The canonical record stream in groups cut at record boundaries (see GROUP_TARGET)."""
    starts, ends, keys, types = p.starts, p.ends, p.keys, p.types
    crc32 = zlib.crc32
    scale = (1 << 32) // GROUP_TARGET
    part: list = []
    size = 0
    for i in order:
        s, e = starts[i], ends[i]
        part.append(sorted_record(b, s, e, inner) if types[i] in REORDERED else b[s:e])
        size += e - s
        if crc32(keys[i]) < (e - s) * scale or size >= GROUP_MAX:
            yield b"".join(part)
            part, size = [], 0
    if part:
        yield b"".join(part)


def pieces(data: bytes) -> list[bytes]:
    """`data` in PERM_CHUNK pieces (the permutation, the element orders)."""
    return [data[i:i + PERM_CHUNK] for i in range(0, len(data), PERM_CHUNK)]


def canonicalise(b, p: rdb.Parsed) -> Iterator[bytes]:
    """The chunks that store the file `b` parsed as `p`, in order: the descriptor, the
    record groups (cut lazily, from `b`), the permutation, the reordered values' element orders."""
    order = _order(p)
    perm = _permutation(order)
    canonical = sum(p.ends[i] - p.starts[i] for i in range(len(p.starts)))
    yield Descriptor(p.size, len(p.starts), canonical, len(perm), blake3.blake3(b).digest(), p.runs,
                     p.skeleton).encode()
    inner: list[bytes] = []
    yield from _groups(b, p, order, inner)
    yield from pieces(perm)
    yield from pieces(b"".join(inner))


def _spool(chunks: Iterator, desc: Descriptor, spool) -> rdb.Heads:
    """Write the canonical stream (the first `desc.canonical` bytes of `chunks`) to `spool`,
    indexing its records as they pass.

    Out: the records' starts (the stream's end appended), which of them had their elements
    sorted, and those records' element counts. The stream is parsed here, from the bytes in
    hand, in the pieces it is written in (about OUT_BATCH bytes of record groups), not read
    back from the spool: one pass, no page faults. A record cut by a piece's end (groups end
    at records; older writers too) is parsed with the next piece.
    """
    heads = rdb.Heads(starts=array(_width(desc.canonical)), counts=array(_width(desc.canonical)))
    left, base, carry = desc.canonical, 0, b""
    held: list = []
    size = 0
    while left > 0:
        c = next(chunks)
        if len(c) > left:
            raise errors.IntegrityError("rdb-records: a record chunk runs past the canonical stream")
        held.append(c)
        size += len(c)
        left -= len(c)
        if size >= OUT_BATCH or left <= 0:
            piece = b"".join(held)
            spool.write(piece)
            carry, base = _index_piece(carry + piece if carry else piece, base, heads)
            held, size = [], 0
    if carry or len(heads.starts) != desc.records:
        raise errors.IntegrityError(f"rdb-records: the record stream holds {len(heads.starts)} whole records, "
                                    f"expected {desc.records}")
    heads.starts.append(desc.canonical)
    return heads


def _width(largest: int) -> str:
    """The array type code for numbers up to `largest`: 4 bytes a number where that is enough."""
    return "I" if largest < 1 << 32 else "Q"


def _index_piece(piece: bytes, base: int, heads: rdb.Heads) -> tuple[bytes, int]:
    """Index the whole records of `piece` (at offset `base` of the stream) into `heads`.

    Out: the bytes of a record the piece ends inside, and the stream offset where they start.
    """
    try:
        done = rdb.heads(piece, len(piece), base, heads)
    except rdb.Unknown as e:
        raise errors.IntegrityError(f"rdb-records: the record stream does not parse: {e}") from None
    return piece[done:], base + done


def _tail(chunks: Iterator, desc: Descriptor, spool) -> int:
    """Write the chunks after the record stream, the permutation then the element orders, to
    `spool` after it. Out: the element orders' length.

    Neither is held: the permutation (4 bytes a record) is read back in order, a block at a
    time, and an element order when its record is rebuilt (a pread of about 0.4 us: 0.4 s of
    CPU for the 950,000 reordered records of 4,000,000, where held they took 7.5 MB).
    """
    left, orders = desc.permutation, 0
    for c in chunks:
        n = min(len(c), left)
        if n % _PERM_WIDTH:
            raise errors.IntegrityError("rdb-records: a permutation chunk ends inside an entry")
        spool.write(c)
        left -= n
        orders += len(c) - n
    if left:
        raise errors.IntegrityError(f"rdb-records: permutation of {desc.permutation - left} bytes, "
                                    f"expected {desc.permutation}")
    return orders


@dataclass(frozen=True)
class _Index:
    """Where each record of the canonical stream starts (and the stream's end); which records
    had their elements sorted (`reordered`: a SET or HASH of two elements or more, bit c % 8
    of byte c // 8 for record c); for those, in stream order, where their element order starts
    in the element orders (`at`); and for each 64 records, how many of those come before them
    (`ranks`), which finds a record's place in `at` without a list of those records (4 bytes
    each). The bit and rank took 0.15 s less than a type byte and a bisection of that list for
    1,000,000 records of the benchmark's mix (a quarter of them reordered)."""

    starts: array
    reordered: bytearray
    ranks: array
    at: array

    def order_at(self, c: int) -> int:
        """Where the element order of record `c`, one of `reordered`, starts in the element orders."""
        j = c >> 3
        below = int.from_bytes(self.reordered[j & ~7:j + 1], "little") & ((1 << (c & 63)) - 1)
        return self.at[self.ranks[c >> 6] + below.bit_count()]


def _index(heads: rdb.Heads, orders: int, records: int) -> _Index:
    """The `_Index` of an indexed record stream of `records` records whose element orders are
    `orders` bytes long. The element counts become, in place, where each element order starts."""
    at = heads.counts
    if at.typecode == "I" and _width(orders) == "Q":  # element orders of 4 GiB or more
        at = array("Q", iter(at))
    pos = 0
    for k, n in enumerate(at):
        at[k] = pos
        pos += n if n <= 0x100 else 2 * n if n <= 0x10000 else 4 * n  # 1, 2 or 4 bytes an element (_code)
        if pos > orders:
            break
    if pos != orders:
        raise errors.IntegrityError(f"rdb-records: element orders of {orders} bytes for the records' element counts")
    flags = heads.reordered
    flags.extend(bytes((records + 7) // 8 - len(flags)))
    return _Index(heads.starts, flags, _ranks(flags), at)


def _ranks(flags: bytearray) -> array:
    """For each 64 bits of the bitmap `flags` (8 bytes), how many bits before them are set."""
    ranks = array(_width(8 * len(flags)))
    r = 0
    for i in range(0, len(flags), 8):
        ranks.append(r)
        r += int.from_bytes(flags[i:i + 8], "little").bit_count()
    return ranks


def _reorder(rec: bytes, fd: int, at: int) -> bytes:
    """A SET or HASH record with its sorted elements put back in file order, the order read
    from `fd` at `at`."""
    head, bounds = rdb.element_bounds(rec, 0)
    n = len(bounds) - 1
    inv = array(_code(n))
    inv.frombytes(os.pread(fd, inv.itemsize * n, at))
    _le(inv)
    try:
        return rec[:head] + b"".join([rec[bounds[k]:bounds[k + 1]] for k in inv])
    except IndexError:
        raise errors.IntegrityError("rdb-records: an element order names an element that does not exist") from None


@dataclass(frozen=True)
class _Canonical:
    """The spool: the canonical stream, then the permutation, then the element orders (from
    `orders` on), read with pread (a mapping read out of order maps each record's page and its
    neighbours into the process's RSS, 16 pages a fault whatever madvise says, and letting go
    of them often cost more system time than pread); and the stream's index."""

    fd: int
    index: _Index
    orders: int


def _perm_blocks(fd: int, desc: Descriptor) -> Iterator[array]:
    """The permutation, read back from the spool (after the canonical stream) in blocks of
    PERM_READ bytes; IntegrityError for a block naming a record that does not exist, before
    any of it is used."""
    end = desc.canonical + desc.permutation
    for at in range(desc.canonical, end, PERM_READ):
        block = array("I")
        block.frombytes(os.pread(fd, min(PERM_READ, end - at), at))
        if max(_le(block)) >= desc.records:
            raise errors.IntegrityError("rdb-records: the permutation names a record that does not exist")
        yield block


def _run_records(desc: Descriptor, blocks: Iterator[array]) -> Iterator[tuple[int, memoryview]]:
    """Each run's skeleton offset with its records in file order, as one slice of a block of
    the permutation or several (runs and blocks end at different records). The descriptor's
    runs hold exactly its records, as the blocks do."""
    block, j = memoryview(array("I")), 0
    for offset, count in desc.runs:
        while count > 0:
            if j == len(block):
                block, j = memoryview(next(blocks)), 0
            part = block[j:j + count]
            j += len(part)
            count -= len(part)
            yield offset, part


def _file_pieces(desc: Descriptor, canon: _Canonical) -> Iterator[bytes]:
    """The skeleton with each run's records in file order, in pieces of about OUT_BATCH bytes."""
    fd, idx, orders = canon.fd, canon.index, canon.orders
    starts, reordered, order_at = idx.starts, idx.reordered, idx.order_at
    pread = os.pread
    sk = desc.skeleton
    out = bytearray()
    pos = 0
    for offset, part in _run_records(desc, _perm_blocks(fd, desc)):
        out += sk[pos:offset]
        pos = offset
        for c in part:
            s = starts[c]
            rec = pread(fd, starts[c + 1] - s, s)
            out += _reorder(rec, fd, orders + order_at(c)) if reordered[c >> 3] >> (c & 7) & 1 else rec
            if len(out) >= OUT_BATCH:
                yield out
                out = bytearray()
    out += sk[pos:]
    yield out


def rebuild(chunks: Iterable[bytes | memoryview], spool_dir: str | None = None) -> Iterator[bytes | memoryview]:
    """The file's bytes, in pieces, from its stored chunks in order.

    The chunks after the descriptor, about the file's size, are spooled to an unlinked
    temporary file in `spool_dir` (page cache, not the process's memory) and read back
    from it. None: the system's temporary directory, which may be memory itself (a tmpfs
    /tmp, Debian's default since 13): a restore passes a directory on the target's disk.
    What stays in memory grows by about 4 bytes a record (where it starts in the spool; 8
    for a record stream of 4 GiB or more), a bit a record (whether its elements were sorted)
    and 4 bytes for each record whose elements were (where their order starts).
    IntegrityError when the rebuilt bytes do not hash to the digest recorded at capture, or
    the chunks do not fit the descriptor.
    """
    it = iter(chunks)
    try:
        desc = Descriptor.decode(next(it))
    except StopIteration:
        raise errors.IntegrityError("rdb-records: the file has no chunks") from None
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        try:
            heads = _spool(it, desc, spool)
        except StopIteration:
            raise errors.IntegrityError("rdb-records: the file's chunks end inside the record stream") from None
        idx = _index(heads, _tail(it, desc, spool), desc.records)
        del heads
        spool.flush()
        canon = _Canonical(spool.fileno(), idx, desc.canonical + desc.permutation)
        yield from _checked(desc, _file_pieces(desc, canon))


def _checked(desc: Descriptor, pieces: Iterator[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """`pieces`, hashed as they pass; IntegrityError at the end unless they are the recorded file."""
    h = blake3.blake3()
    size = 0
    for piece in pieces:
        h.update(piece)
        size += len(piece)
        yield piece
    if size != desc.size or h.digest() != desc.digest:
        raise errors.IntegrityError("rdb-records: the rebuilt file does not match the hash recorded at capture")
