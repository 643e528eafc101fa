"""Deterministic walk of a component's directory tree.

In: a root directory (bytes path) and exclude patterns. Out: (relative path,
os.stat_result) pairs in sorted order, directories before their contents; the
capture pipeline (pipeline.py) turns them into entries and chunks.
"""
from __future__ import annotations

import fnmatch
import os
import stat
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
