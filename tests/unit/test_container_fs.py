"""In: handcrafted tar streams, benign and malicious (absolute, .., symlink/hardlink escapes, devices).
Out: what safe_extract/write_tar put under dest, and UnsafePath refusals that leave nothing outside dest.
"""
from __future__ import annotations

import io
import os
import stat
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from ragbackup import errors
from ragbackup.agent.services.container_fs import (
    _ChunkReader,
    member_relpath,
    safe_extract,
    write_tar,
)


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    """A tar member plus its data; attrs set TarInfo fields (mode, uid, linkname, ...)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_700_000_000
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    """A tar stream holding the entries in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buf.seek(0)
    return buf


def tree(root: Path) -> list[str]:
    """Every path under root, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(dest, outside): dest is where we extract; outside sits next to it and must stay untouched."""
    dest, outside = tmp_path / "sandbox" / "dest", tmp_path / "sandbox" / "outside"
    outside.mkdir(parents=True)
    (outside / "victim").write_text("original")
    return dest, outside


def assert_outside_untouched(dest: Path, outside: Path) -> None:
    assert tree(outside) == ["victim"]
    assert (outside / "victim").read_text() == "original"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dest", "outside"]


# ------------------------------------------------------------------ benign archives


def test_docker_style_archive_is_extracted_with_metadata_and_top_dir_stripped(tmp_path: Path) -> None:
    archive = make_tar(
        entry("data/", tarfile.DIRTYPE, mode=0o750, uid=999, gid=999),
        entry("data/dump.rdb", data=b"REDIS0011", mode=0o640, uid=999, gid=999, mtime=1_600_000_000),
        entry("data/sub/", tarfile.DIRTYPE, mode=0o700, mtime=1_650_000_000),
        entry("data/sub/seg.bin", data=b"x" * 5000),
        entry("data/current", tarfile.SYMTYPE, linkname="sub/seg.bin"),
        entry("data/sub/up", tarfile.SYMTYPE, linkname="../dump.rdb"),
        entry("data/hard", tarfile.LNKTYPE, linkname="data/dump.rdb"),
    )
    dest = tmp_path / "out"
    stats = safe_extract(archive, dest, strip_components=1)

    assert tree(dest) == ["current", "dump.rdb", "hard", "sub", "sub/seg.bin", "sub/up"]
    assert (stats.entries, stats.bytes) == (6, 9 + 5000)
    assert (dest / "dump.rdb").read_bytes() == b"REDIS0011"
    st = os.stat(dest / "dump.rdb")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime, st.st_nlink) == (0o640, 1_600_000_000, 2)
    assert os.readlink(dest / "current") == "sub/seg.bin"
    assert (dest / "sub" / "up").read_bytes() == b"REDIS0011"
    assert os.stat(dest / "sub").st_mtime == 1_650_000_000  # set after its contents were written
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o750  # the stripped top dir's metadata goes to dest
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid, os.stat(dest).st_uid) == (999, 999, 999)


def test_setid_bits_are_dropped(tmp_path: Path) -> None:
    safe_extract(make_tar(entry("tool", data=b"#!/bin/sh\n", mode=0o6755)), tmp_path / "d")
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "tool").st_mode) == 0o755


