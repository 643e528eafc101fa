"""Sparse files: holes found without reading (walk.find_holes), recorded in the tree, and written back
as holes by TreeWriter on both its paths (O_DIRECT and the page cache), zero runs included."""
import os

import pytest

from ragbackup import direct, errors
from ragbackup.agent import restore
from ragbackup.agent.capture.walk import data_regions, find_holes
from ragbackup.repo.ids import chunk_id
from ragbackup.repo.tree import ROOT, Entry, check_entry, decode_lines, encode_lines
from ragbackup.v1 import common_pb2

KEY = b"k" * 32
MiB = 1024 * 1024


def _entry(path: bytes, chunks: list[bytes], holes: list[int], size: int) -> common_pb2.Entry:
    return common_pb2.Entry(path=path, type=common_pb2.ENTRY_TYPE_FILE, mode=0o644, size=size,
                            mtime_ns=1_700_000_000_000_000_000, chunks=[chunk_id(KEY, c) for c in chunks],
                            holes=holes)


def _write(root: str, e: common_pb2.Entry, chunks: list[bytes], use_direct: bool = True) -> str:
    writer = restore.TreeWriter(root, KEY)
    if not use_direct:
        writer._close_direct()
    data = iter(chunks)
    writer.write(e, lambda expected: next(data))
    writer.finish()
    return os.path.join(root, os.fsdecode(e.path))


@pytest.mark.parametrize("size", [8 * MiB, 8 * MiB + 1234])
@pytest.mark.parametrize("use_direct", [True, False])
def test_recorded_holes_are_written_as_holes_and_content_is_identical(tmp_path, size, use_direct):
    # Data at 0 (odd length, so the hole starts mid-block), at 3 MiB, and a hole to the end.
    a, b = os.urandom(5000), os.urandom(100_000)
    holes = [5000, 3 * MiB - 5000, 3 * MiB + 100_000, size - 3 * MiB - 100_000]
    path = _write(str(tmp_path / "out"), _entry(b"f.img", [a, b], holes, size), [a, b], use_direct)
    expected = a + bytes(3 * MiB - 5000) + b + bytes(size - 3 * MiB - 100_000)
    assert open(path, "rb").read() == expected
    assert os.stat(path).st_blocks * 512 < 512 * 1024


@pytest.mark.parametrize("use_direct", [True, False])
def test_zero_chunks_become_holes_even_in_a_preallocated_file(tmp_path, use_direct):
    data, zeros = os.urandom(4096), bytes(4 * MiB)
    chunks = [data, zeros, zeros, data]
    e = _entry(b"z.bin", chunks, [], sum(map(len, chunks)))
    path = _write(str(tmp_path / "out"), e, chunks, use_direct)
    assert open(path, "rb").read() == b"".join(chunks)
    assert os.stat(path).st_blocks * 512 < MiB


def test_pieces_splits_chunks_at_holes_and_keeps_data():
    out = list(restore.pieces(iter([b"ab", b"cdef"]), [0, 3, 5, 2, 11, 4]))
    norm = [p if isinstance(p, int) else bytes(p) for p in out]
    assert norm == [3, b"ab", 2, b"cdef", 4]


def test_find_holes_reports_holes_without_reading_and_regions_give_the_data(tmp_path):
    path = tmp_path / "s.img"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
        f.seek(10 * MiB)
        f.write(b"x" * 4096)
    holes = find_holes(os.fsencode(path), 64 * MiB)
    assert holes == [0, 10 * MiB, 10 * MiB + 4096, 54 * MiB - 4096]
    with open(path, "rb") as f:
        regions = list(data_regions(f, holes))
        assert len(regions) == 1
        buf = bytearray(8192)
        assert regions[0].readinto(memoryview(buf)) == 4096 and bytes(buf[:4096]) == b"x" * 4096


def test_find_holes_of_a_dense_file_is_empty(tmp_path):
    path = tmp_path / "d.bin"
    path.write_bytes(os.urandom(MiB))
    assert find_holes(os.fsencode(path), MiB) == []


def test_tree_lines_round_trip_holes_and_the_root_entry():
    entries = [Entry(path=ROOT, type="dir", mode=0o750, uid=1234, gid=1234, mtime_ns=5),
               Entry(path=b"f", type="file", size=10, chunks=[b"\1" * 32], holes=[2, 4])]
    back = list(decode_lines(encode_lines(entries)))
    assert back[0].path == ROOT and back[0].mode == 0o750
    assert list(back[1].holes) == [2, 4]
    for e in back:
        check_entry(e)


@pytest.mark.parametrize("holes", [[1], [5, 0], [4, 2, 3, 1], [8, 4]])
def test_bad_holes_are_refused(holes):
    with pytest.raises(errors.UnsafePath):
        check_entry(Entry(path=b"f", type="file", size=10, chunks=[], holes=holes))


def test_root_entry_must_be_a_directory():
    with pytest.raises(errors.UnsafePath):
        check_entry(Entry(path=ROOT, type="file"))


def test_direct_skip_keeps_offsets_aligned(tmp_path):
    path = tmp_path / "d.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    w = direct.DirectWriter()
    try:
        if not direct.enable(fd):
            pytest.skip("no O_DIRECT on this filesystem")
        w.start(fd)
        w.add(b"a" * 100)
        w.skip(3 * direct.BLOCK + 7)
        w.add(b"b" * 10)
        w.skip(2 * MiB)
        w.finish(100 + 3 * direct.BLOCK + 7 + 10 + 2 * MiB)
    finally:
        w.close()
        os.close(fd)
    expected = b"a" * 100 + bytes(3 * direct.BLOCK + 7) + b"b" * 10 + bytes(2 * MiB)
    assert path.read_bytes() == expected


def test_tree_without_root_entry_takes_the_replaced_directorys_metadata(tmp_path):
    old = tmp_path / "live"
    old.mkdir()
    os.chmod(old, 0o751)
    os.utime(old, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    writer = restore.TreeWriter(str(tmp_path / "staged"), KEY, like=str(old))
    writer.finish()
    st = os.stat(tmp_path / "staged")
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o751, 1_500_000_000_000_000_000)


def test_root_entry_sets_the_roots_metadata(tmp_path):
    writer = restore.TreeWriter(str(tmp_path / "staged"), KEY, like=None)
    writer.write(common_pb2.Entry(path=ROOT, type=common_pb2.ENTRY_TYPE_DIR, mode=0o750, uid=os.geteuid(),
                                  gid=os.getegid(), mtime_ns=1_400_000_000_000_000_000), lambda expected: b"")
    writer.finish()
    st = os.stat(tmp_path / "staged")
    assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o750, 1_400_000_000_000_000_000)
