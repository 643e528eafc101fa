"""Writes restored entries into a directory without ever leaving it.

In: entries (validated paths) and their chunks in order, from the Restore stream.
Out: files, dirs, symlinks and hardlinks under `root` with modes, owners and mtimes,
and `root` itself with the mode, owner and mtime of the tree's "." entry; every path
is opened component by component relative to directory fds with O_NOFOLLOW, so
neither `..` nor a symlink can redirect a write outside `root`. Files keep their
holes: recorded holes, and chunks that are all zeros, are skipped (lseek), not written.
"""
from __future__ import annotations

import collections
import ctypes
import errno
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

from ragbackup import direct, errors
from ragbackup.repo import chunking, rdb_layout
from ragbackup.repo.ids import chunk_id
from ragbackup.repo.dictionary import NO_DICTIONARIES, Dictionaries
from ragbackup.repo.tree import ROOT, check_holes, check_layout, check_relative_path, received_chunk_ids
from ragbackup.v1 import common_pb2

from ragbackup.agent.rebuild_worker import rebuild_apart
from ragbackup.agent.workpool import JobGroup

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
IS_ROOT = os.geteuid() == 0
# Files at least this large get their blocks reserved up front (one extent instead of
# many delayed allocations), as restic and borg do; not files with recorded holes, and
# zero runs skipped in a reserved file are punched out again (_punch).
PREALLOCATE_FROM = 1024 * 1024
# A chunk (or the part of one between holes) this long or longer that is all zeros is
# left as a hole: a sparse file captured before holes were recorded, or one whose
# filesystem did not report them, still restores sparse. Whole 4 KiB blocks become holes.
ZERO_RUN = direct.BLOCK
_ZEROS = bytes(1024 * 1024)
_FALLOC_PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
# Files at least this large are written past the page cache (direct.py).
DIRECT_FROM = 1024 * 1024
# An RDB stored by record at least this large is rebuilt by a worker process (rebuild_worker.py):
# starting one costs about 0.1 s, rebuilding 16 MiB of records in the agent about 0.2 s.
REBUILD_APART_FROM = 16 * 1024 * 1024


_LIBC = ctypes.CDLL(None, use_errno=True)


def _preallocate(fd: int, size: int) -> None:
    """Reserve `size` bytes for a new file with fallocate(2).

    Not posix_fallocate: glibc emulates that by writing every block where the
    filesystem lacks fallocate. Where it is unsupported nothing is reserved; a full
    disk raises NoSpace before any data is written.
    """
    if _LIBC.fallocate(fd, 0, ctypes.c_long(0), ctypes.c_long(size)) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.ENOSPC:
        raise errors.NoSpace(f"no space left to restore a file of {size} bytes")


def _punch(fd: int, offset: int, length: int) -> None:
    """Give back the reserved blocks of a range left unwritten; where unsupported they stay (zeros)."""
    _LIBC.fallocate(fd, _FALLOC_PUNCH, ctypes.c_long(offset), ctypes.c_long(length))


def is_zero(view: memoryview) -> bool:
    """True for at least ZERO_RUN bytes that are all zeros (memcmp against a zero buffer)."""
    n = len(view)
    if n < ZERO_RUN or view[0] or view[n - 1]:
        return False
    step = len(_ZEROS)
    return all(_ZEROS.startswith(view[i:i + step]) for i in range(0, n, step))


Piece = bytes | memoryview | int  # data to write, or (int) bytes to leave as a hole


def pieces(chunks: Iterator[bytes | memoryview], holes: Sequence[int]) -> Iterator[Piece]:
    """A file's data in order with its holes put back (ints); zero runs become holes too.

    `chunks` hold the bytes outside `holes` (flat, ascending (offset, length) pairs).
    """
    pos, i = 0, 0
    for data in chunks:
        view = memoryview(data).cast("B")
        while True:
            while i < len(holes) and holes[i] == pos:
                yield holes[i + 1]
                pos += holes[i + 1]
                i += 2
            if not view:
                break
            limit = holes[i] - pos if i < len(holes) else len(view)
            part, view = view[:limit], view[limit:]
            yield len(part) if is_zero(part) else part
            pos += len(part)
    while i < len(holes) and holes[i] == pos:  # holes at the end
        yield holes[i + 1]
        pos += holes[i + 1]
        i += 2