def test_later_member_replaces_file_or_symlink_without_following_it(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    dest.mkdir()
    os.symlink(outside / "victim", dest / "f")  # a pre-existing link in dest must not be written through
    safe_extract(make_tar(entry("f", data=b"one"), entry("f", data=b"two")), dest)
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"two"
    assert_outside_untouched(dest, outside)


def test_write_tar_roundtrip_preserves_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f.txt").write_text("hello")
    os.chmod(src / "a" / "b" / "f.txt", 0o600)
    os.utime(src / "a" / "b" / "f.txt", ns=(1_600_000_000_123_456_789,) * 2)
    os.symlink("b/f.txt", src / "a" / "link")
    os.link(src / "a" / "b" / "f.txt", src / "hard")
    spool = io.BytesIO()

    written = write_tar(src, "data", spool)
    spool.seek(0)
    with tarfile.open(fileobj=io.BytesIO(spool.getvalue())) as tar:
        names = tar.getnames()
    extracted = safe_extract(spool, tmp_path / "dst", strip_components=1)

    assert names[0] == "data" and all(n.startswith("data/") for n in names[1:])
    assert (written.entries, extracted.entries) == (5, 5)
    assert tree(tmp_path / "dst") == tree(src)
    f = tmp_path / "dst" / "a" / "b" / "f.txt"
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert abs(os.stat(f).st_mtime_ns - 1_600_000_000_123_456_789) < 1000  # PAX keeps sub-second mtimes
    assert os.readlink(tmp_path / "dst" / "a" / "link") == "b/f.txt"
    assert os.stat(tmp_path / "dst" / "hard").st_ino == os.stat(f).st_ino


def test_large_member_streams_in_bounded_memory(tmp_path: Path) -> None:
    payload = os.urandom(1 << 20) * 24  # 24 MiB, delivered in 2 MiB chunks like get_archive
    raw = make_tar(entry("data/", tarfile.DIRTYPE), entry("data/big", data=payload)).getvalue()
    del payload
    chunks = iter([raw[i:i + (2 << 20)] for i in range(0, len(raw), 2 << 20)])
    tracemalloc.start()
    try:
        with io.BufferedReader(_ChunkReader(chunks), 1 << 20) as stream:
            safe_extract(stream, tmp_path / "d", strip_components=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(tmp_path / "d" / "big") == 24 << 20
    assert peak < 8 << 20, f"peak {peak} bytes"


# ------------------------------------------------------------------ malicious archives


@pytest.mark.parametrize("name, problem", [
    ("/etc/evil", "absolute"),
    ("../evil", "'..'"),
    ("a/../../evil", "'..'"),
    ("data/../../evil", "'..'"),
])
def test_member_relpath_refuses(name: str, problem: str) -> None:
    with pytest.raises(errors.UnsafePath, match=problem):
        member_relpath(name, 1)


@pytest.mark.parametrize("name, strip, rel", [
    ("data", 1, ""), ("data/", 1, ""), ("data/x/y", 1, "x/y"), ("./a//b/./c", 0, "a/b/c"), ("f", 0, "f"),
])
def test_member_relpath_normalizes(name: str, strip: int, rel: str) -> None:
    assert member_relpath(name, strip) == rel


MALICIOUS = {
    "absolute member": ([entry("ok", data=b"1"), entry("/tmp/rag-backup-test-abs-evil", data=b"x")],
                        "absolute"),
    "dot-dot member": ([entry("../outside/evil", data=b"x")], "'..'"),
    "symlink to /etc, then a file through it": (
        [entry("etc", tarfile.SYMTYPE, linkname="/etc"), entry("etc/rag-backup-evil", data=b"x")], "absolute"),
    "relative symlink out, then a file through it": (
        [entry("out", tarfile.SYMTYPE, linkname="../outside"), entry("out/victim", data=b"pwned")], "outside"),
    "file through an in-bounds symlink": (
        [entry("sub/", tarfile.DIRTYPE), entry("l", tarfile.SYMTYPE, linkname="sub"),
         entry("l/f", data=b"x")], "through the symlink"),
    "hardlink to an absolute path": ([entry("h", tarfile.LNKTYPE, linkname="/etc/passwd")], "absolute"),
    "hardlink out with ..": ([entry("h", tarfile.LNKTYPE, linkname="../outside/victim")], "'..'"),
    "hardlink to a symlink": (
        [entry("s", tarfile.SYMTYPE, linkname="x"), entry("h", tarfile.LNKTYPE, linkname="s")], "hard link"),
    "hardlink to a file not extracted": ([entry("h", tarfile.LNKTYPE, linkname="missing")], "hard link"),
    "character device": ([entry("null", tarfile.CHRTYPE, devmajor=1, devminor=3)], "device node"),
    "block device": ([entry("sda", tarfile.BLKTYPE, devmajor=8, devminor=0)], "device node"),
    "fifo": ([entry("pipe", tarfile.FIFOTYPE)], "FIFO"),
    "symlink chain escaping through another link": (
        [entry("deep/dir/", tarfile.DIRTYPE), entry("deep/dir/l", tarfile.SYMTYPE, linkname="../.."),
         entry("x", tarfile.SYMTYPE, linkname="deep/dir/l/../outside")], "resolves outside"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archive_is_refused_and_nothing_leaves_dest(sandbox: tuple[Path, Path], case: str) -> None:
    dest, outside = sandbox
    members, problem = MALICIOUS[case]
    with pytest.raises(errors.UnsafePath, match=problem):
        safe_extract(make_tar(*members), dest)
    assert_outside_untouched(dest, outside)
    assert not Path("/tmp/rag-backup-test-abs-evil").exists()
    assert not Path("/etc/rag-backup-evil").exists()
    assert all(not p.is_symlink() or os.path.realpath(p).startswith(str(dest.resolve()))
               for p in dest.rglob("*"))


def test_non_directory_cannot_stand_for_the_target(tmp_path: Path) -> None:
    with pytest.raises(errors.UnsafePath, match="only a directory"):
        safe_extract(make_tar(entry("data", data=b"x")), tmp_path / "d", strip_components=1)
