"""Deterministic walk of a component's directory tree.

In: a root directory (bytes path) and exclude patterns. Out: (relative path,
os.stat_result) pairs in sorted order, directories before their contents; the
capture pipeline (pipeline.py) turns them into entries and chunks. `walk_ahead`
runs the same walk on a thread of its own, so reading cold directories and
inodes from disk overlaps with the caller's work on the entries already found.
`find_holes` and `data_regions` let a sparse file be read without its holes.
"""
from __future__ import annotations

import fnmatch
import os
import errno
import stat
from typing import BinaryIO, Iterator

from ragbackup import errors
from ragbackup.ahead import batched, run_ahead
from ragbackup.repo.tree import data_runs


def excluded(rel: bytes, patterns: tuple[str, ...]) -> bool:
    """True if the relative path or its last component matches a pattern (fnmatch)."""
    if not patterns:
        return False
    text = os.fsdecode(rel)
    name = text.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(text, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def walk(root: bytes, patterns: tuple[str, ...] = ()) -> Iterator[tuple[bytes, os.stat_result]]:
    """Yield every object below `root` (not root itself), sorted by name at each level."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise errors.NotFound(f"capture path {os.fsdecode(root)} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise errors.UsageError(f"capture path {os.fsdecode(root)} is not a directory")
    yield from _walk_dir(root, b"", patterns)


def _walk_dir(root: bytes, rel: bytes, patterns: tuple[str, ...]) -> Iterator[tuple[bytes, os.stat_result]]:
    path = os.path.join(root, rel) if rel else root
    with os.scandir(path) as it:
        names = sorted(e.name for e in it)
    for name in names:
        child = rel + b"/" + name if rel else name
        if excluded(child, patterns):
            continue
        try:
            st = os.lstat(os.path.join(root, child))
        except FileNotFoundError:
            continue  # vanished during the walk
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root, child, patterns)


AHEAD_BATCH = 256  # entries per hand-over between the walking thread and the caller
AHEAD_BATCHES = 4  # hand-overs the walking thread may run ahead (about 0.6 MB of stat results)


def walk_ahead(root: bytes, patterns: tuple[str, ...] = ()) -> Iterator[tuple[bytes, os.stat_result]]:
    """`walk`, produced on a background thread up to AHEAD_BATCH * AHEAD_BATCHES entries ahead.

    Same items in the same order; the walk's errors are raised here. Closing the
    generator stops the thread.
    """
    for batch in run_ahead(lambda: batched(walk(root, patterns), AHEAD_BATCH), AHEAD_BATCHES, "walk"):
        yield from batch


# Holes shorter than this are read as data: not worth an entry in the tree.
MIN_HOLE = 4096


def find_holes(path: bytes, size: int) -> list[int]:
    """A file's holes as flat (offset, length) pairs, found with SEEK_DATA/SEEK_HOLE (nothing read).

    [] where the file is gone, the filesystem does not report holes, or there are none.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        return _holes(fd, size)
    except OSError:
        return []
    finally:
        os.close(fd)


def _holes(fd: int, size: int) -> list[int]:
    holes: list[int] = []
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            data = size  # no data after pos: a hole to the end
        data = min(data, size)
        if data - pos >= MIN_HOLE:
            holes += [pos, data - pos]
        if data >= size:
            break
        pos = min(os.lseek(fd, data, os.SEEK_HOLE), size)
    return holes


def data_regions(f: BinaryIO, holes: list[int]) -> Iterator["Region"]:
    """One stream per run of data between the holes of an open file, in order."""
    size = max(os.fstat(f.fileno()).st_size, holes[-2] + holes[-1] if holes else 0)
    for offset, length in data_runs(holes, size):
        yield Region(f, offset, length)


class Region:
    """`length` bytes of an open file from `offset`, as a stream; zeros where the file came up short."""

    def __init__(self, f: BinaryIO, offset: int, length: int):
        self._fd, self._pos, self._left = f.fileno(), offset, length

    def readinto(self, view) -> int:
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        got = os.preadv(self._fd, [memoryview(view)[:n]], self._pos)
        if got == 0:  # shrunk while read: keep the recorded size
            memoryview(view)[:n] = bytes(n)
            got = n
        self._pos += got
        self._left -= got
        return got
