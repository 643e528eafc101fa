"""Pure comparison of two snapshot trees, streamed in walk order.

In: two entry iterators of one component, each in walk order (which is the order
of path component lists). Out: (change, path, detail) items: "+" added, "-"
removed, "M" content changed, "m" metadata changed, "T" type changed.
"""
from __future__ import annotations

import os
from typing import Iterator

from ragbackup.repo.tree import Entry

_END = object()


def _key(e: Entry) -> list[bytes]:
    return e.path.split(b"/")


def _compare(a: Entry, b: Entry) -> tuple[str, str] | None:
    if a.type != b.type:
        return "T", f"{a.type} -> {b.type}"
    if a.chunks != b.chunks or a.size != b.size or a.target != b.target:
        detail = f"size {a.size} -> {b.size}" if a.size != b.size else "content"
        return "M", detail
    meta = [n for n, x, y in (("mode", a.mode, b.mode), ("owner", (a.uid, a.gid), (b.uid, b.gid)),
                              ("mtime", a.mtime_ns, b.mtime_ns)) if x != y]
    if meta and a.type != "dir":
        return "m", ", ".join(meta)
    return None


def diff_entries(old: Iterator[Entry], new: Iterator[Entry]) -> Iterator[tuple[str, str, str]]:
    a, b = next(old, _END), next(new, _END)
    while a is not _END or b is not _END:
        if b is _END or (a is not _END and _key(a) < _key(b)):
            yield "-", os.fsdecode(a.path), ""
            a = next(old, _END)
        elif a is _END or _key(b) < _key(a):
            yield "+", os.fsdecode(b.path), ""
            b = next(new, _END)
        else:
            change = _compare(a, b)
            if change:
                yield change[0], os.fsdecode(a.path), change[1]
            a, b = next(old, _END), next(new, _END)
