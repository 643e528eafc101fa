"""Redis RDB files split into their key records and the bytes around them (the skeleton).

In: the bytes of a file (bytes, or an mmap) that begins with Redis's magic `REDIS00vv`.
Out: `Parsed`: the skeleton (header, aux fields, SELECTDB/RESIZEDB, EOF and checksum),
where each run of key records sits in it, and every record's extent and encoded key;
next, rdb_layout.py turns them into a canonical stream and rebuilds the file from it.

Values are not decoded: each value type's byte extent is skipped over (lengths,
strings with their int and LZF encodings, listpacks and ziplists as strings, streams
field by field). A version, opcode or value type this parser does not know (modules,
MODULE_AUX, types added after Redis 7.2) raises `Unknown`, and the caller stores the
file as plain chunks.
"""
from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from typing import Callable

from ragbackup import errors

MAGIC = b"REDIS"
HEADER_LEN = 9  # "REDIS" + four ASCII digits
VERSIONS = range(9, 13)  # Redis 5.0 (9) .. 7.4 (12)
CHECKSUM_LEN = 8

# Opcodes (rdb.h)
OP_SLOT_INFO = 0xF4
OP_FUNCTION2 = 0xF5
OP_MODULE_AUX = 0xF7
OP_IDLE = 0xF8
OP_FREQ = 0xF9
OP_AUX = 0xFA
OP_RESIZEDB = 0xFB
OP_EXPIRETIME_MS = 0xFC
OP_EXPIRETIME = 0xFD
OP_SELECTDB = 0xFE
OP_EOF = 0xFF

# Value types (rdb.h)
T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2 = 0, 1, 2, 3, 4, 5
T_LIST_QUICKLIST, T_STREAM, T_LIST_QUICKLIST_2 = 14, 15, 18
T_STREAM_2, T_STREAM_3 = 19, 21
# Types stored as one string (a ziplist, listpack, intset or zipmap blob).
ONE_STRING = frozenset({T_STRING, 9, 10, 11, 12, 13, 16, 17, 20})

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Unknown(errors.RagBackupError):
    """The file is not an RDB this parser knows record by record (the message says why).

    Capture stores such a file as plain chunks; a restore of the layout reports IntegrityError.
    """


@dataclass
class Parsed:
    """An RDB file split into records and skeleton.

    `runs` holds (offset in skeleton, record count) pairs: that many records, in file
    order, stand at that offset of the skeleton. `starts`/`ends` are the records'
    extents in the file, `keys` their encoded key bytes (the canonical sort key).
    """

    version: int
    size: int
    skeleton: bytes
    runs: list[tuple[int, int]] = field(default_factory=list)
    starts: array = field(default_factory=lambda: array("Q"))
    ends: array = field(default_factory=lambda: array("Q"))
    keys: list[bytes] = field(default_factory=list)
    types: bytearray = field(default_factory=bytearray)  # each record's value type


def version_of(head: bytes) -> int | None:
    """The RDB version of a file beginning with `head`, or None if it is no RDB file."""
    if len(head) < HEADER_LEN or head[:5] != MAGIC or not head[5:HEADER_LEN].isdigit():
        return None
    return int(head[5:HEADER_LEN])


def _length(b, p: int) -> tuple[int, int]:
    """(length, position after it) of the length encoding at `p`."""
    c = b[p]
    t = c >> 6
    if t == 0:
        return c & 0x3F, p + 1
    if t == 1:
        return ((c & 0x3F) << 8) | b[p + 1], p + 2
    if c == 0x80:
        return _U32.unpack_from(b, p + 1)[0], p + 5
    if c == 0x81:
        return _U64.unpack_from(b, p + 1)[0], p + 9
    raise Unknown(f"unexpected length encoding 0x{c:02x} at offset {p}")


