"""The agent's per-component file cache: what each file looked like at a capture.

In: (path, size, mtime_ns, inode, ctime_ns, chunk ids, layout, holes) recorded during a capture.
Out: the chunk list (and layout, e.g. an RDB stored by record, and the holes of a sparse
file) of an unchanged file for the next capture, which then skips reading it. One SQLite
file per capture, published only when the capture completes.
"""
from __future__ import annotations

import os
import re
import sqlite3
import sys
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from ragbackup.repo.tree import ID_SIZE, ChunkIds, IdBuffer, SpilledIds, id_blocks

KEEP = 3
# A file naming more chunk ids than this (bytes of them) keeps its row in long_files and its ids
# in pieces of this size in long_ids: one blob of 35 MB (an RDB of 4,000,000 keys stored by record)
# cost that much again in SQLite's buffer each time it was written or read. A reader that predates
# these tables finds no row for such a file, and reads the file again.
LONG_IDS = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _component_dir(cache_dir: str, component: str) -> str:
    if not _NAME.match(component):
        raise ValueError(f"bad component name {component!r}")
    return os.path.join(cache_dir, component)


class Cached(NamedTuple):
    """An unchanged file's stored form: its chunk ids (joined, 32 bytes each: a list of bytes
    objects costs 73 bytes an id, 60 MB for an RDB of 3,000,000 keys), the layout they hold
    ("" for the bytes) and a sparse file's holes (flat offset, length pairs; () for none)."""

    ids: bytes | bytearray | SpilledIds  # spilled: a long list, when the lookup was given a spill dir
    layout: str
    holes: tuple[int, ...] = ()

    @property
    def chunks(self) -> list[bytes]:
        if isinstance(self.ids, SpilledIds):
            return list(self.ids)
        return [bytes(self.ids[i:i + ID_SIZE]) for i in range(0, len(self.ids), ID_SIZE)]


class CacheReader:
    """Read-only view of a completed capture's cache."""

    def __init__(self, path: str):
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(files)")}
        # caches written before layouts (or holes) were recorded hold only plain (dense) files
        layout = "layout" if "layout" in columns else "''"
        holes = "holes" if "holes" in columns else "NULL"
        self._query = f"SELECT size, mtime_ns, ino, ctime_ns, chunks, {layout}, {holes} FROM files WHERE path=?"
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        self._long = "long_files" in tables and "long_ids" in tables

    @classmethod
    def open(cls, cache_dir: str, component: str, capture_id: str) -> "CacheReader | None":
        if not capture_id or not _NAME.match(capture_id):
            return None
        path = os.path.join(_component_dir(cache_dir, component), capture_id + ".sqlite")
        return cls(path) if os.path.exists(path) else None

    def lookup(self, path: bytes, st: os.stat_result, spill: str | None = None) -> Cached | None:
        """Chunk ids, layout and holes if the file is unchanged (size, mtime_ns, inode, ctime_ns
        all equal: punching or filling a hole changes mtime and ctime too). `spill`: a directory
        where a long list's ids are gathered (an unlinked file: a SpilledIds), not in memory."""
        row = self._db.execute(self._query, (path,)).fetchone()
        if row is None and self._long:
            return self._long_lookup(path, st, spill)
        if row is None or row[:4] != (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns):
            return None
        holes = _unpack_holes(row[6])
        if holes is None or row[4] is None or len(row[4]) % ID_SIZE:
            return None  # not whole pairs or ids: read the file again rather than trust the row
        return Cached(row[4], row[5] or "", holes)

    def _long_lookup(self, path: bytes, st: os.stat_result, spill: str | None) -> Cached | None:
        """`lookup` of a file of more than LONG_IDS bytes of ids, its ids gathered from their pieces."""
        row = self._db.execute("SELECT size, mtime_ns, ino, ctime_ns, layout, holes FROM long_files WHERE path=?",
                               (path,)).fetchone()
        if row is None or row[:4] != (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns):
            return None
        holes = _unpack_holes(row[5])
        if holes is None:
            return None
        buf = IdBuffer(spill, spill_after=0 if spill else None)
        for (piece,) in self._db.execute("SELECT ids FROM long_ids WHERE path=? ORDER BY seq", (path,)):
            buf.add(piece)
        try:
            ids = buf.take()
        except ValueError:
            return None  # not whole ids: read the file again rather than trust the row
        return Cached(ids.buffer if isinstance(ids, ChunkIds) else ids, row[4] or "", holes)

    def close(self) -> None:
        self._db.close()


