"""Entries of a captured component and their stored form (a JSON-lines tree).

In: entries from a capture stream, in walk order. Out: JSON lines the controller
chunks into tree blobs, and back; plus `check_relative_path`, the one rule every
restore applies to a path before writing anything.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ragbackup import errors

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
TYPES = (FILE, DIR, SYMLINK, HARDLINK)


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
    chunks: list[bytes] = field(default_factory=list)
    target: bytes = b""  # symlink target, or hardlink's first path

    def to_json(self) -> str:
        d = {"p": os.fsdecode(self.path), "t": self.type, "m": self.mode, "u": self.uid, "g": self.gid,
             "mt": self.mtime_ns}
        if self.type == FILE:
            d["s"] = self.size
            d["c"] = [c.hex() for c in self.chunks]
        if self.target:
            d["l"] = os.fsdecode(self.target)
        return json.dumps(d, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> "Entry":
        d = json.loads(line)
        return cls(path=os.fsencode(d["p"]), type=d["t"], mode=d["m"], uid=d["u"], gid=d["g"],
                   mtime_ns=d["mt"], size=d.get("s", 0), chunks=[bytes.fromhex(c) for c in d.get("c", [])],
                   target=os.fsencode(d.get("l", "")))


def encode_lines(entries: Iterable[Entry]) -> Iterator[bytes]:
    for e in entries:
        yield e.to_json().encode() + b"\n"


def decode_lines(data: Iterable[bytes]) -> Iterator[Entry]:
    """Entries from a stream of byte pieces that split lines anywhere."""
    rest = b""
    for piece in data:
        rest += piece
        *lines, rest = rest.split(b"\n")
        for line in lines:
            if line:
                yield Entry.from_json(line.decode())
    if rest.strip():
        yield Entry.from_json(rest.decode())


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
    """Validate an entry's path, type and hardlink target before restore."""
    check_relative_path(e.path)
    if e.type not in TYPES:
        raise errors.UnsafePath(f"refused entry {os.fsdecode(e.path)!r} of unknown type {e.type!r}")
    if e.type == HARDLINK:
        check_relative_path(e.target)