# A large file written through the page cache (where O_DIRECT is refused) is handed
# to the disk every WRITEBACK_BYTES (sync_file_range(2), without waiting), so its
# writeback runs while the restore is still decoding, not all at the final syncfs(2).
WRITEBACK_BYTES = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing [offset, offset+length) of fd to disk; a hint, errors ignored."""
    _LIBC.sync_file_range(fd, ctypes.c_int64(offset), ctypes.c_int64(length),
                          ctypes.c_uint(_SYNC_FILE_RANGE_WRITE))


def make_durable(dir_fd: int, what: str) -> None:
    """syncfs(2) of the filesystem holding dir_fd: the restored data is on disk when this returns.

    In: an open directory of the restored tree; `what` names it in the error.
    Out: None, or errors.NoSpace / OSError when the kernel reports a failed writeback.
    """
    if _LIBC.syncfs(dir_fd) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.ENOSPC:
        raise errors.NoSpace(f"no space left while writing {what} to disk")
    raise OSError(err, f"writing {what} to disk failed: {os.strerror(err)}")


def sync_dir(path: str) -> None:
    """make_durable for the filesystem holding directory `path` (data placed by a database installer)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        make_durable(fd, path)
    finally:
        os.close(fd)


# Consecutive chunks of a file are written with one writev(2) of up to this many
# bytes or WRITE_BUFFERS buffers: a database restores as thousands of 16 KiB pages.
WRITE_BYTES = 1024 * 1024
WRITE_BUFFERS = 128


def _write_buffered(fd: int, chunks: Iterator[Piece]) -> int:
    """Write chunks through the page cache, consecutive ones in one writev(2); returns the file's size.

    Holes (ints) move the offset on. A large file's data is handed to writeback every
    WRITEBACK_BYTES and at its end.
    """
    pending: list[bytes | memoryview] = []
    pending_bytes = written = flushed = 0  # flushed: bytes handed to writeback
    for data in chunks:
        if isinstance(data, int):
            if pending:
                _write_vector(fd, pending)
                written += pending_bytes
                pending, pending_bytes = [], 0
            os.lseek(fd, data, os.SEEK_CUR)
            written += data
            os.ftruncate(fd, written)  # a hole at the end still counts in the size
            continue
        pending.append(data)
        pending_bytes += len(data)
        if pending_bytes >= WRITE_BYTES or len(pending) >= WRITE_BUFFERS:
            _write_vector(fd, pending)
            written += pending_bytes
            pending, pending_bytes = [], 0
            if written - flushed >= WRITEBACK_BYTES:
                _start_writeback(fd, flushed, written - flushed)
                flushed = written
    if pending:
        _write_vector(fd, pending)
        written += pending_bytes
    if written >= PREALLOCATE_FROM:
        _start_writeback(fd, flushed, written - flushed)
    return written


def _write_vector(fd: int, bufs: list[bytes | memoryview]) -> None:
    """Write `bufs` in order, all of them (writev may write less than asked)."""
    done = os.writev(fd, bufs)
    for buf in bufs:
        if done >= len(buf):
            done -= len(buf)
            continue
        direct.write_all(fd, memoryview(buf)[done:])
        done = 0


def _noting_holes(items: Iterator[Piece], skipped: list[tuple[int, int]]) -> Iterator[Piece]:
    """`items` unchanged; the (offset, length) of every hole is appended to `skipped`."""
    pos = 0
    for item in items:
        if isinstance(item, int):
            skipped.append((pos, item))
            pos += item
        else:
            pos += len(item)
        yield item


@dataclass
class RestoreCounts:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_written: int = 0


def _unsafe(path: bytes, why: str) -> errors.UnsafePath:
    return errors.UnsafePath(f"refused to restore {os.fsdecode(path)!r}: {why}")


def decode(id_key: bytes, c: common_pb2.Chunk, dicts: Dictionaries = NO_DICTIONARIES) -> bytes | memoryview:
    """Decompress a received chunk (with the dictionary its frame names) and check it against its id.

    A stored (uncompressed) payload is returned as it came, a view included: no copy.
    """
    data = chunking.decompress(c.payload, True, c.raw_size, dicts) if c.compressed else c.payload
    if chunk_id(id_key, data) != c.id:
        raise errors.IntegrityError(f"chunk {c.id.hex()[:16]} does not match its id")
    return data