def _pack_holes(holes: Sequence[int]) -> bytes | None:
    """Flat (offset, length) pairs as little-endian 8-byte integers; None for a dense file."""
    if not holes:
        return None
    if len(holes) % 2:
        raise ValueError("holes are (offset, length) pairs")
    packed = array("Q", holes)  # 8 bytes on every platform CPython supports
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def _unpack_holes(blob: bytes | None) -> tuple[int, ...] | None:
    """Inverse of _pack_holes: () for NULL, None for a blob that is not whole pairs."""
    if not blob:
        return ()
    if len(blob) % 16:
        return None
    packed = array("Q")
    packed.frombytes(blob)
    if sys.byteorder != "little":
        packed.byteswap()
    return tuple(packed)


class CacheWriter:
    """Records a capture's files into `<capture_id>.sqlite.tmp`; `publish` makes it usable."""

    def __init__(self, cache_dir: str, component: str, capture_id: str):
        if not _NAME.match(capture_id):
            raise ValueError(f"bad capture id {capture_id!r}")
        self._dir = _component_dir(cache_dir, component)
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        self._final = os.path.join(self._dir, capture_id + ".sqlite")
        self._tmp = self._final + ".tmp"
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._db = sqlite3.connect(self._tmp, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE files (path BLOB PRIMARY KEY, size INT, mtime_ns INT, ino INT, "
                         "ctime_ns INT, chunks BLOB, layout TEXT NOT NULL DEFAULT '', holes BLOB) WITHOUT ROWID")
        self._db.execute("CREATE TABLE long_files (path BLOB PRIMARY KEY, size INT, mtime_ns INT, ino INT, "
                         "ctime_ns INT, layout TEXT NOT NULL DEFAULT '', holes BLOB) WITHOUT ROWID")
        self._db.execute("CREATE TABLE long_ids (path BLOB, seq INT, ids BLOB, PRIMARY KEY (path, seq)) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def record(self, path: bytes, st: os.stat_result, ids: bytes | bytearray | SpilledIds,  # noqa: PLR0913
               layout: str = "", holes: Sequence[int] = ()) -> None:
        """Note a file's chunk ids (joined, 32 bytes each, or spilled), their layout and its holes
        (flat pairs); more than LONG_IDS bytes of ids in pieces (long_files, long_ids)."""
        if isinstance(ids, SpilledIds) and len(ids) * ID_SIZE <= LONG_IDS:
            ids = b"".join(ids.blocks(LONG_IDS))
        if not isinstance(ids, SpilledIds) and len(ids) <= LONG_IDS:
            self._db.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)",
                             (path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, ids, layout,
                              _pack_holes(holes)))
            return
        self._db.execute("INSERT OR REPLACE INTO long_files VALUES (?,?,?,?,?,?,?)",
                         (path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, layout, _pack_holes(holes)))
        self._db.execute("DELETE FROM long_ids WHERE path=?", (path,))
        blocks = id_blocks(ids if isinstance(ids, SpilledIds) else ChunkIds(ids), LONG_IDS)
        self._db.executemany("INSERT INTO long_ids VALUES (?,?,?)", ((path, n, b) for n, b in enumerate(blocks)))

    def publish(self, keep: tuple[str, ...] = ()) -> None:
        """Commit, rename into place and drop old caches (keeping `keep` and the newest KEEP)."""
        self._db.execute("COMMIT")
        self._db.close()
        os.replace(self._tmp, self._final)
        self._prune(set(keep) | {os.path.basename(self._final)[:-7]})

    def discard(self) -> None:
        try:
            self._db.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def _prune(self, keep: set[str]) -> None:
        files = [f for f in os.listdir(self._dir) if f.endswith(".sqlite")]
        files.sort(key=lambda f: os.path.getmtime(os.path.join(self._dir, f)), reverse=True)
        for f in files[KEEP:]:
            if f[:-7] not in keep:
                os.unlink(os.path.join(self._dir, f))
