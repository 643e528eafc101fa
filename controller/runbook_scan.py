"""Reading an import's tarballs: the outer one, its inner component tarballs, manifest.json.

In: the spooled upload and ImportLimits. Out: pass 1 (`scan`) judges and records every member,
storing nothing, and keeps the runbook's .env.backup (bounded, never logged) and what it
skipped; pass 2 (`inner_members`) yields the regular files' data for the store pass.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tarfile
import threading
import zlib
from dataclasses import dataclass, field
from typing import IO, Iterator

from ragbackup import errors
from ragbackup.repo.tree import DIR, FILE, HARDLINK, SYMLINK

from ragbackup.controller.runbook_entries import Member, MemberTable, key_of
from ragbackup.controller.runbook_layout import ENV_BACKUP, MANIFEST, stem_of
from ragbackup.controller.runbook_members import (MAX_EXPANSION_RATIO, check_expansion, check_path, common_dir,
                                                  entry_type, mtime_ns, normalise, refuse)

log = logging.getLogger("ragbackup.controller")
TiB = 1 << 40
_LONG_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                 tarfile.GNUTYPE_LONGLINK)
_MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class ImportLimits:
    """Guards against tarballs that unpack to far more than they seem (decompression bombs)."""

    max_bytes: int = TiB  # regular file data of all inner tarballs together, uncompressed
    max_members: int = 20_000_000
    max_manifest: int = 1 << 20
    max_expansion_ratio: int = MAX_EXPANSION_RATIO  # of a sparse member's size to its data; 0: no limit
    max_env: int = 1 << 20  # .env.backup


@dataclass
class Archive:
    """One inner tarball: where it is in the outer one, its stem and the root of its tree."""

    index: int
    member: str
    stem: str
    common: list[bytes] | None = None
    root: bytes = b""
    members: int = 0


@dataclass(frozen=True)
class EnvBackup:
    """The runbook's `cp .env .env.backup`, beside the component tarballs; its data is secret."""

    member: str
    data: bytes = field(repr=False)
    uid: int = 0
    gid: int = 0
    mtime: int = 0


@dataclass
class Scan:
    filename: str
    archives: list[Archive] = field(default_factory=list)
    manifest: dict | None = None
    members: int = 0
    bytes_total: int = 0
    env: EnvBackup | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (member of the outer tarball, why)


class _BoundedInfo(tarfile.TarInfo):
    """tarfile reads pax and GNU long-name headers into memory whole: cap their size."""

    def _proc_member(self, tar):  # tarfile's hook, called for every header
        if self.type in _LONG_HEADERS and self.size > _MAX_HEADER:
            raise errors.UsageError(f"a tar extended header of {self.size} bytes (more than {_MAX_HEADER}) "
                                    "was refused")
        try:
            return super()._proc_member(tar)
        except ValueError as exc:  # tarfile reading numbers of a damaged pax or GNU sparse header
            raise tarfile.ReadError(f"a damaged extended header ({exc})") from None


@contextlib.contextmanager
def readable(what: str) -> Iterator[None]:
    """tarfile's and the decompressors' errors as one UsageError naming the tarball."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise errors.UsageError(f"{what}: not a readable tar archive ({exc})") from None


def members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members one by one without tarfile's growing member list (memory stays flat)."""
    while (m := tar.next()) is not None:
        yield m
        tar.members.clear()  # only needed for extracting hardlinks, which we never do


def open_stream(fileobj: IO[bytes]) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=fileobj, mode="r|*", tarinfo=_BoundedInfo)
    except (TypeError, AttributeError):
        # CPython 3.11's tarfile on a damaged gzip header: ord() of b"" when it is cut short, and
        # `self.exception` read before it is set when its extra field holds bad compressed data
        raise tarfile.ReadError("the gzip header is damaged or truncated") from None