def decode_batch(id_key: bytes, chunks: Sequence[common_pb2.Chunk],
                 dicts: Dictionaries = NO_DICTIONARIES) -> list[bytes | memoryview]:
    """`decode` of every chunk of one received batch, in order."""
    return [decode(id_key, c, dicts) for c in chunks]


# Decoded bytes a component's restore holds ahead of its writer (at least one received batch).
# 2 MiB against 8: the agent's peak in a scale-1 restore 131-160 MB (median 134) against
# 154-165 (median 158), restore times the same within the machine's spread (20.4-22.8 s
# against 20.0-24.1 s, four runs each, interleaved); docs/PERFORMANCE.md.
DECODE_AHEAD = 2 * 1024 * 1024


class ChunkDecoder:
    """Decodes the stream's chunk batches ahead of the writer in a thread pool; hands chunks out in order.

    One pool job per received batch (not per chunk): a batch of 16 KiB database pages
    holds about a hundred chunks, and a job each cost more in thread hand-offs than
    decoding them. At most `max_bytes` of decoded data is held ahead of the writer,
    plus the batch being written.
    """

    def __init__(self, pull: Callable[[], Sequence[common_pb2.Chunk] | None], id_key: bytes, workers: int,
                 max_bytes: int = DECODE_AHEAD, dicts: Dictionaries = NO_DICTIONARIES,
                 pool: ThreadPoolExecutor | None = None):
        self._pull = pull
        self._id_key = id_key
        self._dicts = dicts
        self._jobs = JobGroup(pool, workers, "decode")
        self._ahead: collections.deque[tuple[list[bytes], int, Future]] = collections.deque()
        self._bytes = 0
        self._max = max_bytes
        self._ids: list[bytes] = []
        self._data: list[bytes | memoryview] = []
        self._next = 0

    def _fill(self) -> None:
        while self._bytes < self._max:
            chunks = self._pull()
            if chunks is None:
                return
            size = sum(c.raw_size for c in chunks)
            job = self._jobs.submit(decode_batch, self._id_key, chunks, self._dicts)
            self._ahead.append(([c.id for c in chunks], size, job))
            self._bytes += size

    def _advance(self) -> None:
        """Make the next decoded batch current; IntegrityError when the stream has no more."""
        if not self._ahead:
            self._fill()
        if not self._ahead:
            raise errors.IntegrityError("restore stream ended before all chunks arrived")
        self._ids, size, job = self._ahead.popleft()
        self._bytes -= size
        self._data, self._next = job.result(), 0
        self._fill()

    def __call__(self, expected: bytes) -> bytes | memoryview:
        while self._next >= len(self._ids):
            self._advance()
        i = self._next
        if self._ids[i] != expected:
            raise errors.IntegrityError("restore stream out of order")
        data, self._data[i] = self._data[i], b""
        self._next = i + 1
        return data

    def close(self) -> None:
        self._jobs.close()


class Meta(NamedTuple):
    """The metadata a directory gets back at the end of a restore (its mode, owner and mtime).

    Kept instead of the entry itself: a received entry is part of its batch's message (the
    protobuf runtime's arena), so holding one directory's entry held its whole batch of up to
    512 entries with their chunk ids; at 1,000,000 files in 1,000 directories that was about
    150 MB of the agent's restore.
    """

    mode: int
    uid: int
    gid: int
    mtime_ns: int

    @classmethod
    def of(cls, e: common_pb2.Entry) -> "Meta":
        return cls(e.mode, e.uid, e.gid, e.mtime_ns)