def _string(b, p: int) -> int:
    """Position after the string encoded at `p` (raw, integer or LZF)."""
    c = b[p]
    t = c >> 6
    if t == 0:
        return p + 1 + (c & 0x3F)
    if t == 1:
        return p + 2 + (((c & 0x3F) << 8) | b[p + 1])
    if t == 2:
        n, p = _length(b, p)
        return p + n
    enc = c & 0x3F
    if enc == 0:
        return p + 2
    if enc == 1:
        return p + 3
    if enc == 2:
        return p + 5
    if enc == 3:  # LZF: compressed length, original length, data
        clen, p = _length(b, p + 1)
        _, p = _length(b, p)
        return p + clen
    raise Unknown(f"unknown string encoding 0x{c:02x} at offset {p}")


def _strings(b, p: int, n: int) -> int:
    for _ in range(n):
        p = _string(b, p)
    return p


def _lengths(b, p: int, n: int) -> int:
    for _ in range(n):
        _, p = _length(b, p)
    return p


def _zset_v1(b, p: int, n: int) -> int:
    """Members with scores as strings: 253/254/255 are nan/+inf/-inf, else a length byte."""
    for _ in range(n):
        p = _string(b, p)
        d = b[p]
        p += 1 if d >= 253 else 1 + d
    return p


def _stream(b, p: int, t: int) -> int:
    """Position after a stream value (rdb.c, RDB_TYPE_STREAM_LISTPACKS 1-3)."""
    n, p = _length(b, p)
    p = _strings(b, p, 2 * n)  # (master id, listpack) per node
    p = _lengths(b, p, 3 if t == T_STREAM else 8)  # length, last id; v2+: first id, max deleted id, entries added
    groups, p = _length(b, p)
    for _ in range(groups):
        p = _string(b, p)
        p = _lengths(b, p, 2 if t == T_STREAM else 3)  # last id; v2+: entries read
        pel, p = _length(b, p)
        for _ in range(pel):
            _, p = _length(b, p + 16 + 8)  # raw id, delivery time, delivery count
        consumers, p = _length(b, p)
        for _ in range(consumers):
            p = _string(b, p) + (16 if t == T_STREAM_3 else 8)  # name, seen time (v3: active time)
            pel, p = _length(b, p)
            p += 16 * pel
    return p


def skip_value(b, p: int, t: int) -> int:
    """Position after a value of type `t` that starts at `p`; Unknown for types not known."""
    if t in ONE_STRING:
        return _string(b, p)
    if t in (T_LIST, T_SET, T_LIST_QUICKLIST):
        n, p = _length(b, p)
        return _strings(b, p, n)
    if t == T_HASH:
        n, p = _length(b, p)
        return _strings(b, p, 2 * n)
    if t == T_ZSET_2:
        n, p = _length(b, p)
        for _ in range(n):
            p = _string(b, p) + 8
        return p
    if t == T_ZSET:
        n, p = _length(b, p)
        return _zset_v1(b, p, n)
    if t == T_LIST_QUICKLIST_2:
        n, p = _length(b, p)
        for _ in range(n):
            _, p = _length(b, p)  # container kind
            p = _string(b, p)
        return p
    if t in (T_STREAM, T_STREAM_2, T_STREAM_3):
        return _stream(b, p, t)
    raise Unknown(f"value type {t} is not known (a module type or a newer Redis)")


def _meta(b, p: int, op: int) -> int:
    """Position after a non-record opcode's operands; Unknown for opcodes not known."""
    if op == OP_AUX:
        return _string(b, _string(b, p))
    if op == OP_RESIZEDB:
        return _lengths(b, p, 2)
    if op == OP_SELECTDB:
        return _length(b, p)[1]
    if op == OP_FUNCTION2:
        return _string(b, p)
    if op == OP_SLOT_INFO:
        return _lengths(b, p, 3)
    raise Unknown(f"opcode 0x{op:02x} is not known")


