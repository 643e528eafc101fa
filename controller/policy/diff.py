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


def _compare(a: Entry, b: Entry, keep: bool) -> tuple[str, object] | None:
    if a.type != b.type:
        return "T", f"{a.type} -> {b.type}"
    if a.chunks != b.chunks or a.size != b.size or a.target != b.target:
        if keep:
            return "M", (a, b)
        return "M", f"size {a.size} -> {b.size}" if a.size != b.size else "content"
    meta = [n for n, x, y in (("mode", a.mode, b.mode), ("owner", (a.uid, a.gid), (b.uid, b.gid)),
                              ("mtime", a.mtime_ns, b.mtime_ns)) if x != y]
    if meta and a.type != "dir":
        return "m", ", ".join(meta)
    return None


def diff_entries(old: Iterator[Entry], new: Iterator[Entry], keep: bool = False) -> Iterator[tuple[str, str, object]]:
    """With `keep`, a content change carries (old entry, new entry) as detail for a closer look."""
    a, b = next(old, _END), next(new, _END)
    while a is not _END or b is not _END:
        if b is _END or (a is not _END and _key(a) < _key(b)):
            yield "-", os.fsdecode(a.path), ""
            a = next(old, _END)
        elif a is _END or _key(b) < _key(a):
            yield "+", os.fsdecode(b.path), ""
            b = next(new, _END)
        else:
            change = _compare(a, b, keep)
            if change:
                yield change[0], os.fsdecode(a.path), change[1]
            a, b = next(old, _END), next(new, _END)


def is_env_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def env_keys(text: bytes) -> dict[str, bytes]:
    """KEY -> raw value of a dotenv file (values are compared here and never returned by env_changes)."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(b"#") or b"=" not in line:
            continue
        key, _, value = line.removeprefix(b"export ").partition(b"=")
        out[key.strip().decode(errors="replace")] = value.strip()
    return out


def env_changes(old: bytes, new: bytes) -> str:
    """Which keys were added, removed or changed: names only, never values."""
    a, b = env_keys(old), env_keys(new)
    parts = []
    for label, keys in (("added", sorted(b.keys() - a.keys())), ("removed", sorted(a.keys() - b.keys())),
                        ("changed", sorted(k for k in a.keys() & b.keys() if a[k] != b[k]))):
        if keys:
            parts.append(f"{label}: {', '.join(keys)}")
    return "; ".join(parts) or "formatting only"