class TreeWriter:
    """Restores into `root` (an empty or new directory). Call `finish` at the end."""

    def __init__(self, root: str, id_key: bytes, like: str | None = None):
        """`like`: a directory whose mode, owner and mtime `root` takes when the tree has no "." entry
        (snapshots taken before it was recorded); None keeps root 0700."""
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.root = root
        self._like = like
        self._root_meta: Meta | None = None
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._id_key = id_key
        self._fds: dict[bytes, int] = {}
        self._dirs: list[tuple[bytes, Meta]] = []
        self.counts = RestoreCounts()
        # Files of DIRECT_FROM bytes or more are written with O_DIRECT (direct.py);
        # None once the filesystem has refused it.
        self._direct: direct.DirectWriter | None = direct.DirectWriter()

    # --- directory fds --------------------------------------------------------------

    def _dir_fd(self, parts: list[bytes], full: bytes) -> int:
        """fd of the directory `parts` below root, opened without following symlinks."""
        key = b"/".join(parts)
        if not parts:
            return self._root_fd
        fd = self._fds.get(key)
        if fd is not None:
            return fd
        parent = self._dir_fd(parts[:-1], full)
        try:
            fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            raise _unsafe(full, f"its parent directory {os.fsdecode(key)!r} is not in the snapshot") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _unsafe(full, f"{os.fsdecode(key)!r} is a symlink or not a directory") from None
            raise
        if len(self._fds) > 512:
            self._close_fds()
        self._fds[key] = fd
        return fd

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    # --- entries --------------------------------------------------------------------

    def write(self, e: common_pb2.Entry, next_data: Callable[[bytes], bytes],
              ids: Iterable[bytes] | None = None) -> None:
        """Restore one entry; file data is pulled chunk by chunk from `next_data(expected id)`, for
        the ids `ids` (an entry's parts joined, entry_parts.py; read in order) or, when None,
        those `e` carries."""
        if e.path == ROOT and e.type == common_pb2.ENTRY_TYPE_DIR:
            self._root_meta = Meta.of(e)  # applied by finish, after everything below it
            return
        parts = check_relative_path(e.path)
        pfd = self._dir_fd(parts[:-1], e.path)
        name = parts[-1]
        if e.type == common_pb2.ENTRY_TYPE_DIR:
            self._mkdir(pfd, name, e)
        elif e.type == common_pb2.ENTRY_TYPE_FILE:
            self._write_file(pfd, name, e, next_data, ids)
        elif e.type == common_pb2.ENTRY_TYPE_SYMLINK:
            self._symlink(pfd, name, e)
        elif e.type == common_pb2.ENTRY_TYPE_HARDLINK:
            self._hardlink(pfd, name, e)
        else:
            raise _unsafe(e.path, f"unknown entry type {e.type}")

    def _exists_error(self, e: common_pb2.Entry) -> errors.UnsafePath:
        return _unsafe(e.path, "an object already exists at that path (duplicate entry)")

    def _mkdir(self, pfd: int, name: bytes, e: common_pb2.Entry) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            raise self._exists_error(e) from None
        self.counts.dirs += 1
        self._dirs.append((bytes(e.path), Meta.of(e)))

    def _write_file(self, pfd: int, name: bytes, e: common_pb2.Entry,  # noqa: PLR0913 (write()'s own)
                    next_data: Callable[[bytes], bytes], ids: Iterable[bytes] | None) -> None:
        try:
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            raise self._exists_error(e) from None
        try:
            if e.holes:
                check_holes(e.path, e.holes, e.size)
            check_layout(e.path, e.layout)
            reserved = e.size >= PREALLOCATE_FROM and not e.holes
            if reserved:
                _preallocate(fd, e.size)
            skipped: list[tuple[int, int]] = []
            chunks = _noting_holes(pieces(self._chunks(e, next_data, ids, self.root), e.holes), skipped)
            if e.size >= DIRECT_FROM and self._direct_on(fd):
                written = self._write_direct(fd, chunks)
            else:
                written = _write_buffered(fd, chunks)
            if reserved:
                for offset, length in skipped:
                    _punch(fd, offset, length)
            if written != e.size:
                raise errors.IntegrityError(f"{os.fsdecode(e.path)}: its chunks hold {written} bytes, "
                                            f"the snapshot says {e.size}")
            self._apply_fd_meta(fd, e)
            self.counts.bytes_written += written
        finally:
            os.close(fd)
        self.counts.files += 1

    @staticmethod
    def _chunks(e: common_pb2.Entry, next_data: Callable[[bytes], bytes],
                ids: Iterable[bytes] | None, spool_dir: str) -> Iterator[bytes | memoryview]:
        """The file's data in order (its chunks, or an RDB rebuilt from them, from
        REBUILD_APART_FROM bytes on by a worker process (rebuild_worker.py), its records spooled
        in `spool_dir`: the tree's own root, on the target's disk); errors name the file."""
        if ids is None:
            ids = received_chunk_ids(e)  # its IntegrityError names the entry already
        stored = (next_data(expected) for expected in ids)
        try:
            if e.layout != rdb_layout.LAYOUT:
                yield from stored
            elif e.size >= REBUILD_APART_FROM:
                yield from rebuild_apart(stored, spool_dir)
            else:
                yield from rdb_layout.rebuild(stored, spool_dir)
        except errors.IntegrityError as exc:
            raise errors.IntegrityError(f"{os.fsdecode(e.path)}: {exc.message}") from None

    def _direct_on(self, fd: int) -> bool:
        """Switch fd to O_DIRECT unless this tree's filesystem has refused it once."""
        if self._direct is None:
            return False
        if direct.enable(fd):
            return True
        self._direct.close()
        self._direct = None
        return False

    def _write_direct(self, fd: int, chunks: Iterator[Piece]) -> int:
        out = self._direct
        out.start(fd)
        written = 0
        for data in chunks:
            if isinstance(data, int):
                out.skip(data)
                written += data
                continue
            out.add(data)
            written += len(data)
        out.finish(written)
        if out.refused:
            self._close_direct()
        return written

    def _apply_fd_meta(self, fd: int, e: common_pb2.Entry | Meta) -> None:
        """Owner, mode and mtime through the open descriptor (no second path lookup)."""
        if IS_ROOT:
            os.fchown(fd, e.uid, e.gid)
        os.fchmod(fd, e.mode & 0o7777)
        os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))

    def _symlink(self, pfd: int, name: bytes, e: common_pb2.Entry) -> None:
        try:
            os.symlink(e.target, name, dir_fd=pfd)
        except FileExistsError:
            raise self._exists_error(e) from None
        self.counts.symlinks += 1
        self._apply_meta(pfd, name, e, symlink=True)

    def _hardlink(self, pfd: int, name: bytes, e: common_pb2.Entry) -> None:
        src_parts = check_relative_path(e.target)
        src_fd = self._dir_fd(src_parts[:-1], e.target)
        try:
            os.link(src_parts[-1], name, src_dir_fd=src_fd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise _unsafe(e.path, f"hardlink target {os.fsdecode(e.target)!r} was not restored before it") from None
        except FileExistsError:
            raise self._exists_error(e) from None
        self.counts.files += 1

    def _apply_meta(self, dfd: int, name: bytes, e: common_pb2.Entry | Meta, symlink: bool) -> None:
        if IS_ROOT:
            os.chown(name, e.uid, e.gid, dir_fd=dfd, follow_symlinks=False)
        if not symlink:
            os.chmod(name, e.mode & 0o7777, dir_fd=dfd)
        os.utime(name, ns=(e.mtime_ns, e.mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def finish(self) -> RestoreCounts:
        """Apply directory metadata deepest first (children change a dir's mtime), close fds.

        Returns once the tree is on disk (make_durable): an in-place restore puts it
        where the live data was, and a crash soon after must not leave empty files there.
        """
        self._close_fds()
        for path, meta in sorted(self._dirs, key=lambda d: d[0].count(b"/"), reverse=True):
            parts = path.split(b"/")
            pfd = self._dir_fd(parts[:-1], path)
            self._apply_meta(pfd, parts[-1], meta, symlink=False)
        self._close_fds()
        self._apply_root_meta()
        make_durable(self._root_fd, os.fsdecode(self.root))
        os.close(self._root_fd)
        self._close_direct()
        return self.counts

    def _apply_root_meta(self) -> None:
        """The root's recorded mode, owner and mtime; else those of `like` (the data it replaces)."""
        if self._root_meta is not None:
            self._apply_fd_meta(self._root_fd, self._root_meta)
            return
        if self._like and os.path.isdir(self._like):
            st = os.stat(self._like)
            self._apply_fd_meta(self._root_fd, Meta(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns))

    def _close_direct(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    def close(self) -> None:
        self._close_fds()
        self._close_direct()
        try:
            os.close(self._root_fd)
        except OSError:
            pass
