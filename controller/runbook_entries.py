"""An import's tar members on disk (SQLite, so memory stays bounded) and the trees they make.

In: members' paths and metadata (scan pass), then chunk lists and holes (store pass). Out: each
inner tarball's entries in walk order below its root, parents filled in, unsafe links refused;
the root directory member becomes the tree's "." entry. `member_streams` reads a sparse
member's data runs only, so its holes are neither read nor stored.
"""
from __future__ import annotations

import os
import sqlite3
import struct
from dataclasses import dataclass
from typing import IO, Iterator

from ragbackup.repo.tree import DIR, FILE, HARDLINK, ROOT, SYMLINK, Entry, data_runs

from ragbackup.controller.runbook_members import check_hardlink_target, check_symlink, refuse

_SCHEMA = """
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
CREATE TABLE m (arc INTEGER NOT NULL, key BLOB NOT NULL, type TEXT NOT NULL, mode INTEGER, uid INTEGER,
    gid INTEGER, mtime INTEGER, size INTEGER, target BLOB, grp BLOB, chunks BLOB, holes BLOB, member BLOB NOT NULL,
    PRIMARY KEY (arc, key)) WITHOUT ROWID;
CREATE INDEX m_grp ON m (arc, grp) WHERE grp IS NOT NULL;
"""
_COLUMNS = "key, type, mode, uid, gid, mtime, size, target, grp, chunks, holes, member"


def key_of(path: bytes) -> bytes:
    """Sort key in walk order: `/` becomes NUL, so `a/b` sorts between `a` and `a.txt`."""
    return path.replace(b"/", b"\0")


@dataclass
class Member:
    """One stored member: metadata, link target, hardlink group and (after the store pass) chunks."""

    key: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    target: bytes = b""
    grp: bytes | None = None
    chunks: bytes | None = None
    holes: bytes | None = None  # packed uint64 (offset, length) pairs of a sparse member
    member: str = ""

    @property
    def path(self) -> bytes:
        return self.key.replace(b"\0", b"/")

    def chunk_ids(self) -> list[bytes]:
        c = self.chunks or b""
        return [c[i:i + 32] for i in range(0, len(c), 32)]

    def hole_list(self) -> list[int]:
        h = self.holes or b""
        return list(struct.unpack(f"<{len(h) // 8}Q", h))


def _member(row: tuple) -> Member:
    return Member(*row[:-1], member=os.fsdecode(row[-1]))


class MemberTable:
    """The members of every inner tarball of one import; `arc` numbers the inner tarballs."""

    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()
        for p in (self.path, self.path + "-journal"):
            if os.path.exists(p):
                os.unlink(p)

    def commit(self) -> None:
        self._db.commit()

    def get(self, arc: int, path: bytes) -> Member | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM m WHERE arc=? AND key=?", (arc, key_of(path))).fetchone()
        return _member(row) if row else None

    def add(self, arc: int, m: Member, where: str) -> None:
        """Record a member; a repeated path is refused unless both are directories (the last wins)."""
        old = self.get(arc, m.path)
        if old is not None and not (old.type == DIR and m.type == DIR):
            raise refuse(m.member, where, f"{os.fsdecode(m.path)!r} appears twice in the tarball "
                                          f"(as {old.type}, then as {m.type})")
        self._db.execute(f"INSERT OR REPLACE INTO m (arc, {_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (arc, m.key, m.type, m.mode, m.uid, m.gid, m.mtime, m.size, m.target, m.grp, m.chunks,
                          m.holes, os.fsencode(m.member)))

    def add_hardlink(self, arc: int, m: Member, linkname: bytes, where: str) -> None:
        """A hardlink joins the group of an earlier regular file of the same tarball."""
        check_hardlink_target(m.member, linkname, where)
        first = self.get(arc, linkname)
        if first is None:
            raise refuse(m.member, where, f"hardlink to {os.fsdecode(linkname)!r}, which is not an earlier "
                                          "member of the tarball")
        if first.type not in (FILE, HARDLINK):
            raise refuse(m.member, where, f"hardlink to {os.fsdecode(linkname)!r}, which is a {first.type}")
        if first.grp is None:
            self._db.execute("UPDATE m SET grp=key WHERE arc=? AND key=?", (arc, first.key))
        m.grp = first.grp or first.key
        m.target = linkname
        self.add(arc, m, where)

    def set_chunks(self, arc: int, path: bytes, chunks: list[bytes], holes: list[int] | None = None) -> None:
        packed = struct.pack(f"<{len(holes)}Q", *holes) if holes else None
        self._db.execute("UPDATE m SET chunks=?, holes=? WHERE arc=? AND key=?",
                         (b"".join(chunks), packed, arc, key_of(path)))

    def unstored(self) -> int:
        """Regular files the store pass has not given a chunk list (0 when it saw every one)."""
        return self._db.execute("SELECT COUNT(*) FROM m WHERE type=? AND chunks IS NULL", (FILE,)).fetchone()[0]

    def rows(self, arc: int) -> Iterator[Member]:
        """Every member of tarball `arc`, in walk order."""
        cur = self._db.execute(f"SELECT {_COLUMNS} FROM m WHERE arc=? ORDER BY key", (arc,))
        for row in cur:
            yield _member(row)

    def is_type(self, arc: int, path: bytes, typ: str) -> bool:
        m = self.get(arc, path)
        return m is not None and m.type == typ

    def group_first(self, arc: int, grp: bytes) -> bytes:
        """Key of the path of a hardlink group that comes first in walk order."""
        return self._db.execute("SELECT MIN(key) FROM m WHERE arc=? AND grp=?", (arc, grp)).fetchone()[0]

    def find_root(self, arc: int, common: list[bytes] | None) -> bytes:
        """The data's own directory: the shallowest directory member on the common leading
        directory (tar lists the directories it was given, not their parents), else that directory."""
        parts = common or []
        for i in range(len(parts) + 1):
            if self.is_type(arc, b"/".join(parts[:i]), DIR):
                return b"/".join(parts[:i])
        return b"/".join(parts)


