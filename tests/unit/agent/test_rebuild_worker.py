"""An RDB stored by record is rebuilt by a worker process: the same bytes and errors as in the agent.

In: a dump.rdb of a real redis-server, taken by record as the agent's capture takes it, its chunks
fed to `rebuild_apart` (a real worker process). Out: the rebuilt file byte-identical; damaged chunks,
a spool dir that cannot be written, a worker killed mid-way and a restore that stops early each end
as named, with no worker left running.
"""
from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys

import pytest

from ragbackup import errors
from ragbackup.agent import rebuild_worker
from ragbackup.repo import rdb_layout
from fixtures.capture_events import capture_all, saved_rdb


@pytest.fixture
def dump(redis_server, tmp_path) -> tuple[list[bytes], bytes]:
    """(the stored chunks of dump.rdb in order, the file's bytes): strings, and sets kept sorted."""
    c = redis_server.client()
    for i in range(3000):
        c.set(f"key:{i}", f"value {i} " * 8)
    for i in range(300):
        c.sadd(f"set:{i}", *[f"m-{j}-{i}" for j in range(150)])
    root, data = saved_rdb(redis_server, tmp_path)
    entries, stored = capture_all(root, (rdb_layout.LAYOUT,))
    e = entries[b"dump.rdb"]
    assert e.layout == rdb_layout.LAYOUT
    return [stored[cid] for cid in e.chunks], data


class _Recording(subprocess.Popen):
    made: list[subprocess.Popen] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Recording.made.append(self)


@pytest.fixture
def workers(monkeypatch) -> list[subprocess.Popen]:
    """The worker processes `rebuild_apart` starts in the test."""
    _Recording.made = []
    monkeypatch.setattr(rebuild_worker.subprocess, "Popen", _Recording)
    return _Recording.made


def test_the_worker_rebuilds_the_file_byte_identical_spooling_where_told(dump, tmp_path, workers):
    chunks, data = dump
    out = b"".join(rebuild_worker.rebuild_apart(iter(chunks), str(tmp_path)))

    assert out == data == b"".join(rdb_layout.rebuild(iter(chunks), str(tmp_path)))
    assert len(workers) == 1 and workers[0].returncode == 0
    with pytest.raises(OSError) as info:  # the spool goes where it is told: not there, no rebuild
        b"".join(rebuild_worker.rebuild_apart(iter(chunks), str(tmp_path / "missing")))
    assert info.value.errno == errno.ENOENT


def test_damaged_chunks_fail_with_the_rebuilds_own_integrity_error(dump, tmp_path, workers):
    chunks, _ = dump
    damaged = list(chunks)
    damaged[len(damaged) // 2] = bytes(len(damaged[len(damaged) // 2]))  # a record group zeroed
    with pytest.raises(errors.IntegrityError) as in_agent:
        b"".join(rdb_layout.rebuild(iter(damaged), str(tmp_path)))
    with pytest.raises(errors.IntegrityError) as apart:
        b"".join(rebuild_worker.rebuild_apart(iter(damaged), str(tmp_path)))

    assert apart.value.message == in_agent.value.message
    assert workers[0].returncode == 1
    with pytest.raises(errors.IntegrityError, match="chunks end inside the record stream"):
        b"".join(rebuild_worker.rebuild_apart(iter(chunks[:len(chunks) // 2]), str(tmp_path)))


def test_a_worker_killed_mid_way_is_named_not_taken_for_a_file(dump, tmp_path, workers):
    chunks, _ = dump

    def killing():
        for i, c in enumerate(chunks):
            if i == 3:
                os.kill(workers[0].pid, signal.SIGKILL)
                workers[0].wait()
            yield c
    with pytest.raises(rebuild_worker.WorkerFailed, match="SIGKILL"):
        b"".join(rebuild_worker.rebuild_apart(killing(), str(tmp_path)))


def test_a_restore_stopping_early_ends_its_worker(dump, tmp_path, workers):
    chunks, _ = dump
    gen = rebuild_worker.rebuild_apart(iter(chunks), str(tmp_path))
    next(gen)
    gen.close()

    assert workers[0].returncode is not None  # ended and reaped, not left running


def test_a_chunk_stream_cut_inside_a_frame_is_refused():
    framed = bytearray()
    for c in (b"abc", b"", b"defg"):
        framed += len(c).to_bytes(4, "little") + c
    assert list(rebuild_worker.frames(io.BytesIO(bytes(framed)))) == [b"abc", b"", b"defg"]
    for cut in (2, 6, len(framed) - 1):
        with pytest.raises(errors.IntegrityError, match="ends inside"):
            list(rebuild_worker.frames(io.BytesIO(bytes(framed[:cut]))))


@pytest.mark.parametrize("line, kind", [
    ('{"kind": "integrity", "message": "m"}', errors.IntegrityError),
    ('{"kind": "os", "message": "No space left on device", "errno": 28, "filename": "/t"}', OSError),
    ('{"kind": "other", "message": "MemoryError: "}', rebuild_worker.WorkerFailed),
    ('{"kind": "os", "message": "no errno"}', rebuild_worker.WorkerFailed),
])
def test_a_workers_failure_line_becomes_its_exception(line, kind):
    exc = rebuild_worker._parse_failure("a warning first\n" + line)
    assert type(exc) is kind
    if kind is OSError:
        assert exc.errno == errno.ENOSPC and exc.filename == "/t"


@pytest.mark.parametrize("report", ["", "Traceback (most recent call last):", "[1, 2]", '{"kind": "os"}'])
def test_anything_else_on_stderr_is_no_failure_line(report):
    assert rebuild_worker._parse_failure(report) is None


def test_the_worker_loads_neither_grpc_nor_protobuf():
    """Its memory is the rebuild's: the typed errors it raises name their gRPC status without loading gRPC."""
    probe = ("import sys, ragbackup.agent.rebuild_worker; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_ragbackup_package_in_the_agents_working_dir_does_not_run_in_the_worker(dump, tmp_path, monkeypatch):
    """The worker starts in "/": a `ragbackup` directory where the agent runs is never imported."""
    chunks, data = dump
    planted = tmp_path / "cwd" / "ragbackup"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("raise SystemExit('planted package imported')\n")
    (planted.parent / "spool").mkdir()
    monkeypatch.chdir(planted.parent)

    # a relative spool dir is still the agent's: resolved before the worker starts elsewhere
    assert b"".join(rebuild_worker.rebuild_apart(iter(chunks), "spool")) == data


def test_a_worker_saying_more_than_a_pipe_holds_is_heard_not_waited_for(monkeypatch, tmp_path):
    """A worker that writes 1 MiB to stderr before it fails (a long traceback, warnings) still ends
    and is reported: its stderr goes to a file, not a pipe it could fill while the agent reads its stdout."""
    loud = "import sys; sys.stderr.write('w' * (1 << 20) + '\\n'); sys.exit(3)"
    real = subprocess.Popen
    monkeypatch.setattr(rebuild_worker.subprocess, "Popen",
                        lambda argv, **kw: real([sys.executable, "-c", loud], **kw))

    with pytest.raises(rebuild_worker.WorkerFailed, match="exit 3: w+"):
        b"".join(rebuild_worker.rebuild_apart(iter([b"x" * 100]), str(tmp_path)))
