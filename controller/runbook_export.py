"""A snapshot as the runbook's tarball (rag-system-backup-*.tar.gz), streamed to ragctl.

In: a snapshot id and the Controller. Out: ExportChunks of an outer tar.gz holding one
tar.gz per component (spooled in the staging dir) and manifest.json; plain tar restores it.
"""
from __future__ import annotations

import errno
import json
import os
import tarfile
import tempfile
import threading
import zlib
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from ragbackup import __version__, errors
from ragbackup.clock import parse_iso
from ragbackup.repo import rdb_layout
from ragbackup.repo.manifest import ComponentManifest, Manifest
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import DIR, FILE, HARDLINK, ROOT, SYMLINK, Entry, check_entry
from ragbackup.v1 import controller_pb2

from ragbackup.controller import locks
from ragbackup.controller.policy.plan import resolve_snapshot
from ragbackup.controller.runbook_layout import MANIFEST, export_manifest, inner_names
from ragbackup.controller.runbook_members import NS, ns_text
from ragbackup.controller.state import Controller

CHUNK = 1024 * 1024
INNER_LEVEL = 6  # gzip -6, what `tar -czf` uses
OUTER_LEVEL = 0  # stored blocks: the outer tarball holds gzip data already (deflate would crawl at ~45 MB/s)
_TAR_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, HARDLINK: tarfile.LNKTYPE}


@dataclass(frozen=True)
class Part:
    """A file in the export's top directory: a spooled inner tarball, or small bytes."""

    name: str
    path: str = ""
    data: bytes = b""

    def size(self) -> int:
        return os.path.getsize(self.path) if self.path else len(self.data)


def export_chunks(ctl: Controller, ref: str, cancel: threading.Event) -> Iterator[controller_pb2.ExportChunk]:
    """The Export job: inner tarballs spooled under the repository lock, then the outer one streamed."""
    repo = ctl.repo()
    os.makedirs(ctl.staging_dir, mode=0o750, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=ctl.staging_dir) as work:
        with locks.hold(ctl.state_dir, "repository", f"export {ref}", shared=True):
            manifest = repo.load_manifest(resolve_snapshot(ref or "latest", ctl.history(), []))
            parts = build_parts(repo, manifest, work, cancel)
        sid = manifest.id
        for n, data in enumerate(rechunk(outer_stream(sid, parts, _mtime(manifest)), CHUNK)):
            yield controller_pb2.ExportChunk(data=data, filename=f"{sid}.tar.gz" if n == 0 else "")


def _mtime(manifest: Manifest) -> int:
    return int(parse_iso(manifest.time).timestamp())


def build_parts(repo: Repository, manifest: Manifest, work: str, cancel: threading.Event) -> list[Part]:
    """One inner tar.gz per component in `work`, then manifest.json."""
    comps = manifest.components
    names = inner_names(manifest.kinds())
    parts = []
    for name in sorted(comps, key=lambda n: names[n]):
        path = os.path.join(work, names[name])
        try:
            write_component(repo, comps[name], path, _top_dir(name, _mtime(manifest)), cancel)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise errors.NoSpace(f"export {manifest.id}: the staging volume of {work} filled up while "
                                 f"writing {names[name]}") from None
        parts.append(Part(names[name], path=path))
    info = export_manifest(manifest, names, __version__)
    parts.append(Part(MANIFEST, data=json.dumps(info, indent=2, sort_keys=True).encode() + b"\n"))
    return parts


def _top_dir(name: str, mtime: int) -> tarfile.TarInfo:
    top = tarfile.TarInfo(name)
    top.type, top.mode, top.mtime, top.uname, top.gname = tarfile.DIRTYPE, 0o755, mtime, "", ""
    return top


