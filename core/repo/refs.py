"""The set of blobs the snapshots reference, kept on disk so memory stays flat.

In: snapshot manifests and their trees, read one component at a time. Out: a
`RefSet`, a SQLite table of blob ids in the state directory (a WITHOUT ROWID
B-tree: ~40 bytes on disk per id, a few MiB of page cache however many ids), which
prune joins against the index cache to count each pack's live bytes.
"""
from __future__ import annotations

import os
import sqlite3
from typing import Iterable, Iterator

from ragbackup.repo.repository import Repository

BATCH = 100_000  # ids inserted per transaction, sorted first (B-tree pages are touched in order)
CACHE_KIB = 16 * 1024  # SQLite page cache of the set (memory bound, not a size limit)


class RefSet:
    """A set of 32-byte blob ids in a SQLite file, emptied when opened."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for suffix in ("", "-journal", "-wal"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")  # a scratch file: rebuilt by every prune
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.execute("CREATE TABLE refs (id BLOB PRIMARY KEY) WITHOUT ROWID")
        self.count = 0

    def add(self, ids: Iterable[bytes]) -> None:
        batch: list[tuple[bytes]] = []
        for blob_id in ids:
            batch.append((blob_id,))
            if len(batch) >= BATCH:
                self._insert(batch)
                batch = []
        self._insert(batch)

    def _insert(self, rows: list[tuple[bytes]]) -> None:
        if rows:
            rows.sort()
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO refs VALUES (?)", rows)
            self._db.execute("COMMIT")

    def has_all(self, ids: list[bytes]) -> bool:
        found = 0
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = "SELECT count(*) FROM refs WHERE id IN (%s)" % ",".join("?" * len(part))
            found += self._db.execute(q, part).fetchone()[0]
        return found == len(set(ids))

    def __contains__(self, blob_id: bytes) -> bool:
        return self._db.execute("SELECT 1 FROM refs WHERE id=?", (blob_id,)).fetchone() is not None

    def ids(self, batch: int = 2000) -> Iterator[list[bytes]]:
        """Every id in the set, in id order, `batch` at a time (memory stays flat)."""
        last = b""
        while True:
            rows = self._db.execute("SELECT id FROM refs WHERE id > ? ORDER BY id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            yield [r[0] for r in rows]
            last = rows[-1][0]

    def total(self) -> int:
        return self._db.execute("SELECT count(*) FROM refs").fetchone()[0]

    def close(self, remove: bool = True) -> None:
        self._db.close()
        if remove:
            for suffix in ("", "-journal", "-wal"):
                if os.path.exists(self.path + suffix):
                    os.unlink(self.path + suffix)


def _chunks(repo: Repository, trees: list[bytes]) -> Iterator[bytes]:
    for entry in repo.read_tree(trees):
        yield from entry.chunks


def add_snapshot(repo: Repository, refs: RefSet, manifest: dict) -> None:
    """Add a snapshot's tree blobs and every chunk its trees name.

    A component whose tree blobs are all in the set already (unchanged since a
    snapshot added before) names no chunk that is not, so its tree is not read.
    """
    for comp in manifest["components"].values():
        trees = [bytes.fromhex(t) for t in comp["tree"]]
        if trees and refs.has_all(trees):
            continue
        refs.add(_chunks(repo, trees))
        refs.add(trees)
