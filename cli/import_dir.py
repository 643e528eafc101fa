"""The runbook's backup directory (tarballs, manifest.json, .env.backup) as one tar stream.

In: a directory as the runbook left it before tarring it (BACKUP_DIR/rag-system-backup-*/).
Out: the uncompressed tar `ragctl import` uploads: its regular files at the top level, below
a directory of the same name, read once while sending; what was left out, and why.
"""
from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from ragbackup import errors

BLOCK = tarfile.BLOCKSIZE
PIECE = 1024 * 1024


@dataclass
class DirUpload:
    """The files to send (name, header, size) in order, and (entry, why) for those left out."""

    name: str
    files: list[tuple[str, bytes, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(h) + _padded(n) for _, h, n in self.files) + 2 * BLOCK

    @property
    def filename(self) -> str:
        return f"{self.name}.tar"


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def plan(path: str) -> DirUpload:
    """Top-level regular files of `path`; subdirectories, links and others are left out."""
    up = DirUpload(os.path.basename(os.path.normpath(os.path.abspath(path))) or "upload")
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            up.skipped.append((entry.name, "not a regular file"))
            continue
        info = tarfile.TarInfo(f"{up.name}/{entry.name}")
        info.size, info.mode, info.mtime = st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime
        info.uid, info.gid = st.st_uid, st.st_gid
        up.files.append((entry.name, info.tobuf(tarfile.PAX_FORMAT), st.st_size))
    return up


def stream(path: str, up: DirUpload) -> Iterator[bytes]:
    """The tar, piece by piece: each header, the file's data (exactly its listed size), padding."""
    for name, header, size in up.files:
        yield header
        with open(os.path.join(path, name), "rb") as f:
            yield from _data(f, size, name)
        if size % BLOCK:
            yield b"\0" * (BLOCK - size % BLOCK)
    yield b"\0" * (2 * BLOCK)


def _data(f: BinaryIO, size: int, name: str) -> Iterator[bytes]:
    left = size
    while left:
        piece = f.read(min(PIECE, left))
        if not piece:
            raise errors.UsageError(f"{name} shrank while it was sent (it had {size} bytes); retry")
        left -= len(piece)
        yield piece
