"""TreeWriter writes large files past the page cache (or hands them to writeback as it goes) and returns
from finish only once the tree is on disk."""
import errno
import fcntl
import os

import pytest

from ragbackup import direct
from ragbackup.agent import restore
from ragbackup.repo.ids import chunk_id
from ragbackup.v1 import common_pb2

KEY = b"k" * 32
MiB = 1024 * 1024


def _file_entry(path: bytes, chunks: list[bytes]) -> common_pb2.Entry:
    return common_pb2.Entry(path=path, type=common_pb2.ENTRY_TYPE_FILE, mode=0o644, size=sum(map(len, chunks)),
                            mtime_ns=1_700_000_000_000_000_000, chunks=[chunk_id(KEY, c) for c in chunks])


def _restore(root: str, files: dict[bytes, list[bytes]]) -> None:
    writer = restore.TreeWriter(root, KEY)
    for path, chunks in files.items():
        data = iter(chunks)
        writer.write(_file_entry(path, chunks), lambda expected: next(data))
    writer.finish()


def test_large_files_are_written_direct_and_exact(tmp_path, monkeypatch):
    enabled = []
    real = direct.enable
    monkeypatch.setattr(direct, "enable", lambda fd: enabled.append(fd) or real(fd))
    # Odd sizes: chunks across the buffer's end, one larger than the buffer, a last partial block.
    big = [os.urandom(n) for n in (5000, direct.BUFFER - 1000, 3 * direct.BUFFER + 17, 1, 4096, 123_457)]
    medium = [os.urandom(restore.DIRECT_FROM)]  # exactly whole blocks: nothing padded
    _restore(str(tmp_path / "out"), {b"big.bin": big, b"medium.bin": medium, b"small.txt": [b"hello"]})

    assert len(enabled) == 2, "only the files of at least DIRECT_FROM bytes"
    assert (tmp_path / "out" / "big.bin").read_bytes() == b"".join(big)
    assert (tmp_path / "out" / "medium.bin").read_bytes() == medium[0]
    assert (tmp_path / "out" / "small.txt").read_bytes() == b"hello"
    assert os.stat(tmp_path / "out" / "big.bin").st_mtime_ns == 1_700_000_000_000_000_000


def test_a_filesystem_without_o_direct_gets_buffered_writes_and_is_asked_once(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(direct, "enable", lambda fd: asked.append(fd) and False)
    files = {b"a.bin": [os.urandom(2 * restore.DIRECT_FROM + 3)], b"b.bin": [os.urandom(restore.DIRECT_FROM)]}
    _restore(str(tmp_path / "out"), files)
    assert len(asked) == 1
    for name, chunks in files.items():
        assert (tmp_path / "out" / name.decode()).read_bytes() == b"".join(chunks)


def test_buffered_large_files_are_handed_to_writeback_in_contiguous_ranges(tmp_path, monkeypatch):
    monkeypatch.setattr(direct, "enable", lambda fd: False)
    ranges: dict[int, list[tuple[int, int]]] = {}
    real = restore._start_writeback

    def record(fd, offset, length):
        ranges.setdefault(fd, []).append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(restore, "_start_writeback", record)
    big = [os.urandom(MiB) for _ in range(21)] + [b"tail"]
    _restore(str(tmp_path / "out"), {b"big.bin": big, b"small.txt": [b"hello"]})

    assert len(ranges) == 1, "only the file of at least PREALLOCATE_FROM bytes is handed over"
    (spans,) = ranges.values()
    assert len(spans) == 3, spans  # 8 MiB, 8 MiB, then the rest at the end
    pos = 0
    for offset, length in spans:
        assert offset == pos and length > 0
        pos += length
    assert pos == sum(map(len, big))
    assert (tmp_path / "out" / "big.bin").read_bytes() == b"".join(big)


def test_finish_waits_for_the_tree_to_be_on_disk(tmp_path, monkeypatch):
    synced: list[str] = []
    real = restore.make_durable
    monkeypatch.setattr(restore, "make_durable", lambda fd, what: (synced.append(what), real(fd, what)))
    _restore(str(tmp_path / "out"), {b"a.txt": [b"a"]})
    assert synced == [str(tmp_path / "out")]


def test_a_failed_sync_names_what_was_being_written(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.close(fd)
    with pytest.raises(OSError, match="writing /restore/x to disk failed"):
        restore.make_durable(fd, "/restore/x")


def test_a_device_refusing_the_alignment_gets_the_rest_buffered(tmp_path, monkeypatch):
    real_write, refusals = os.write, []

    def write(fd, data):
        if os.O_DIRECT & fcntl.fcntl(fd, fcntl.F_GETFL):
            refusals.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct.os, "write", write)
    asked = []
    real_enable = direct.enable
    monkeypatch.setattr(direct, "enable", lambda fd: asked.append(fd) or real_enable(fd))
    files = {b"a.bin": [os.urandom(3 * direct.BUFFER + 5)], b"b.bin": [os.urandom(2 * restore.DIRECT_FROM)]}
    _restore(str(tmp_path / "out"), files)
    assert refusals == [direct.BUFFER], "one refusal, then page-cache writes"
    assert len(asked) == 1, "the next large file is not tried direct again"
    for name, chunks in files.items():
        assert (tmp_path / "out" / name.decode()).read_bytes() == b"".join(chunks)


def test_sync_dir_syncs_the_directory_it_is_given(tmp_path, monkeypatch):
    seen = []
    real = restore.make_durable
    monkeypatch.setattr(restore, "make_durable", lambda fd, what: (seen.append(what), real(fd, what)))
    restore.sync_dir(str(tmp_path))
    assert seen == [str(tmp_path)]
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        restore.sync_dir(str(tmp_path / "f"))
