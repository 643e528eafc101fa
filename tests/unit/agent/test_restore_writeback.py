"""TreeWriter hands written data to the disk as it goes and returns from finish only once it is on disk."""
import os

import pytest

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


def test_large_files_are_handed_to_writeback_in_contiguous_ranges(tmp_path, monkeypatch):
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
