"""Repository storage on a local filesystem (the backup volume).

In: object keys such as `data/ab/<id>` and bytes or local files. Out: files under
one root directory, written atomically and durably (temp file, fsync, rename).
Every OSError becomes a typed error at this boundary (errors.from_os_error):
RepositoryError naming the operation and path, RepositoryNoSpace when the volume is full.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ragbackup import errors
from ragbackup.storage.base import ObjectInfo

DIR_MODE = 0o750
FILE_MODE = 0o640
TMP_PREFIX = ".tmp-"
_FD_CACHE = 64  # open pack descriptors kept for range reads
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalSettings:
    """Where a local repository lives: `path` is its root directory."""

    path: str


def validate_key(key: str) -> list[str]:
    """Split `key` into its `/` components; ValueError if it could escape the root.

    Refused: empty keys, absolute keys, empty, `.` or `..` components, NUL bytes
    and components starting with `.tmp-` (reserved for in-flight writes).
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid storage key {key!r}: empty")
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\x00" in part or part.startswith(TMP_PREFIX):
            raise ValueError(f"invalid storage key {key!r}: bad component {part!r}")
    return parts


def validate_prefix(prefix: str) -> None:
    """Check a listing prefix: the part up to its last `/` must be a valid key; the rest is free."""
    head, sep, last = prefix.rpartition("/")
    if sep:
        validate_key(head)
    if "\x00" in last:
        raise ValueError(f"invalid storage prefix {prefix!r}")


