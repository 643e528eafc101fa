"""A component's own directory and sparse files through the real daemons, driven by `ragctl`.

In: a paths component whose root has mode 0750, owner 1234:1234 and an old mtime, and a
256 MiB sparse file holding 4 KiB of data. Out: restores in place and to --target keep the
root's metadata, the old data moves aside as a sibling `NAME.corrupted.TS`, and sparse files
are read little at backup and come back byte-identical with few blocks allocated.
"""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from fixtures.stack import IS_ROOT, MiB, backup, write

OLD_MTIME_NS = 1_600_000_000_123_456_789
SPARSE_SIZE = 256 * MiB
DATA_AT = 100 * MiB  # the sparse file's 4 KiB of data


def _root_dir(path: str) -> None:
    os.makedirs(path)
    write(os.path.join(path, "a.txt"), b"alpha\n" * 100, mode=0o640)
    os.chmod(path, 0o750)
    if IS_ROOT:
        os.chown(path, 1234, 1234)
    os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))


def _meta(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns


def _sparse(path: str) -> str:
    """A 256 MiB file with 4 KiB of random data at 100 MiB; returns its sha256."""
    data = os.urandom(4096)
    with open(path, "wb") as f:
        f.truncate(SPARSE_SIZE)
        f.seek(DATA_AT)
        f.write(data)
    h = hashlib.sha256()
    h.update(bytes(DATA_AT))
    h.update(data)
    h.update(bytes(SPARSE_SIZE - DATA_AT - 4096))
    return h.hexdigest()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


@pytest.mark.skipif(not IS_ROOT, reason="restoring owner 1234:1234 needs root")
def test_root_metadata_restored_in_place_and_to_target(make_stack, tmp_path):
    data = str(tmp_path / "documents")
    _root_dir(data)
    expected = (0o750, 1234, 1234, OLD_MTIME_NS)
    assert _meta(data) == expected
    st = make_stack({"documents": data})
    sid = backup(st)["id"]

    target = tmp_path / "out"
    st.ragctl("restore", sid, "--target", str(target))
    assert _meta(str(target / "documents")) == expected

    os.chmod(data, 0o700)
    os.chown(data, 0, 0)
    write(os.path.join(data, "a.txt"), b"damaged")
    st.ragctl("restore", sid)
    assert _meta(data) == expected
    assert open(os.path.join(data, "a.txt"), "rb").read() == b"alpha\n" * 100
    asides = [n for n in os.listdir(tmp_path) if n.startswith("documents.corrupted.")]
    assert len(asides) == 1, os.listdir(tmp_path)
    assert open(tmp_path / asides[0] / "a.txt", "rb").read() == b"damaged"


def test_sparse_file_backs_up_reading_little_and_restores_sparse(make_stack, tmp_path):
    data = str(tmp_path / "state")
    os.makedirs(data)
    digest = _sparse(os.path.join(data, "disk.img"))
    write(os.path.join(data, "small.txt"), b"x" * 1000)
    st = make_stack({"state": data})
    snap = backup(st, "--full")
    stats = snap["components"]["state"]["stats"]
    print(f"\nsparse capture stats: {stats}")
    assert stats["bytes_total"] >= SPARSE_SIZE
    assert stats["bytes_read"] < MiB, stats  # the holes were not read

    target = tmp_path / "out"
    st.ragctl("restore", snap["id"], "--target", str(target))
    _assert_sparse_copy(str(target / "state" / "disk.img"), digest)

    os.unlink(os.path.join(data, "disk.img"))
    st.ragctl("restore", snap["id"])
    _assert_sparse_copy(os.path.join(data, "disk.img"), digest)


def _assert_sparse_copy(path: str, digest: str) -> None:
    s = os.stat(path)
    print(f"{path}: size {s.st_size}, allocated {s.st_blocks * 512}")
    assert s.st_size == SPARSE_SIZE
    assert s.st_blocks * 512 <= 64 * 1024, s.st_blocks  # 4 KiB of data, not 256 MiB
    assert _sha256(path) == digest
