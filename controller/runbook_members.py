"""Tar members judged before anything is stored: names, types, times, link targets (pure).

In: tarfile.TarInfo headers of an import's tarballs. Out: normalised paths, entry types and
ns mtimes, or errors.UnsafePath naming the member and its tarball.
"""
from __future__ import annotations

import decimal
import os
import tarfile
from typing import Callable

from ragbackup import errors
from ragbackup.config import ImportConfig
from ragbackup.repo.tree import DIR, FILE, HARDLINK, SYMLINK

NS = 1_000_000_000
_NODES = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}


# A sparse member may hold this many times less data than its size, by default; more is
# refused (a few hundred bytes of tarball must not become a snapshot of gigabytes).
MAX_EXPANSION_RATIO = ImportConfig.max_expansion_ratio


def sparse_holes(m: tarfile.TarInfo) -> list[int]:
    """A sparse member's holes as flat (offset, length) pairs ([] for any other member).

    tarfile reads the sparse maps of GNU (old GNU 'S' and pax 0.0, 0.1, 1.0) members into
    `m.sparse`: (offset, length) of each run of data.
    """
    runs = getattr(m, "sparse", None)
    if not m.isreg() or runs is None:
        return []
    holes: list[int] = []
    pos = 0
    for offset, length in runs:
        if offset > pos:
            holes += [pos, offset - pos]
        pos = max(pos, offset + length)
    if m.size > pos:
        holes += [pos, m.size - pos]
    return holes


def check_expansion(m: tarfile.TarInfo, where: str, max_ratio: int) -> None:
    """Refuse a sparse member whose size is more than `max_ratio` times the data it stores (0: no limit)."""
    runs = getattr(m, "sparse", None)
    if not max_ratio or not m.isreg() or runs is None:
        return
    stored = sum(length for _, length in runs)
    if m.size > max_ratio * max(stored, tarfile.BLOCKSIZE):
        raise errors.ExpansionRefused(
            f"refused member {m.name!r} of {where}: a sparse file of {m.size} bytes holding {stored} bytes of "
            f"data expands more than {max_ratio} times (raise [import] max_expansion_ratio in the controller's "
            "config, or set it to 0, to accept it; its holes are kept)")


def refuse(member: str, where: str, why: str) -> errors.UnsafePath:
    return errors.UnsafePath(f"refused member {member!r} of {where}: {why}")


def normalise(name: str) -> bytes:
    """A member name as a path: leading `./` and trailing `/` dropped; b"" for the archive's root."""
    path = os.fsencode(name)
    while path.startswith(b"./"):
        path = path[2:]
    path = path.rstrip(b"/") if path not in (b"/", b"") else path
    return b"" if path == b"." else path


def check_path(member: str, path: bytes, where: str) -> list[bytes]:
    """Components of a normalised path; UnsafePath when absolute, with `..`, or malformed."""
    if not path:
        return []
    if path.startswith(b"/"):
        raise refuse(member, where, "the path is absolute")
    parts = path.split(b"/")
    if b".." in parts:
        raise refuse(member, where, "the path contains '..'")
    if b"" in parts or b"." in parts or b"\0" in path:
        raise refuse(member, where, "the path has an empty or '.' component")
    return parts


def entry_type(m: tarfile.TarInfo, where: str) -> str:
    """The tree type of a member; device nodes, fifos and unknown types are refused."""
    if m.isreg():
        return FILE
    if m.isdir():
        return DIR
    if m.issym():
        return SYMLINK
    if m.islnk():
        return HARDLINK
    kind = _NODES.get(m.type, f"member of unsupported type {m.type!r}")
    raise refuse(m.name, where, f"it is a {kind}")


def mtime_ns(m: tarfile.TarInfo) -> int:
    """Modification time in ns, exact when a pax header carries the fraction."""
    text = m.pax_headers.get("mtime")
    if text:
        try:
            return int(decimal.Decimal(text).scaleb(9))
        except (decimal.InvalidOperation, ValueError):
            pass
    return int(m.mtime * NS)


def ns_text(ns: int) -> str:
    """ns as the decimal seconds of a pax `mtime` record (negative before 1970)."""
    sec, frac = divmod(abs(ns), NS)
    return f"{'-' if ns < 0 else ''}{sec}.{frac:09d}"


def common_dir(prev: list[bytes] | None, parts: list[bytes], typ: str) -> list[bytes]:
    """The longest leading directory shared by `prev` and this member (its own path if a dir)."""
    mine = parts if typ == DIR else parts[:-1]
    if prev is None:
        return list(mine)
    n = 0
    while n < min(len(prev), len(mine)) and prev[n] == mine[n]:
        n += 1
    return prev[:n]


def check_hardlink_target(member: str, target: bytes, where: str) -> list[bytes]:
    """A hardlink's normalised target must name a path inside the archive."""
    if not target or target.startswith(b"/") or b".." in target.split(b"/"):
        raise refuse(member, where, f"hardlink to {os.fsdecode(target)!r}, outside the tree")
    return check_path(member, target, where)


OUTSIDE_HINT = " (`ragctl import --allow-outside-symlinks` keeps such links from a tarball you trust)"


def check_symlink(member: str, link: list[bytes], target: bytes, where: str,  # noqa: PLR0913 (one link's facts)
                  is_symlink: Callable[[list[bytes]], bool], outside_ok: bool = False) -> None:
    """Resolve a symlink's target lexically from its directory; refuse it if it leaves the root.

    `link` is the symlink's path below the component root. A `..` that steps out of another
    symlink is refused too: the kernel would resolve that symlink first, lexical rules cannot.
    `outside_ok` (the operator's --allow-outside-symlinks) accepts any non-empty target: the
    link is stored as a link, and a restore writes it without following it.
    """
    shown = os.fsdecode(target)
    if not target or b"\0" in target:
        raise refuse(member, where, "symlink with an empty target")
    if outside_ok:
        return
    if target.startswith(b"/"):
        raise refuse(member, where, f"symlink to the absolute path {shown!r}{OUTSIDE_HINT}")
    parts = link[:-1]
    for p in target.split(b"/"):
        if p in (b"", b"."):
            continue
        if p != b"..":
            parts = parts + [p]
            continue
        if not parts:
            raise refuse(member, where, f"symlink to {shown!r} leaves the component's directory{OUTSIDE_HINT}")
        if is_symlink(parts):
            raise refuse(member, where, f"symlink to {shown!r} steps out of the symlink "
                                        f"{os.fsdecode(b'/'.join(parts))!r} with '..'")
        parts = parts[:-1]
