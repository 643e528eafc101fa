"""An RDB stored by record, rebuilt in a process of its own beside the agent's restore.

In (parent side, `rebuild_apart`): the file's stored chunks in order, as a restore decodes
them, and the directory its spool goes in. Out: the file's bytes, in pieces, as
`rdb_layout.rebuild` gives them, and the same errors (IntegrityError for chunks that do not
make the recorded file; OSError for the spool, naming its directory).

Why a process: the rebuild is a Python loop over every record (one pread, a few dozen
bytecodes; about 3 CPU s for the benchmark's 1,000,000 keys), and while it runs it holds the
agent's interpreter lock, so the other components restored at the same time wait for it: a
whole restore took nearly as long as its components one after another. The worker runs it
on the other core; the agent only passes bytes through two pipes (its reads and writes
release the lock).

The pipes: the agent writes each chunk to the worker's stdin as a 4-byte little-endian
length and the bytes, then closes it; the worker writes the rebuilt file to its stdout. A
rebuild reads all of its chunks before it gives its first byte, so the agent writes
everything, then reads: neither side waits on the other's full pipe. A worker that fails
writes one JSON line to stderr ({"kind": "integrity"|"os"|"other", "message", "errno",
"filename"}) and exits 1; its stderr goes to an unlinked file in the spool dir, read once it
has ended.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import BinaryIO, Iterable, Iterator

from ragbackup import errors
from ragbackup.direct import write_all
from ragbackup.repo import rdb_layout

PIPE_BYTES = 1024 * 1024  # each pipe's capacity (Linux's default ceiling for an unprivileged process)
FEED_BATCH = 1024 * 1024  # bytes of framed chunks per write to the worker
READ_BYTES = 1024 * 1024  # bytes of the rebuilt file per read from the worker
_LENGTH = 4
MAX_CHUNK = (1 << 32) - 1


class WorkerFailed(errors.RagBackupError):
    """The rebuild worker ended without a rebuilt file and without saying why (a signal, a crash)."""


def rebuild_apart(chunks: Iterable[bytes | memoryview], spool_dir: str) -> Iterator[bytes]:
    """The rebuilt file from its stored `chunks`, rebuilt by a worker process spooling in `spool_dir`.

    Closing the generator early (a cancelled restore) kills the worker.
    """
    # cwd "/": `-m` puts the working directory first on the worker's sys.path, and a `ragbackup`
    # directory there (the agent started by hand in a checkout or a restored tree) would run instead.
    # stderr to a file, read once the worker has ended: a pipe it filled (a long traceback) while the
    # agent waited on stdout would stop both.
    spool_dir = os.path.abspath(spool_dir)
    with tempfile.TemporaryFile(dir=spool_dir) as said:
        yield from _run(spool_dir, chunks, said)


def _run(spool_dir: str, chunks: Iterable[bytes | memoryview], said: BinaryIO) -> Iterator[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "ragbackup.agent.rebuild_worker", spool_dir],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=said, cwd="/")
    try:
        _widen(proc.stdin.fileno())
        _widen(proc.stdout.fileno())
        _feed(proc.stdin.fileno(), chunks)
        proc.stdin.close()
        out = proc.stdout.fileno()
        while data := os.read(out, READ_BYTES):
            yield data
        _finish(proc, said)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            f.close()


def _widen(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass  # a lower /proc/sys/fs/pipe-max-size: the default 64 KiB works, with more system calls


def _feed(fd: int, chunks: Iterable[bytes | memoryview]) -> None:
    """Frame `chunks` into the worker's stdin; stop early if the worker has ended (its error follows)."""
    buf = bytearray()
    try:
        for c in chunks:
            if len(c) > MAX_CHUNK:
                raise errors.IntegrityError(f"rdb-records: a chunk of {len(c)} bytes")
            buf += len(c).to_bytes(_LENGTH, "little")
            buf += c
            if len(buf) >= FEED_BATCH:
                write_all(fd, buf)
                buf.clear()
        write_all(fd, buf)
    except BrokenPipeError:
        return


def _finish(proc: subprocess.Popen, said: BinaryIO) -> None:
    """Raise what the ended worker reported (`said`: its stderr), if it failed."""
    rc = proc.wait()
    said.seek(0)
    report = said.read().decode(errors="replace").strip()
    if rc == 0:
        return
    failure = _parse_failure(report)
    if failure is None:
        why = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit {rc}"
        raise WorkerFailed(f"rdb rebuild worker ended with {why}: {report[-500:] or 'no message'}")
    raise failure


def _parse_failure(report: str) -> BaseException | None:
    """The exception a worker's last stderr line describes; None when it is not a failure report."""
    try:
        doc = json.loads(report.splitlines()[-1])
        kind, message = doc["kind"], str(doc["message"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    if kind == "integrity":
        return errors.IntegrityError(message)
    if kind == "os" and isinstance(doc.get("errno"), int):
        return OSError(doc["errno"], message, doc.get("filename"))
    return WorkerFailed(f"rdb rebuild worker: {message}")


def frames(f: BinaryIO) -> Iterator[bytes]:
    """The chunks framed into `f` by `_feed`; IntegrityError for a frame cut short."""
    while head := f.read(_LENGTH):
        if len(head) < _LENGTH:
            raise errors.IntegrityError("rdb-records: the chunk stream ends inside a length")
        n = int.from_bytes(head, "little")
        data = f.read(n)
        if len(data) != n:
            raise errors.IntegrityError("rdb-records: the chunk stream ends inside a chunk")
        yield data


def _failure_line(exc: BaseException) -> str:
    if isinstance(exc, errors.IntegrityError):
        return json.dumps({"kind": "integrity", "message": exc.message})
    if isinstance(exc, OSError):
        return json.dumps({"kind": "os", "message": exc.strerror or str(exc), "errno": exc.errno,
                           "filename": exc.filename})
    return json.dumps({"kind": "other", "message": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    """The worker: chunks framed on stdin, the rebuilt file on stdout, spooling in argv[0]."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write(json.dumps({"kind": "other", "message": "usage: rebuild_worker SPOOL_DIR"}) + "\n")
        return 2
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        with open(0, "rb", buffering=PIPE_BYTES, closefd=False) as src:
            for piece in rdb_layout.rebuild(frames(src), args[0]):
                write_all(1, piece)
    except Exception as exc:  # noqa: BLE001 - reported to the agent, which raises it as its own
        sys.stderr.write(_failure_line(exc) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
