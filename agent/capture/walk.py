"""Deterministic walk of a component's directory tree.

In: a root directory (bytes path) and exclude patterns. Out: (relative path,
os.stat_result) pairs in sorted order, directories before their contents; the
capture pipeline (pipeline.py) turns them into entries and chunks. `walk_ahead`
runs the same walk on a thread of its own, so reading cold directories and
inodes from disk overlaps with the caller's work on the entries already found.
"""
from __future__ import annotations

import fnmatch
import os
import queue
import stat
import threading
from typing import Iterator

from ragbackup import errors


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


class _Stop(Exception):
    """The caller stopped consuming: the walking thread ends."""


def walk_ahead(root: bytes, patterns: tuple[str, ...] = ()) -> Iterator[tuple[bytes, os.stat_result]]:
    """`walk`, produced on a background thread up to AHEAD_BATCH * AHEAD_BATCHES entries ahead.

    Same items in the same order; the walk's errors are raised here. Closing the
    generator stops the thread.
    """
    q: queue.Queue = queue.Queue(AHEAD_BATCHES)
    stop = threading.Event()

    def put(item) -> None:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        batch: list = []
        try:
            for item in walk(root, patterns):
                batch.append(item)
                if len(batch) >= AHEAD_BATCH:
                    put(batch)
                    batch = []
            put(batch)
            put(None)
        except _Stop:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the caller and raised there
            try:
                put(exc)
            except _Stop:
                return

    thread = threading.Thread(target=produce, name="walk", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        thread.join()