def elements(b, s: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(type, end of the record's head, [(start, end of sort key, end)] of each element) of a
    SET or HASH record (a hash table's members, or field-value pairs) starting at `s`."""
    op, n, p = head(b, s)
    head_end = p
    out = []
    add, string = out.append, _string
    if op == T_HASH:
        for _ in range(n):
            q = p
            c = b[p]
            f = p + 1 + c if c < 0x40 else string(b, p)  # short raw strings inline
            c = b[f]
            p = f + 1 + c if c < 0x40 else string(b, f)
            add((q, f, p))
    else:
        for _ in range(n):
            q = p
            c = b[p]
            p = p + 1 + c if c < 0x40 else string(b, p)
            add((q, p, p))
    return op, head_end, out


def head(b, s: int) -> tuple[int, int, int]:
    """(type, element count, position after the count) of a collection record starting at `s`."""
    p, op = s, b[s]
    while op in _PREFIX:
        p = _prefix(b, p + 1, op)
        op = b[p]
    n, p = _length(b, _string(b, p + 1))
    return op, n, p


def _prefix(b, p: int, op: int) -> int:
    """Position after one of a record's prefix opcodes (expire time, LRU idle, LFU freq)."""
    if op == OP_EXPIRETIME_MS:
        return p + 8
    if op == OP_EXPIRETIME:
        return p + 4
    if op == OP_FREQ:
        return p + 1
    return _length(b, p)[1]  # OP_IDLE


_PREFIX = frozenset({OP_EXPIRETIME_MS, OP_EXPIRETIME, OP_IDLE, OP_FREQ})
_META = frozenset({OP_AUX, OP_RESIZEDB, OP_SELECTDB, OP_FUNCTION2, OP_SLOT_INFO})


def records(b, p: int, end: int, out: Parsed) -> int:
    """Parse key records from `p` until a non-record opcode or `end`; append them to `out`.

    Out: the position of the first byte that is not a record (an opcode, or `end`).
    """
    # The hot loop of parsing (a million keys): names bound locally, short strings inline.
    add_start, add_end, add_key, add_type = out.starts.append, out.ends.append, out.keys.append, out.types.append
    string, skip, prefix, one, prefixes = _string, skip_value, _prefix, ONE_STRING, _PREFIX
    size = len(b)
    while p < end:
        start = p
        op = b[p]
        while op in prefixes:
            p = prefix(b, p + 1, op)
            op = b[p]
        if op >= OP_SLOT_INFO:
            if p != start:
                raise Unknown(f"record prefix without a value at offset {start}")
            return p
        k = p + 1
        c = b[k]
        p = k + 1 + c if c < 0x40 else string(b, k)
        key = b[k:p]
        if op in one:
            c = b[p]
            p = p + 1 + c if c < 0x40 else string(b, p)
        else:
            p = skip(b, p, op)
        if p > size:  # a length field pointing past the file (up to 2**64: too large for the array)
            raise Unknown(f"the record at offset {start} runs past the end of the file")
        add_start(start)
        add_end(p)
        add_key(key)
        add_type(op)
    return p


def _run(b, p: int, out: Parsed, step: int, after: Callable[[Parsed], None] | None) -> tuple[int, int]:
    """Parse one run of records from `p`, `step` bytes at a time, calling `after` between steps.

    Out: (position after the run, records in it).
    """
    size, count = len(b), 0
    while True:
        before = len(out.starts)
        q = records(b, p, min(size, p + step), out)
        count += len(out.starts) - before
        if q == p or q >= size:
            return q, count
        if after is not None:
            after(out)
        p = q


def parse(b, step: int = 0, after: Callable[[Parsed], None] | None = None) -> Parsed:
    """Split an RDB file's bytes into skeleton and records; Unknown where it cannot.

    With `after`: it is called every `step` bytes of records and at the end of each run,
    and takes the records found so far out of the `Parsed` (`runs` still counts them);
    `out.runs` then covers every record taken. A file is so parsed in bounded memory.
    """
    version = version_of(bytes(b[:HEADER_LEN]))
    if version is None or version not in VERSIONS:
        raise Unknown(f"RDB version {version} is not one this parser knows ({VERSIONS.start}-{VERSIONS.stop - 1})")
    size = len(b)
    out = Parsed(version=version, size=size, skeleton=b"")
    skeleton: list[bytes] = []
    skel_len = 0
    p, last = HEADER_LEN, 0
    try:
        while True:
            op = b[p]
            if op == OP_EOF:
                break
            if op in _META:
                p = _meta(b, p + 1, op)
                continue
            if op >= OP_SLOT_INFO and op not in _PREFIX:
                raise Unknown(f"opcode 0x{op:02x} at offset {p} is not known")
            skeleton.append(bytes(b[last:p]))
            skel_len += p - last
            p, count = _run(b, p, out, step or size, after)
            last = p
            out.runs.append((skel_len, count))
            if after is not None:
                after(out)
    except (IndexError, struct.error) as e:
        raise Unknown(f"truncated or damaged record near offset {p}") from e
    if p + 1 + CHECKSUM_LEN != size:
        raise Unknown(f"EOF at offset {p} leaves {size - p - 1} bytes, not the {CHECKSUM_LEN}-byte checksum")
    if p > size or (out.ends and out.ends[-1] > size):
        raise Unknown("a record runs past the end of the file")
    skeleton.append(bytes(b[last:size]))
    out.skeleton = b"".join(skeleton)
    return out


@dataclass
class Heads:
    """What a restore needs of a record stream: each record's start, which records are a SET
    or HASH of two elements or more (`reordered`: bit i % 8 of byte i // 8 set for record i,
    grown as needed) and, for those in order, their element counts."""

    starts: array = field(default_factory=lambda: array("Q"))
    reordered: bytearray = field(default_factory=bytearray)
    counts: array = field(default_factory=lambda: array("Q"))


def heads(b, end: int, base: int, out: Heads) -> int:
    """Append the whole key records of b[0:end] to `out`, their starts offset by `base`.

    Out: the position after the last whole record: `end`, or the start of a record that
    runs past `end` (its rest is elsewhere). Unknown for a byte that starts no record.
    Unlike `records`, keeps no keys, ends or types: a million records, one pass, no slices.
    """
    starts, string, one, prefixes = out.starts, _string, ONE_STRING, _PREFIX
    add_start = starts.append
    p = start = 0
    try:
        while p < end:
            start, op = p, b[p]
            while op in prefixes:
                p = _prefix(b, p + 1, op)
                op = b[p]
            if op >= OP_SLOT_INFO:
                raise Unknown(f"opcode 0x{op:02x} where a key record should start, at offset {base + start}")
            c = b[p + 1]
            p = p + 2 + c if c < 0x40 else string(b, p + 1)
            n = 0
            if op in one:
                c = b[p]
                p = p + 1 + c if c < 0x40 else string(b, p)
            elif op == T_HASH or op == T_SET:
                n, p = _length(b, p)
                for _ in range(2 * n if op == T_HASH else n):  # _strings, short strings inline
                    c = b[p]
                    p = p + 1 + c if c < 0x40 else string(b, p)
            else:
                p = skip_value(b, p, op)
            if p > end:
                return start
            if n >= 2:
                _sorted_elements(out, len(starts), n)
            add_start(base + start)
    except (IndexError, struct.error):
        return start
    return p


def _sorted_elements(out: Heads, i: int, n: int) -> None:
    """Note record `i`, a SET or HASH of `n` elements, in `out`: its bit, its element count."""
    flags = out.reordered
    if i >> 3 >= len(flags):
        flags.extend(bytes((i >> 3) + 1 - len(flags)))
    flags[i >> 3] |= 1 << (i & 7)
    out.counts.append(n)


def element_bounds(b, s: int) -> tuple[int, list[int]]:
    """(end of the record's head, where each element starts and the last one ends: n + 1
    positions) of a SET or HASH record starting at `s`; a hash's element is a field and
    its value. `elements` without the sort keys: what a restore needs to reorder them."""
    op, n, p = head(b, s)
    out = [p]
    add, string = out.append, _string
    for _ in range(n):
        c = b[p]
        p = p + 1 + c if c < 0x40 else string(b, p)
        if op == T_HASH:
            c = b[p]
            p = p + 1 + c if c < 0x40 else string(b, p)
        add(p)
    return out[0], out