@dataclass
class TreeStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_total: int = 0

    def count(self, e: Entry) -> None:
        if e.type == FILE:
            self.files += 1
            self.bytes_total += e.size
        elif e.type == DIR:
            self.dirs += 1
        elif e.type == SYMLINK:
            self.symlinks += 1


class TreeWalk:
    """Tree entries of one inner tarball below its root, checked; iterate it once."""

    def __init__(self, table: MemberTable, arc: int, root: bytes, where: str, outside_symlinks: bool = False):
        """`outside_symlinks`: accept symlinks whose target is absolute or leaves the root (--allow-outside-symlinks)."""
        self.table, self.arc, self.root, self.where = table, arc, root, where
        self.outside_symlinks = outside_symlinks
        self.stats = TreeStats()
        self._stack: list[tuple[bytes, str]] = []  # ancestors of the current entry: (path, type)

    def __iter__(self) -> Iterator[Entry]:
        strip = len(self.root) + 1 if self.root else 0
        for m in self.table.rows(self.arc):
            if m.path == self.root:
                if m.type == DIR:  # the data's own directory is the component root
                    yield Entry(path=ROOT, type=DIR, mode=m.mode, uid=m.uid, gid=m.gid, mtime_ns=m.mtime)
                continue
            path = m.path[strip:]
            for e in (*self._parents(path, m), self._entry(path, m)):
                self.stats.count(e)
                yield e

    def _parents(self, path: bytes, m: Member) -> list[Entry]:
        """Directories the tarball did not list, between the nearest listed ancestor and `path`."""
        stack = self._stack
        while stack and not path.startswith(stack[-1][0] + b"/"):
            stack.pop()
        if stack and stack[-1][1] != DIR:
            what = "goes through the symlink" if stack[-1][1] == SYMLINK else "lies below the file"
            raise refuse(m.member, self.where, f"the path {what} {os.fsdecode(stack[-1][0])!r}")
        parts = path.split(b"/")
        have = stack[-1][0].count(b"/") + 1 if stack else 0
        out = []
        for i in range(have, len(parts) - 1):
            d = b"/".join(parts[:i + 1])
            stack.append((d, DIR))
            out.append(Entry(path=d, type=DIR, mode=0o755, uid=m.uid, gid=m.gid, mtime_ns=m.mtime))
        return out

    def _entry(self, path: bytes, m: Member) -> Entry:
        e = Entry(path=path, type=m.type, mode=m.mode, uid=m.uid, gid=m.gid, mtime_ns=m.mtime)
        self._stack.append((path, m.type))
        if m.type == SYMLINK:
            check_symlink(m.member, path.split(b"/"), m.target, self.where, self._is_symlink, self.outside_symlinks)
            e.target = m.target
        elif m.grp is not None:
            return self._linked(e, m)
        elif m.type == FILE:
            e.size, e.chunks, e.holes = m.size, m.chunk_ids(), m.hole_list()
        return e

    def _is_symlink(self, parts: list[bytes]) -> bool:
        rel = b"/".join(parts)
        return self.table.is_type(self.arc, self.root + b"/" + rel if self.root else rel, SYMLINK)

    def _linked(self, e: Entry, m: Member) -> Entry:
        """The first path of a hardlink group (walk order) carries the data; the rest link to it."""
        first = self.table.group_first(self.arc, m.grp)
        strip = len(self.root) + 1 if self.root else 0
        if m.key != first:
            e.type, e.target = HARDLINK, first.replace(b"\0", b"/")[strip:]
            return e
        data = m if m.type == FILE else self.table.get(self.arc, m.grp.replace(b"\0", b"/"))
        return Entry(path=e.path, type=FILE, mode=data.mode, uid=data.uid, gid=data.gid, mtime_ns=data.mtime,
                     size=data.size, chunks=data.chunk_ids(), holes=data.hole_list())


def member_streams(f: IO[bytes], holes: list[int], size: int) -> list:
    """A member's data as streams: the member itself, or one per run of data between its holes."""
    if not holes:
        return [f]
    return [_Run(f, offset, length) for offset, length in data_runs(holes, size)]


class _Run:
    """`length` bytes of a tar member's data from `offset` (forward seeks only, as a stream allows).

    Reads the member's raw reader: tarfile's buffered one asks its stream whether it can seek,
    which a compressed stream cannot answer; the raw one maps offsets through the sparse map.
    """

    def __init__(self, f: IO[bytes], offset: int, length: int):
        self._f, self._offset, self._left = getattr(f, "raw", f), offset, length

    def readinto(self, view) -> int:
        if self._offset is not None:
            self._f.seek(self._offset)
            self._offset = None
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        got = self._f.readinto(memoryview(view)[:n]) or 0
        self._left -= got
        return got
