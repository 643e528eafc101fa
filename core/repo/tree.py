"""Entries of a captured component and their stored form (a JSON-lines tree).

In: entries from a capture stream, in walk order. Out: JSON lines the controller
chunks into tree blobs, and back; plus `check_relative_path`, the one rule every
restore applies to a path before writing anything.
"""
from __future__ import annotations

import binascii
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator, Sequence

from ragbackup import errors

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
TYPES = (FILE, DIR, SYMLINK, HARDLINK)
RDB_RECORDS = "rdb-records"  # a file's layout: a Redis RDB stored by record (rdb_layout.py)
LAYOUTS = ("", RDB_RECORDS)
# The component's own directory: a "dir" entry with this path, first in a tree, carries the
# root's mode, owner and mtime. Trees written before it existed have none (see restore.py).
ROOT = b"."
PIECE_IDS = 4096  # chunk ids per piece of a written line (Entry.json_pieces)
ID_SIZE = 32
# Lines at least this long (about 1,000 chunks) are decoded into a ChunkIds buffer.
COMPACT_LINE = 64 * 1024
# A reader given a spill directory keeps a list of more than this many bytes of ids in a file there.
SPILL_AFTER = 4 * 1024 * 1024
READ_BLOCK = 1024 * 1024  # bytes of spilled ids read at once (a whole number of ids)


@dataclass
class Entry:
    """One filesystem object, path relative to the component root (bytes, as on disk)."""

    path: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    size: int = 0
    chunks: Sequence[bytes] = field(default_factory=list)  # a list, or a protobuf repeated field
    target: bytes = b""  # symlink target, or hardlink's first path
    # A sparse file's holes as flat (offset, length) pairs, ascending: `chunks` hold only the
    # bytes outside them, and the holes read as zeros. Empty for a file stored whole.
    holes: Sequence[int] = ()
    # How `chunks` make the file: "" their concatenation; rdb_layout.LAYOUT, a Redis RDB
    # stored by record (docs/FORMAT.md).
    layout: str = ""

    def _doc(self, chunks: bool = True) -> dict:
        d = {"p": os.fsdecode(self.path), "t": self.type, "m": self.mode, "u": self.uid, "g": self.gid,
             "mt": self.mtime_ns}
        if self.type == FILE:
            d["s"] = self.size
            if self.holes:
                d["h"] = list(self.holes)
            if self.layout:
                d["ly"] = self.layout
            if chunks:
                d["c"] = [c.hex() for c in self.chunks]
        if self.target:
            d["l"] = os.fsdecode(self.target)
        return d

    def to_json(self) -> str:
        return _dumps(self._doc())

    def json_pieces(self) -> Iterator[bytes]:
        """The bytes of to_json() and a newline, in pieces of at most PIECE_IDS chunk ids.

        A file of a hundred thousand chunks (a large SQLite database cut by pages)
        is written without its line ever existing whole, as lists of hex strings
        and then one string: that would take about 300 bytes of memory per chunk.
        """
        if self.type != FILE or len(self.chunks) <= PIECE_IDS:
            yield self.to_json().encode() + b"\n"
            return
        d = self._doc(chunks=False)
        tail = {"l": d.pop("l")} if "l" in d else {}
        yield _dumps(d)[:-1].encode() + b',"c":['
        for n, block in enumerate(id_blocks(self.chunks, PIECE_IDS * ID_SIZE)):
            # hex of each id, separated by "," (binascii does it in C), then the quotes around each
            part = binascii.hexlify(block, b",", ID_SIZE).replace(b",", b'","')
            yield (b',"' if n else b'"') + part + b'"'
        yield b"]" + (b"," + _dumps(tail)[1:-1].encode() if tail else b"") + b"}\n"

    @classmethod
    def from_json(cls, line: str | bytes, spill: str | None = None) -> "Entry":
        """Inverse of to_json; a long chunk list (see _LongLine) becomes one ChunkIds buffer (a
        SpilledIds in directory `spill` when given and the list is over SPILL_AFTER bytes).

        IntegrityError when the line is not such an entry (damaged, or written by no version).
        """
        raw = line.encode() if isinstance(line, str) else line
        if len(raw) >= COMPACT_LINE and _CHUNKS_KEY in raw:
            return _LongLine(raw, spill).finish(b"")
        return cls._from_doc(raw, None)

    @classmethod
    def _from_doc(cls, raw: bytes, chunks: ChunkIds | SpilledIds | None) -> "Entry":
        """The entry of line `raw`; `chunks`: its chunk list, already taken out of the line, or None."""
        try:
            d = _line_doc(raw)
            if chunks is None:
                chunks = [_chunk_id(c) for c in d.get("c", [])]
            return cls(path=_path(d["p"]), type=d["t"], mode=d["m"], uid=d["u"], gid=d["g"],
                       mtime_ns=d["mt"], size=d.get("s", 0), chunks=chunks, target=_path(d.get("l", "")),
                       holes=d.get("h", ()), layout=d.get("ly", ""))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad hex, a path not encodable
            raise errors.IntegrityError(f"damaged tree line: {exc}") from None