class LocalStorage:
    """The Storage contract over a directory tree: key `a/b/c` is file `<root>/a/b/c`."""

    def __init__(self, root: str, fsync: bool = True):
        self._fds: collections.OrderedDict[str, tuple[int, int]] = collections.OrderedDict()
        self._fd_lock = threading.Lock()
        self._root = os.path.abspath(root)
        self._fsync = fsync

    def __repr__(self) -> str:
        return f"LocalStorage({self._root!r})"

    def describe(self) -> str:
        return self._root

    # -- writes -------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """Atomic and durable: temp file, fsync, rename, fsync the directory."""
        with self._boundary("write", key):
            self._write_atomic(key, lambda out: out.write(data))

    def put_file(self, key: str, path: str) -> None:
        """Copy `path` in as `put` does, without reading it whole into memory."""
        with open(path, "rb") as src, self._boundary("write", key):  # a missing `path` is the caller's
            self._write_atomic(key, lambda out: shutil.copyfileobj(src, out, _COPY_CHUNK))

    def adopt_file(self, key: str, path: str) -> None:
        """Move a finished, fsynced local file in as `key` (a rename on the same filesystem).

        Falls back to `put_file` across filesystems. `path` is gone afterwards either way.
        """
        dest = self._path(key)
        self._forget_fd(key)
        with self._boundary("write", key):
            self._make_dirs(os.path.dirname(dest))
            os.chmod(path, FILE_MODE)
            try:
                os.replace(path, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self.put_file(key, path)
                os.unlink(path)
                return
            self._sync_dir(os.path.dirname(dest))

    def delete(self, key: str) -> None:
        """Remove the file (missing is fine); emptied directories stay."""
        self._forget_fd(key)
        path = self._path(key)
        with self._boundary("delete", key):
            try:
                os.unlink(path)
            except FileNotFoundError:
                return
            self._sync_dir(os.path.dirname(path))

    # -- reads --------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with self._open(key) as f, self._boundary("read", key):
            return f.read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read with pread on a cached descriptor; IntegrityError if the range runs past the end."""
        check_range(offset, length)
        fd, size = self._cached_fd(key)
        if offset + length > size:
            raise short_read(self.describe(), key, offset, length, max(0, size - offset))
        with self._boundary("read", key):
            data = _pread_exact(fd, offset, length)
        if len(data) != length:
            raise short_read(self.describe(), key, offset, length, len(data))
        return data

    def _cached_fd(self, key: str) -> tuple[int, int]:
        """An open descriptor and size for `key`; restores read many ranges of the same pack."""
        with self._fd_lock:
            hit = self._fds.get(key)
            if hit is not None:
                self._fds.move_to_end(key)
                return hit
        f = self._open(key)
        with self._boundary("read", key):
            fd = os.dup(f.fileno())
            f.close()
            entry = (fd, os.fstat(fd).st_size)
        with self._fd_lock:
            self._fds[key] = entry
            while len(self._fds) > _FD_CACHE:
                os.close(self._fds.popitem(last=False)[1][0])
        return entry

    def _forget_fd(self, key: str) -> None:
        with self._fd_lock:
            entry = self._fds.pop(key, None)
        if entry is not None:
            os.close(entry[0])

    def get_to_file(self, key: str, path: str) -> None:
        """Copy to `path` through a temp file beside it, so failures leave no partial file."""
        with self._open(key) as src, self._boundary("read", key):
            _replace_file(path, lambda out: shutil.copyfileobj(src, out, _COPY_CHUNK))

    def size(self, key: str) -> int:
        try:
            with self._boundary("stat", key, (FileNotFoundError, NotADirectoryError)):
                st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(key) from None
        if not _is_regular(st.st_mode):
            raise self._not_found(key)
        return st.st_size

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except errors.NotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Walk lazily with os.scandir, skipping in-flight temp files and symlinks.

        The prefix is checked now (ValueError); the tree is read as the caller iterates.
        """
        validate_prefix(prefix)
        head, _, name_start = prefix.rpartition("/")
        top = os.path.join(self._root, head) if head else self._root
        key_base = f"{head}/" if head else ""
        return self._listing(prefix, _walk(top, key_base, name_start))

    def _listing(self, prefix: str, infos: Iterator[ObjectInfo]) -> Iterator[ObjectInfo]:
        with self._boundary("list", prefix or "."):
            yield from infos

    # -- helpers ------------------------------------------------------------

    def _path(self, key: str) -> str:
        return os.path.join(self._root, *validate_key(key))

    @contextlib.contextmanager
    def _boundary(self, op: str, key: str, passing: tuple[type[OSError], ...] = ()) -> Iterator[None]:
        """OSErrors inside become the repository's typed errors naming `op` and the key's path."""
        try:
            yield
        except passing:
            raise
        except OSError as exc:
            raise errors.from_os_error(exc, "repository", op, os.path.join(self._root, key)) from None

    def _not_found(self, key: str) -> errors.NotFound:
        return errors.NotFound(f"object {key!r} not found in {self._root}")

    def _open(self, key: str) -> BinaryIO:
        try:
            with self._boundary("read", key, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
                return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None

    def _write_atomic(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        """Write through `write` into a temp file next to the target, then rename it in place."""
        self._forget_fd(key)
        path = self._path(key)
        directory = os.path.dirname(path)
        self._make_dirs(directory)
        tmp = os.path.join(directory, TMP_PREFIX + secrets.token_hex(8))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # the umask must not loosen or tighten the mode
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        self._sync_dir(directory)

    def _make_dirs(self, directory: str) -> None:
        """Create `directory` and missing parents with mode 0750, syncing each new entry."""
        if os.path.isdir(directory):
            return
        parent = os.path.dirname(directory)
        if parent != directory:
            self._make_dirs(parent)
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            return
        os.chmod(directory, DIR_MODE)
        self._sync_dir(parent)

    def _sync_dir(self, directory: str) -> None:
        """fsync a directory so a rename or new entry in it survives a crash."""
        if not self._fsync:
            return
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _walk(directory: str, key_base: str, name_start: str = "") -> Iterator[ObjectInfo]:
    """Yield the files under `directory` lazily; at this level only names starting with `name_start`."""
    try:
        scan = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    with scan:
        for entry in scan:
            if entry.name.startswith(TMP_PREFIX) or not entry.name.startswith(name_start):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, f"{key_base}{entry.name}/")
            elif entry.is_file(follow_symlinks=False):
                info = _info(entry, key_base)
                if info is not None:
                    yield info


def _info(entry: os.DirEntry, key_base: str) -> ObjectInfo | None:
    """The ObjectInfo of a scanned file, or None if it vanished meanwhile."""
    try:
        return ObjectInfo(key=key_base + entry.name, size=entry.stat(follow_symlinks=False).st_size)
    except FileNotFoundError:
        return None


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def check_range(offset: int, length: int) -> None:
    """ValueError for a negative offset or length (shared by every backend)."""
    if offset < 0 or length < 0:
        raise ValueError(f"invalid range: offset {offset}, length {length}")


def short_read(where: str, key: str, offset: int, length: int, got: int) -> errors.IntegrityError:
    """The error for a range that runs past the end of an object: the object is truncated."""
    return errors.IntegrityError(
        f"object {key!r} in {where} is too short: wanted {length} bytes at offset {offset}, got {got}"
    )


def _pread_exact(fd: int, offset: int, length: int) -> bytes:
    """Read up to `length` bytes at `offset`, looping over short reads; stops early only at EOF."""
    parts = []
    remaining = length
    while remaining > 0:
        chunk = os.pread(fd, remaining, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _replace_file(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Write a local file through a temp file beside it, so a failed copy leaves no partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, TMP_PREFIX + secrets.token_hex(8))
    try:
        with open(tmp, "xb") as out:
            write(out)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
