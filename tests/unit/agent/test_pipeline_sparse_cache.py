"""A sparse file unchanged since the last capture is taken from the agent's file cache with its holes,
not read again (a Chroma database with one 4 KiB hole was re-read whole on every no-change backup)."""
from __future__ import annotations

import os
import sqlite3

from ragbackup.agent import restore
from ragbackup.agent.cache import CacheReader, CacheWriter
from ragbackup.agent.capture.walk import find_holes
from fixtures.capture_events import cached_capture

MiB = 1024 * 1024


def _sparse(path, size: int = 8 * MiB) -> list[int]:
    """A file of `size` with data at 0 and at 3 MiB, holes elsewhere; its holes as the capture finds them."""
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(os.urandom(100_000))
        f.seek(3 * MiB)
        f.write(os.urandom(200_000))
    holes = find_holes(os.fsencode(path), size)
    assert holes, "this filesystem does not report holes (SEEK_HOLE)"
    return holes


def _rebuilt(entry, stored: dict[bytes, bytes]) -> bytes:
    """The file's bytes from its data chunks and holes, as the restore lays them out (restore.pieces)."""
    parts = restore.pieces(iter(stored[c] for c in entry.chunks), list(entry.holes))
    return b"".join(bytes(p) for p in parts)  # an int is a hole of that length: bytes(n) is n zeros


def test_an_unchanged_sparse_file_is_reused_with_its_holes(tmp_path):
    root, cache_dir = tmp_path / "root", str(tmp_path / "cache")
    root.mkdir()
    holes = _sparse(root / "chroma.sqlite3")
    content = (root / "chroma.sqlite3").read_bytes()

    first, stored = cached_capture(str(root), cache_dir, "one")
    second, sent = cached_capture(str(root), cache_dir, "two", parent="one")

    e1, e2 = first[b"chroma.sqlite3"], second[b"chroma.sqlite3"]
    assert list(e1.holes) == holes and _rebuilt(e1, stored) == content
    assert not sent, "the unchanged sparse file was read and sent again"
    assert list(e2.holes) == holes and list(e2.chunks) == list(e1.chunks) and e2.size == len(content)

    # the second capture's cache keeps the holes too: a third capture reuses them again
    third, sent = cached_capture(str(root), cache_dir, "three", parent="two")
    assert not sent and list(third[b"chroma.sqlite3"].holes) == holes


def test_a_filled_hole_is_read_again(tmp_path):
    root, cache_dir = tmp_path / "root", str(tmp_path / "cache")
    root.mkdir()
    path = root / "f.img"
    _sparse(path)
    cached_capture(str(root), cache_dir, "one")
    with open(path, "r+b") as f:  # fill the hole at 1 MiB: mtime and ctime change
        f.seek(MiB)
        f.write(os.urandom(64 * 1024))
    content = path.read_bytes()

    again, sent = cached_capture(str(root), cache_dir, "two", parent="one")
    e = again[b"f.img"]
    assert list(e.holes) == find_holes(os.fsencode(str(path)), len(content))
    assert _rebuilt(e, sent) == content  # read again whole: every chunk offered (and wanted) anew


def test_a_cache_row_whose_holes_are_not_whole_pairs_is_not_trusted(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    st = f.stat()
    writer = CacheWriter(str(tmp_path / "cache"), "c", "one")
    writer.record(b"f", st, b"a" * 32, "", [0, 4096])
    writer.publish()
    path = tmp_path / "cache" / "c" / "one.sqlite"
    db = sqlite3.connect(path)
    assert CacheReader(str(path)).lookup(b"f", st).holes == (0, 4096)
    db.execute("UPDATE files SET holes=? WHERE path=?", (b"\0" * 24, b"f"))
    db.commit()
    db.close()
    assert CacheReader(str(path)).lookup(b"f", st) is None
