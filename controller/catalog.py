"""The controller's catalog: one SQLite row per snapshot, rebuildable from the repository.

In: snapshot manifests (after they are durable in the repository). Out: fast
listings for ragctl and history for the planner; `rebuild` reloads it from the
repository's `snapshots/` objects alone. A snapshot the catalog knew whose object
is gone is kept as *vanished* (verify fails naming it, `snapshots` warns) until a
rebuild forgets it; a deliberate deletion calls `remove` before deleting the object.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import Iterator

from ragbackup import clock, errors
from ragbackup.repo.repository import Repository
from ragbackup.repo.manifest import Manifest
from ragbackup.repo.snapshots import sort_key

log = logging.getLogger("ragbackup.controller")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY, time TEXT NOT NULL, kind TEXT, reason TEXT, host TEXT,
    components TEXT NOT NULL, manifest TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vanished (id TEXT PRIMARY KEY, time TEXT NOT NULL, noticed TEXT NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class SnapshotRecord:
    """What the planner and listings need of a snapshot."""

    id: str
    time: str
    kind: str
    reason: str
    host: str
    components: tuple[str, ...]
    manifest: Manifest


@contextlib.contextmanager
def _guard(path: str, op: str) -> Iterator[None]:
    """OSError and SQLite's errors become StateError (StateNoSpace when full) naming the catalog file."""
    try:
        yield
    except OSError as exc:
        raise errors.from_os_error(exc, "state_dir", op, path) from None
    except sqlite3.Error as exc:
        cls = errors.StateNoSpace if "full" in str(exc) else errors.StateError
        raise cls(f"state_dir: cannot {op} {path}: {exc}") from None


class Catalog:
    def __init__(self, path: str):
        self._path = path
        with _guard(path, "open catalog"):
            os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, m: Manifest) -> None:
        with self._lock, _guard(self._path, "update catalog"):
            self._db.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?,?,?,?)", (
                m.id, m.time, m.kind, m.reason, m.host, json.dumps(sorted(m.components)), json.dumps(m.to_dict())))

    def remove(self, sid: str) -> None:
        with self._lock, _guard(self._path, "update catalog"):
            self._db.execute("DELETE FROM snapshots WHERE id=?", (sid,))
            self._db.execute("DELETE FROM vanished WHERE id=?", (sid,))

    def mark_vanished(self, sid: str) -> None:
        """Move a snapshot whose object is gone from the listing to the vanished table."""
        with self._lock, _guard(self._path, "update catalog"):
            row = self._db.execute("SELECT time FROM snapshots WHERE id=?", (sid,)).fetchone()
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR IGNORE INTO vanished VALUES (?,?,?)",
                             (sid, row[0] if row else "", clock.iso(clock.SYSTEM.now())))
            self._db.execute("DELETE FROM snapshots WHERE id=?", (sid,))
            self._db.execute("COMMIT")
        log.warning("snapshot %s vanished: its object snapshots/%s is gone from the repository", sid, sid)

    def vanished(self) -> dict[str, str]:
        """Snapshots the catalog knew whose object is gone: id -> snapshot time."""
        with self._lock:
            return dict(self._db.execute("SELECT id, time FROM vanished").fetchall())

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM snapshots")}

    def clear(self) -> None:
        with self._lock, _guard(self._path, "update catalog"):
            self._db.executescript("DELETE FROM snapshots; DELETE FROM vanished;")

    def list(self) -> list[SnapshotRecord]:
        """All snapshots, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id,time,kind,reason,host,components,manifest FROM snapshots").fetchall()
        recs = [SnapshotRecord(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])),
                               Manifest.from_dict(json.loads(r[6])))
                for r in rows]
        return sorted(recs, key=lambda r: (r.time, sort_key(r.id)))

    def get(self, sid: str) -> SnapshotRecord | None:
        for rec in self.list():
            if rec.id == sid:
                return rec
        return None


def load_into_catalog(repo: Repository, catalog: Catalog, sid: str) -> bool:
    """Add one stored snapshot; a damaged manifest is skipped with a warning (verify names it)."""
    try:
        catalog.add(repo.load_manifest(sid))
    except errors.IntegrityError as exc:
        log.warning("%s: left out of the catalog", exc.message)
        return False
    except errors.NotFound:
        return False
    return True


def repository_warnings(repo: Repository, catalog: Catalog) -> list[str]:
    """What listings should warn about: vanished snapshots, damaged index objects, unlisted snapshots."""
    out = [f"snapshot {sid} ({time or 'time unknown'}) vanished: its object snapshots/{sid} is gone "
           "from the repository (`ragctl verify` fails until `ragctl catalog rebuild` forgets it)"
           for sid, time in sorted(catalog.vanished().items())]
    out += [f"{why}: skipped, its packs are described from their own headers (run `ragctl repair index`)"
            for _, why in sorted(repo.index.damaged_index_files().items())]
    unlisted = sorted(set(repo.snapshot_ids()) - catalog.ids())
    out += [f"snapshot {sid} is not listed: its manifest cannot be read (see `ragctl verify`)" for sid in unlisted]
    return out
