"""Directory-tree helpers for the benchmark: sizes, digests, copies, in-place sync and byte-for-byte compare.

In: directory paths. Out: sizes, digests, a Comparison, or a destination tree made identical to a source.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 1 << 20


def walk_entries(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative posix path, lstat) of every entry below root, sorted, directories included."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = base / name
            yield p.relative_to(root).as_posix(), p.lstat()


def dir_bytes(root: Path) -> int:
    """Sum of regular-file sizes below root (0 if it does not exist): the 'repository size'."""
    if not root.exists():
        return 0
    return sum(st.st_size for _, st in walk_entries(root) if stat.S_ISREG(st.st_mode))


def tree_stats(root: Path) -> tuple[int, int]:
    """(bytes, regular files) below root."""
    files = [st.st_size for _, st in walk_entries(root) if stat.S_ISREG(st.st_mode)]
    return sum(files), len(files)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: Path) -> str:
    """SHA-256 over sorted (path, kind, content) of a tree: equal trees, equal digests (mtimes ignored)."""
    h = hashlib.sha256()
    for rel, st in walk_entries(root):
        if stat.S_ISREG(st.st_mode):
            h.update(f"F {rel} {_file_sha256(root / rel)}\n".encode())
        elif stat.S_ISLNK(st.st_mode):
            h.update(f"L {rel} {os.readlink(root / rel)}\n".encode())
        else:
            h.update(f"D {rel}\n".encode())
    return h.hexdigest()


def copy_tree(src: Path, dst: Path) -> None:
    """A full independent copy (cp -a: modes, mtimes, symlinks); dst must not exist."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(src), str(dst)], check=True)


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def sync_tree(src: Path, dst: Path) -> int:
    """Make dst identical to src in place: rewrite files whose size or mtime differ, add, delete.

    Rewriting keeps the destination inode (like an application editing a file). Returns files written.
    """
    want = dict(walk_entries(src))
    have = dict(walk_entries(dst))
    for rel in sorted(set(have) - set(want), reverse=True):
        remove_tree(dst / rel)
    written = 0
    for rel, st in want.items():
        cur = have.get(rel)
        if cur is not None and stat.S_IFMT(cur.st_mode) != stat.S_IFMT(st.st_mode):
            remove_tree(dst / rel)
            cur = None
        if stat.S_ISDIR(st.st_mode):
            (dst / rel).mkdir(exist_ok=True)
        elif cur is None or cur.st_size != st.st_size or cur.st_mtime_ns != st.st_mtime_ns:
            shutil.copyfile(src / rel, dst / rel, follow_symlinks=False)
            shutil.copystat(src / rel, dst / rel, follow_symlinks=False)
            written += 1
    for rel, st in want.items():
        if stat.S_ISDIR(st.st_mode):
            shutil.copystat(src / rel, dst / rel)
    return written


@dataclass
class Comparison:
    """Result of comparing a restored tree against its source."""

    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.differ)

    def summary(self, limit: int = 10) -> dict:
        return {"ok": self.ok, "files": self.files, "bytes": self.bytes,
                "missing": self.missing[:limit], "extra": self.extra[:limit], "differ": self.differ[:limit],
                "n_missing": len(self.missing), "n_extra": len(self.extra), "n_differ": len(self.differ)}


def same_bytes(a: Path, b: Path) -> bool:
    """Byte-for-byte equality of two regular files."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            x, y = fa.read(BLOCK), fb.read(BLOCK)
            if x != y:
                return False
            if not x:
                return True


def compare_trees(expected: Path, actual: Path) -> Comparison:
    """Every file, directory and symlink of `expected` exists in `actual` with the same bytes, and no more."""
    want, have = dict(walk_entries(expected)), dict(walk_entries(actual))
    cmp = Comparison(missing=sorted(set(want) - set(have)), extra=sorted(set(have) - set(want)))
    for rel, st in want.items():
        other = have.get(rel)
        if other is None:
            continue
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(other.st_mode):
            cmp.differ.append(rel)
        elif stat.S_ISREG(st.st_mode):
            cmp.files += 1
            cmp.bytes += st.st_size
            if not same_bytes(expected / rel, actual / rel):
                cmp.differ.append(rel)
        elif stat.S_ISLNK(st.st_mode) and os.readlink(expected / rel) != os.readlink(actual / rel):
            cmp.differ.append(rel)
    return cmp