def _line_doc(raw: bytes) -> dict:
    """A tree line's JSON object with every key of the type to_json writes; ValueError otherwise.

    `type(v) is int` (not isinstance) also refuses booleans; it is the hot path of a restore's
    tree read: the checks cost about 1.2 us of a line's 5.2 (min of 15 runs, shared 2-core machine).
    """
    d = json.loads(raw)
    try:
        ok = (type(d["p"]) is str and type(d["t"]) is str and type(d["m"]) is int and type(d["u"]) is int
              and type(d["g"]) is int and type(d["mt"]) is int and type(d.get("s", 0)) is int
              and type(d.get("l", "")) is str and type(d.get("ly", "")) is str and type(d.get("c", [])) is list
              and type(d.get("h", [])) is list)
    except (KeyError, TypeError, AttributeError):  # a key missing; not an object
        ok = False
    if not ok:
        raise ValueError("not an entry object with fields of their types")
    if "h" in d and not all(type(h) is int for h in d["h"]):
        raise ValueError("hole values are not integers")
    return d


def _chunk_id(text) -> bytes:
    if not isinstance(text, str):
        raise ValueError("a chunk id is not a hex string")
    return bytes.fromhex(text)


def _path(text: str) -> bytes:
    """A stored path as bytes: os.fsdecode's inverse (UnicodeEncodeError, a ValueError, for others)."""
    return os.fsencode(text)


def joined_ids(ids: Iterable[bytes]) -> bytes | bytearray:
    """The ids of `ids` joined (32 bytes each): a ChunkIds' own buffer, without a copy; else a join
    (of a SpilledIds' blocks: read back whole)."""
    if isinstance(ids, ChunkIds):
        return ids.buffer
    if isinstance(ids, SpilledIds):
        return b"".join(ids.blocks(READ_BLOCK))
    return b"".join(ids)


def id_blocks(ids: Iterable[bytes], size: int = READ_BLOCK) -> Iterator[bytes | bytearray | memoryview]:
    """The ids of `ids` joined, at most `size` bytes (a whole number of ids) at a time, in order:
    slices of a ChunkIds' buffer (views: valid while it lives), a SpilledIds' blocks read from
    its file, or joins of a list's ids. A long list so passes without being held whole twice."""
    step = max(ID_SIZE, size - size % ID_SIZE)
    if isinstance(ids, SpilledIds):
        yield from ids.blocks(step)
        return
    if isinstance(ids, ChunkIds):
        with memoryview(ids.buffer) as view:
            for at in range(0, len(view), step):
                yield view[at:at + step]
        return
    items = list(ids) if not isinstance(ids, Sequence) else ids
    per = step // ID_SIZE
    for at in range(0, len(items), per):
        yield b"".join(items[at:at + per])


