"""Writing a new file's data straight to the disk (O_DIRECT), past the page cache.

In: an open, new, empty file and its bytes in order, appended. Out: the bytes on
the device; the filesystem's metadata still needs fsync(2) or syncfs(2). Used for
restored files of 1 MiB or more (agent/restore.py) and for pack files
(repo/packs.py): both are written once, whole, front to back, and then synced.

A buffered write(2) copies every byte into the page cache, and the kernel later
writes the dirty pages out again: on a restore of 2.55 GB that copy was a quarter
of the agent's CPU (perf: copy_folio_from_iter_atomic), and the writeback filled
the final sync. It also evicts what the host's applications keep cached (a
vector store's working set) for data nobody reads soon. With O_DIRECT the device
reads the bytes from our buffer. Its rules: the buffer, the file offset and the
length must be multiples of the device's block size. Data is therefore copied
into one page-aligned buffer of BUFFER bytes (a user-space copy, several times
cheaper than the kernel's) and written a full buffer at a time; the last,
partial block is padded with zeros and the file truncated to its size. A hole
(`skip`) completes the current block with zeros, writes the buffer out and moves
the file offset past the whole blocks it spans, so offsets stay aligned.
Filesystems without O_DIRECT (some network filesystems; tmpfs before Linux 6.6)
refuse it at fcntl(2), and the caller writes as before; a device that needs
larger alignment refuses the first write (EINVAL), and that file goes on
through the page cache (`refused`).
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os

from ragbackup import errors

BLOCK = 4096  # covers 512-byte and 4 KiB logical blocks
BUFFER = 1024 * 1024
_ZEROS = bytes(BLOCK)


def enable(fd: int) -> bool:
    """Switch an open file to O_DIRECT; False (and unchanged) where the filesystem refuses it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError:
        return False
    return True


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """write(2) `data` to `fd` (a file through the page cache, or a pipe) until all of it is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def disable(fd: int) -> None:
    """Switch an open file back to writes through the page cache."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)


class DirectWriter:
    """Appends chunks to O_DIRECT files through one aligned buffer; one file at a time.

    `start(fd)`, then `add(data)` per chunk, then `finish(size)`. The buffer (BUFFER
    bytes, page-aligned because it is mapped) is reused for every file.
    """

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, BUFFER)
        self._buf = memoryview(self._map)
        self._fd = -1
        self._fill = 0
        self.refused = False  # a write was refused for its alignment: this filesystem is written buffered

    def start(self, fd: int) -> None:
        self._fd, self._fill = fd, 0

    def add(self, data: bytes | memoryview) -> None:
        """Copy `data` into the buffer, writing each full buffer out."""
        view = memoryview(data).cast("B")
        while view:
            n = min(len(view), BUFFER - self._fill)
            self._buf[self._fill:self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == BUFFER:
                self._write(BUFFER)
                self._fill = 0

    def skip(self, n: int) -> None:
        """Leave `n` bytes unwritten (a hole, reading as zeros) where whole blocks allow it."""
        partial = self._fill % BLOCK
        if partial:
            k = min(n, BLOCK - partial)
            self.add(_ZEROS[:k])
            n -= k
        whole = n - n % BLOCK
        if whole:
            if self._fill:
                self._write(self._fill)  # whole blocks: the buffer starts at an aligned offset
                self._fill = 0
            os.lseek(self._fd, whole, os.SEEK_CUR)
            n -= whole
        if n:
            self.add(_ZEROS[:n])

    def finish(self, size: int) -> None:
        """Write what is buffered (its last block padded with zeros), then cut the file to `size` bytes."""
        if self._fill:
            padded = -(-self._fill // BLOCK) * BLOCK
            self._buf[self._fill:padded] = bytes(padded - self._fill)
            self._write(padded)
            self._fill = 0
        os.ftruncate(self._fd, size)  # drops the padding; extends a file ending in a hole
        self._fd = -1

    def _write(self, length: int) -> None:
        done = 0
        while done < length:
            try:
                n = os.write(self._fd, self._buf[done:length])
            except OSError as exc:
                if exc.errno != errno.EINVAL or self.refused:
                    raise
                self.refused = True
                disable(self._fd)
                continue
            if n <= 0 or n % BLOCK:
                raise errors.NoSpace(f"a write was cut short after {done + max(n, 0)} of {length} bytes "
                                     "(the disk is probably full)")
            done += n

    def close(self) -> None:
        self._buf.release()
        self._map.close()