def _check_cancel(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise errors.Cancelled("the import was cancelled")


def _outer_kind(m: tarfile.TarInfo, filename: str) -> str:
    """"archive", "manifest", "env", "dir" or "other"; links and nodes do not belong in the outer tarball."""
    path = normalise(m.name)
    check_path(m.name, path, filename)
    typ = entry_type(m, filename)
    if typ in (SYMLINK, HARDLINK):
        raise refuse(m.name, filename, f"a {typ} (to {m.linkname!r}) in the outer tarball, which holds "
                                       "only component tarballs and manifest.json")
    if typ == DIR:
        return "dir"
    base = os.fsdecode(path.rsplit(b"/", 1)[-1])
    if base == MANIFEST:
        return "manifest"
    if base == ENV_BACKUP:
        return "env"
    return "archive" if stem_of(base) else "other"


def scan(path: str, filename: str, table: MemberTable, limits: ImportLimits, cancel: threading.Event) -> Scan:
    """Pass 1: judge and record every member; nothing reaches the repository."""
    s = Scan(filename)
    with readable(filename), open(path, "rb") as f, open_stream(f) as outer:
        for m in members(outer):
            _check_cancel(cancel)
            kind = _outer_kind(m, filename)
            if kind == "manifest":
                s.manifest = _read_manifest(outer, m, filename, limits)
            elif kind == "archive":
                arc = Archive(len(s.archives), m.name, stem_of(m.name) or "")
                s.archives.append(arc)
                _scan_inner(outer, m, arc, s, table, limits, cancel)
            elif kind == "env":
                s.env = _read_env(outer, m, s, limits)
            elif kind == "other":
                s.skipped.append((m.name, "not a component tarball, manifest.json or .env.backup"))
    table.commit()
    if not s.archives:
        raise errors.UsageError(f"{filename}: no component tarballs (*.tar.gz) inside; expected the runbook's "
                                "rag-system-backup-*/ directory with chromadb.tar.gz, documents.tar.gz, ...")
    for arc in s.archives:
        arc.root = table.find_root(arc.index, arc.common)
    return s


def _read_manifest(outer: tarfile.TarFile, m: tarfile.TarInfo, filename: str, limits: ImportLimits) -> dict | None:
    if m.size > limits.max_manifest:
        raise errors.UsageError(f"{filename}: {m.name} is larger than {limits.max_manifest} bytes")
    try:
        data = json.loads(outer.extractfile(m).read())
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser recurses
        log.warning("import %s: %s is not JSON; ignored", filename, m.name)
        return None
    return data if isinstance(data, dict) else None


def _read_env(outer: tarfile.TarFile, m: tarfile.TarInfo, s: Scan, limits: ImportLimits) -> EnvBackup:
    """.env.backup's bytes (kept in memory: it is small, and secret, so it is never logged)."""
    if s.env is not None:
        raise errors.UsageError(f"{s.filename}: two {ENV_BACKUP} files ({s.env.member} and {m.name})")
    if m.size > limits.max_env:
        raise errors.UsageError(f"{s.filename}: {m.name} is larger than {limits.max_env} bytes")
    data = outer.extractfile(m).read()
    return EnvBackup(m.name, data, m.uid, m.gid, mtime_ns(m))


def _scan_inner(outer, om: tarfile.TarInfo, arc: Archive, s: Scan, table: MemberTable, limits: ImportLimits,
                cancel: threading.Event) -> None:
    where = f"{om.name} in {s.filename}"
    with readable(where), open_stream(outer.extractfile(om)) as inner:
        for m in members(inner):
            _check_cancel(cancel)
            check_expansion(m, where, limits.max_expansion_ratio)
            _record(m, arc, where, table)
            s.members += 1
            s.bytes_total += m.size if m.isreg() else 0
            _check_limits(s, limits)


def _record(m: tarfile.TarInfo, arc: Archive, where: str, table: MemberTable) -> None:
    path = normalise(m.name)
    parts = check_path(m.name, path, where)
    typ = entry_type(m, where)
    arc.members += 1
    arc.common = common_dir(arc.common, parts, typ)
    row = Member(key=key_of(path), type=typ, mode=m.mode & 0o7777, uid=m.uid, gid=m.gid, mtime=mtime_ns(m),
                 size=m.size if typ == FILE else 0, member=m.name)
    if typ == HARDLINK:
        table.add_hardlink(arc.index, row, normalise(m.linkname), where)
        return
    if typ == SYMLINK:
        row.target = os.fsencode(m.linkname)
    table.add(arc.index, row, where)


def _check_limits(s: Scan, limits: ImportLimits) -> None:
    if s.bytes_total > limits.max_bytes:
        raise errors.UsageError(f"{s.filename}: its members hold more than {limits.max_bytes} bytes "
                                "uncompressed (the import limit); refused as a likely decompression bomb")
    if s.members > limits.max_members:
        raise errors.UsageError(f"{s.filename}: more than {limits.max_members} members (the import limit)")


def inner_members(path: str, scan_: Scan, cancel: threading.Event) -> Iterator[tuple[Archive, tarfile.TarInfo, IO]]:
    """Pass 2: (archive, member, data stream) of every regular file, in the order of pass 1."""
    archives = iter(scan_.archives)
    with readable(scan_.filename), open(path, "rb") as f, open_stream(f) as outer:
        for om in members(outer):
            if _outer_kind(om, scan_.filename) != "archive":
                continue
            arc = next(archives)
            with open_stream(outer.extractfile(om)) as inner:
                for m in members(inner):
                    _check_cancel(cancel)
                    if m.isreg():
                        yield arc, m, inner.extractfile(m)