class ChunkIds(Sequence[bytes]):
    """A file's chunk ids in one buffer of 32-byte ids, read-only; each id is given as bytes.

    A list of a hundred thousand ids costs about 80 bytes an id in objects; this, 32. The
    buffer may be a bytearray the ChunkIds then owns (nobody changes it after): a list
    gathered a part at a time is kept as it grew, not copied into bytes at twice its size.
    """

    __slots__ = ("_buf", "_bytes")

    def __init__(self, buf: bytes | bytearray):
        if len(buf) % ID_SIZE:
            raise ValueError(f"chunk id buffer of {len(buf)} bytes is not a whole number of ids")
        self._buf = buf
        self._bytes = type(buf) is bytes  # a slice of it is an id as it is

    @property
    def buffer(self) -> bytes | bytearray:
        """The ids joined, as held."""
        return self._buf

    def __len__(self) -> int:
        return len(self._buf) // ID_SIZE

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("chunk id index out of range")
        item = self._buf[i * ID_SIZE:(i + 1) * ID_SIZE]
        return item if self._bytes else bytes(item)

    def __iter__(self) -> Iterator[bytes]:
        buf = self._buf
        if self._bytes:
            return (buf[i:i + ID_SIZE] for i in range(0, len(buf), ID_SIZE))
        view = memoryview(buf)
        return (view[i:i + ID_SIZE].tobytes() for i in range(0, len(buf), ID_SIZE))

    def __eq__(self, other) -> bool:
        if isinstance(other, ChunkIds):
            return self._buf == other._buf
        if isinstance(other, (list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"ChunkIds({len(self)} ids)"


class SpilledIds(Iterable[bytes]):
    """A file's chunk ids joined in an unlinked temporary file: its length, and its ids in order
    (each pass reads the file with pread, so passes do not disturb each other), or in blocks.

    For readers that need a long list only in order: a restore sends an RDB's ids to the agent,
    then reads its chunks; an agent checks each chunk as it arrives. The file is closed with
    `close()` or when this is dropped.
    """

    def __init__(self, f: IO[bytes], count: int):
        self._f, self._count = f, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        for block in self.blocks(READ_BLOCK):
            yield from (block[i:i + ID_SIZE] for i in range(0, len(block), ID_SIZE))

    def blocks(self, size: int) -> Iterator[bytes]:
        """The ids joined, `size` bytes at a time (the last may be shorter)."""
        fd, end, at = self._f.fileno(), self._count * ID_SIZE, 0
        while at < end:
            block = os.pread(fd, min(size, end - at), at)
            if not block:
                raise errors.IntegrityError("spilled chunk ids: the file ended early")
            at += len(block)
            yield block

    def close(self) -> None:
        self._f.close()

    def __repr__(self) -> str:
        return f"SpilledIds({self._count} ids)"


class IdBuffer:
    """Chunk ids joined as they come: in memory, or, with `spill` (a directory), moved to an
    unlinked file there once over `spill_after` bytes. `take()` gives them as ChunkIds or
    SpilledIds (ValueError when they are not whole ids)."""

    def __init__(self, spill: str | None = None, spill_after: int | None = None):
        self._spill, self._after = spill, SPILL_AFTER if spill_after is None else spill_after
        self._mem = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0  # bytes taken so far

    def add(self, ids: bytes) -> None:
        """Take `ids`; an OSError (a full spill dir) names the dir and what was being done."""
        try:
            if self._file is None and self._spill is not None and self.size + len(ids) > self._after:
                self._file = tempfile.TemporaryFile(dir=self._spill)
                self._file.write(self._mem)
                self._mem = bytearray()
            if self._file is not None:
                self._file.write(ids)
            else:
                self._mem += ids
        except OSError as exc:
            raise self._located(exc) from None
        self.size += len(ids)

    def _located(self, exc: OSError) -> OSError:
        """`exc` naming the spill dir and the operation (a failed write(2) names no file)."""
        return errors.locate(exc, self._spill or "?", "keep chunk ids in")

    def joined(self) -> bytes:
        """All the ids joined, read back from the file if they were moved there."""
        if self._file is None:
            return bytes(self._mem)
        self._file.flush()
        return os.pread(self._file.fileno(), self.size, 0)

    def take(self) -> ChunkIds | SpilledIds:
        """The ids, handed over (the buffer is empty after)."""
        mem, f, size = self._mem, self._file, self.size
        self._mem, self._file, self.size = bytearray(), None, 0
        if size % ID_SIZE:
            if f is not None:
                f.close()
            raise ValueError(f"chunk id buffer of {size} bytes is not a whole number of ids")
        if f is None:
            return ChunkIds(mem)
        try:
            f.flush()
        except OSError as exc:
            f.close()
            raise self._located(exc) from None
        return SpilledIds(f, size // ID_SIZE)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def received_chunk_ids(entry) -> Sequence[bytes]:
    """A received protobuf Entry's chunk ids, from whichever field carries them.

    In: an Entry with `chunks` (one field an id) or `chunk_ids` (the ids joined, 32 bytes
    each). Out: the ids in order, a ChunkIds over the joined buffer when that field is set.
    IntegrityError when both fields are set or the joined buffer holds a partial id.
    """
    joined = entry.chunk_ids
    if not joined:
        return entry.chunks
    if entry.chunks:
        raise errors.IntegrityError(f"entry {entry.path!r} names its chunks in both chunks and chunk_ids")
    try:
        return ChunkIds(joined)
    except ValueError as exc:
        raise errors.IntegrityError(f"entry {entry.path!r}: {exc}") from None


_CHUNKS_KEY = b',"c":["'
_HEX_ITEM = 2 * ID_SIZE + 3  # '"' + 64 hex digits + '",'


def _dumps(d: dict) -> str:
    return json.dumps(d, ensure_ascii=True, separators=(",", ":"))


def encode_lines(entries: Iterable[Entry]) -> Iterator[bytes]:
    for e in entries:
        yield from e.json_pieces()


def decode_lines(data: Iterable[bytes], spill: str | None = None) -> Iterator[Entry]:
    """Entries from a stream of byte pieces that split lines anywhere.

    A line of COMPACT_LINE bytes or more whose chunk list has begun is not held as text:
    its ids are parsed as the pieces arrive (_LongLine), so an RDB entry of 816,000 chunks
    (a 55 MB line) costs its 26 MB of ids, not the line twice over. With `spill` (a
    directory), a list of more than SPILL_AFTER bytes of ids is kept in a file there and the
    entry's chunks are a SpilledIds: for a reader that needs them only in order.
    """
    pending = _Pending(spill)
    for piece in data:
        *lines, rest = bytes(piece).split(b"\n")
        if lines and pending:
            yield pending.end(lines.pop(0))
        for line in lines:
            if line:
                yield Entry.from_json(line, spill)
        if rest:
            pending.add(rest)
    if pending.long is not None or pending.text().strip():
        yield pending.end(b"")


class _Pending:
    """The line being received across pieces: its text held, or, once it is long and its chunk
    list has begun, a _LongLine parsing the ids as they come."""

    def __init__(self, spill: str | None = None):
        self._spill = spill
        self._reset()

    def _reset(self) -> None:
        self.held: list[bytes] = []
        self.size = 0
        self.listed = False  # the held text holds the chunk list's start
        self.long: _LongLine | None = None

    def __bool__(self) -> bool:
        return bool(self.held) or self.long is not None

    def text(self) -> bytes:
        return b"".join(self.held)

    def add(self, rest: bytes) -> None:
        """More of the line (not its end)."""
        if self.long is not None:
            self.long.feed(rest)
        else:
            tail = self.held[-1][1 - len(_CHUNKS_KEY):] if self.held else b""
            self.listed = self.listed or _CHUNKS_KEY in tail + rest
            self.held.append(rest)
            self.size += len(rest)
            if self.listed and self.size >= COMPACT_LINE:
                self.long = _LongLine(self.text(), self._spill)
                self.held, self.size = [], 0
        if self.long is not None and self.long.broken is not None:  # not to_json's form: parsed whole
            self.held, self.size, self.long = [self.long.broken], len(self.long.broken), None

    def end(self, last: bytes) -> Entry:
        """The line's entry, given its last bytes (before its newline); then ready for the next line."""
        long, held = self.long, self.held
        self._reset()
        if long is not None:
            return long.finish(last)
        held.append(last)
        return Entry.from_json(b"".join(held), self._spill)


class _LongLine:
    """A tree line's chunk list parsed while the line arrives (or whole); the text around it kept as is.

    In: the line's first bytes, holding `,"c":["`, then further pieces (`feed`), then its
    last piece (`finish`). Out: the entry, its ids in one ChunkIds. In to_json's output the
    first `,"c":["` is the chunk list's start: with ensure_ascii a quote inside a string is
    always escaped, so the sequence occurs nowhere else, and hex ids contain no `]`. When the
    list is not in to_json's exact form, `broken` holds the text seen so far (ids hexed back)
    for the caller to parse whole, as JSON.
    """

    def __init__(self, start: bytes, spill: str | None = None):
        at = start.find(_CHUNKS_KEY)
        self._head = start[:at]
        self._ids = IdBuffer(spill)
        self._pending = start[at + len(_CHUNKS_KEY) - 1:]  # from the first id's opening quote
        self._after: list[bytes] | None = None  # the line after the list's "]", once it ended
        self.broken: bytes | None = None
        self._take()

    def feed(self, text: bytes) -> None:
        """Take the line's next bytes (not its end); once `broken` is set the caller holds the rest."""
        if self._after is not None:
            self._after.append(text)
        else:
            self._pending += text
            self._take()

    def finish(self, last: bytes) -> Entry:
        """The entry, given the line's last bytes (before its newline)."""
        self.feed(last)
        if self.broken is not None:
            return Entry._from_doc(self.broken, None)
        if self._after is None:
            raise errors.IntegrityError("damaged tree line: its chunk list does not end")
        ids = self._ids.take()  # handed over, not copied: a 1 GiB RDB's list is 34 MB
        return Entry._from_doc(self._head + b"".join(self._after), ids)

    def _take(self) -> None:
        """Parse the whole ids in the pending text: `"` 64 hex digits `"`, each followed by `,` or `]`."""
        text = self._pending
        end = text.find(b"]")
        if end >= 0:
            n, extra = divmod(end + 1, _HEX_ITEM)
            whole = text[:end] + b","
        else:
            n, extra = len(text) // _HEX_ITEM, 0
            whole = text[:n * _HEX_ITEM]
        if extra or not self._parse(whole, n):
            self._break()
            return
        if end >= 0:
            self._after = [text[end + 1:]]
            self._pending = b""
        else:
            self._pending = text[n * _HEX_ITEM:]

    def _parse(self, items: bytes, n: int) -> bool:
        """Append the n ids of `items` (each `"hex",`); False when any is not of that form."""
        if not n:
            return True
        if (items[0::_HEX_ITEM] != b'"' * n or items[_HEX_ITEM - 2::_HEX_ITEM] != b'"' * n
                or items[_HEX_ITEM - 1::_HEX_ITEM] != b"," * n):
            return False
        try:
            self._ids.add(binascii.unhexlify(items.translate(None, b'",')))
        except (binascii.Error, ValueError):
            return False
        return True

    def _break(self) -> None:
        """Give up parsing as we go: the text seen so far, ids written back as they were read."""
        done = b""
        if self._ids.size:
            hexed = binascii.hexlify(self._ids.joined(), b",", ID_SIZE).replace(b",", b'","')
            done = b'"' + hexed + b'",'
        self.broken = self._head + _CHUNKS_KEY[:-1] + done + self._pending
        self._ids.close()
        self._ids = IdBuffer()
        self._pending = b""


def check_relative_path(path: bytes) -> list[bytes]:
    """Split a stored path into components, refusing anything that could leave the root.

    Refused with errors.UnsafePath: empty, absolute, `.`/`..`/empty components, NUL bytes.
    """
    if not path:
        raise errors.UnsafePath("refused entry with an empty path")
    if b"\0" in path:
        raise errors.UnsafePath(f"refused entry path with a NUL byte: {path!r}")
    if path.startswith(b"/"):
        raise errors.UnsafePath(f"refused absolute entry path {os.fsdecode(path)!r}")
    parts = path.split(b"/")
    for part in parts:
        if part in (b"", b".", b".."):
            raise errors.UnsafePath(f"refused entry path {os.fsdecode(path)!r}: it contains {part.decode()!r}")
    return parts


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def check_component_name(name: str) -> str:
    """Component names become directory and file names: letters, digits, `_`, `.`, `-` only."""
    if not _NAME.match(name or ""):
        raise errors.UnsafePath(f"refused component name {name!r}: use letters, digits, '_', '.', '-' "
                                "(not starting with '.' or '-')")
    return name


def check_entry(e: Entry) -> None:
    """Validate an entry's path, type, hardlink target and holes before restore."""
    if e.path == ROOT:
        if e.type != DIR:
            raise errors.UnsafePath(f"refused root entry of type {e.type!r} (the component root is a directory)")
        return
    check_relative_path(e.path)
    if e.type not in TYPES:
        raise errors.UnsafePath(f"refused entry {os.fsdecode(e.path)!r} of unknown type {e.type!r}")
    if e.type == HARDLINK:
        check_relative_path(e.target)
    if e.holes:
        check_holes(e.path, e.holes, e.size)
    check_layout(e.path, e.layout)


def check_layout(path: bytes, layout: str) -> None:
    """A file's layout is one this program rebuilds (a newer writer's would restore wrong bytes)."""
    if layout not in LAYOUTS:
        raise errors.UnsupportedFormat(f"refused entry {os.fsdecode(path)!r}: its layout {layout!r} is not one "
                                       "this version restores; restore with a newer rag-backup")


def check_holes(path: bytes, holes: Sequence[int], size: int) -> None:
    """Holes are (offset, length) pairs, ascending, not overlapping, inside the file's size."""
    if len(holes) % 2:
        raise errors.UnsafePath(f"refused entry {os.fsdecode(path)!r}: an odd number of hole values")
    end = 0
    for i in range(0, len(holes), 2):
        off, length = holes[i], holes[i + 1]
        if not isinstance(off, int) or not isinstance(length, int) or off < end or length <= 0 \
                or off + length > size:
            raise errors.UnsafePath(f"refused entry {os.fsdecode(path)!r}: hole ({off}, {length}) is out of "
                                    f"order or outside its {size} bytes")
        end = off + length


def data_runs(holes: Sequence[int], size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of each run of data between a file's holes, in order."""
    pos = 0
    for i in range(0, len(holes), 2):
        if holes[i] > pos:
            yield pos, holes[i] - pos
        pos = holes[i] + holes[i + 1]
    if size > pos:
        yield pos, size - pos


def hole_bytes(holes: Sequence[int]) -> int:
    """Bytes of a file inside its holes (not stored)."""
    return sum(holes[1::2])