def write_component(repo: Repository, comp: ComponentManifest, path: str, top: tarfile.TarInfo,
                    cancel: threading.Event) -> None:
    """A component's tree as a tar.gz, below the directory `top` (named after the component)."""
    with tarfile.open(path, "w:gz", compresslevel=INNER_LEVEL, format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        tar.addfile(top)
        for e in repo.read_tree(comp.tree_ids()):
            if cancel.is_set():
                raise errors.Cancelled("the export was cancelled")
            check_entry(e)
            if e.path == ROOT:
                continue  # the component's directory: `top`
            info = tar_info(top.name, e)
            if e.type != FILE:
                tar.addfile(info)
                continue
            reader = _BlobReader(repo, e.chunks, e.holes, e.layout, os.path.dirname(os.path.abspath(path)))
            tar.addfile(info, reader)
            reader.check_done(e)


def tar_info(top: str, e: Entry) -> tarfile.TarInfo:
    """The tar header of an entry: numeric owner only, mtime to the ns in a pax record."""
    info = tarfile.TarInfo(f"{top}/{os.fsdecode(e.path)}")
    info.type = _TAR_TYPES[e.type]
    info.mode, info.uid, info.gid, info.uname, info.gname = e.mode & 0o7777, e.uid, e.gid, "", ""
    info.mtime = e.mtime_ns // NS
    if e.mtime_ns % NS or not 0 <= info.mtime < 8 ** 11:
        info.pax_headers = {"mtime": ns_text(e.mtime_ns)}
    if e.type == FILE:
        info.size = e.size
    elif e.type == SYMLINK:
        info.linkname = os.fsdecode(e.target)
    elif e.type == HARDLINK:
        info.linkname = f"{top}/{os.fsdecode(e.target)}"
    return info


_HOLE_PIECE = 1024 * 1024


class _BlobReader:
    """A file's bytes read from its chunks one blob at a time (memory: one chunk); holes read as zeros."""

    def __init__(self, repo: Repository, chunks: list[bytes], holes: Sequence[int] = (),  # noqa: PLR0913
                 layout: str = "", spool_dir: str | None = None):
        """`spool_dir`: where an RDB's records are spooled while it is rebuilt (rdb_layout.rebuild)."""
        stored = (repo.read_blob(cid) for cid in chunks)
        self._data = rdb_layout.rebuild(stored, spool_dir) if layout == rdb_layout.LAYOUT else stored
        self._holes = list(holes)
        self._buf = b""
        self._pos = 0
        self._at = 0  # file offset of the end of _buf
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        """Exactly `size` bytes unless the file ends (tarfile insists on full reads)."""
        out = []
        want = size if size >= 0 else 1 << 62
        while want > 0 and self._fill():
            piece = self._buf[self._pos:self._pos + want]
            self._pos += len(piece)
            want -= len(piece)
            out.append(piece)
        data = b"".join(out)
        self.total += len(data)
        return data

    def _fill(self) -> bool:
        if self._pos < len(self._buf):
            return True
        if self._holes and self._holes[0] <= self._at:  # inside a hole: up to 1 MiB of zeros at a time
            n = min(self._holes[1], _HOLE_PIECE)
            self._holes[0] += n
            self._holes[1] -= n
            if not self._holes[1]:
                del self._holes[:2]
            self._buf, self._pos = bytes(n), 0
            self._at += n
            return True
        data = next(self._data, None)
        if data is None:
            return False
        self._buf, self._pos = data, 0  # chunks never span a hole (cut per data run)
        self._at += len(self._buf)
        return True

    def check_done(self, e: Entry) -> None:
        if self._fill() or self.total != e.size:
            raise errors.IntegrityError(f"{os.fsdecode(e.path)}: its chunks do not hold the {e.size} bytes "
                                        "its tree entry records")


def outer_stream(top: str, parts: list[Part], mtime: int) -> Iterator[bytes]:
    """The outer tar.gz, gzip-compressed as it is produced (no staging of the outer file)."""
    gz = zlib.compressobj(OUTER_LEVEL, zlib.DEFLATED, 31)
    size = 0
    for block in _tar_blocks(top, parts, mtime):
        size += len(block)
        out = gz.compress(block)
        if out:
            yield out
    yield gz.compress(b"\0" * (-size % tarfile.RECORDSIZE)) + gz.flush()


def _tar_blocks(top: str, parts: list[Part], mtime: int) -> Iterator[bytes]:
    yield _header(top + "/", tarfile.DIRTYPE, 0, mtime)
    for p in parts:
        size = p.size()
        yield _header(f"{top}/{p.name}", tarfile.REGTYPE, size, mtime)
        yield from _part_data(p, size)
        yield b"\0" * (-size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def _header(name: str, typ: bytes, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = typ, size, mtime
    info.mode = 0o750 if typ == tarfile.DIRTYPE else 0o640
    return info.tobuf(tarfile.PAX_FORMAT)


def _part_data(p: Part, size: int) -> Iterator[bytes]:
    if not p.path:
        yield p.data
        return
    n = 0
    with open(p.path, "rb") as f:
        while block := f.read(CHUNK):
            n += len(block)
            yield block
    if n != size:
        raise errors.IntegrityError(f"export part {p.name} changed size while it was sent")


def rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Pieces of any length regrouped into `size`-byte chunks (the last may be shorter)."""
    buf = bytearray()
    for p in pieces:
        buf += p
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)
