"""The controller's catalog: one SQLite row per snapshot, rebuildable from the repository.

In: snapshot manifests (after they are durable in the repository). Out: fast
listings for ragctl and history for the planner; `rebuild` reloads it from the
repository's `snapshots/` objects alone.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass

from ragbackup.repo.manifest import Manifest
from ragbackup.repo.snapshots import sort_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY, time TEXT NOT NULL, kind TEXT, reason TEXT, host TEXT,
    components TEXT NOT NULL, manifest TEXT NOT NULL) WITHOUT ROWID;
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


class Catalog:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, m: Manifest) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?,?,?,?)", (
                m.id, m.time, m.kind, m.reason, m.host, json.dumps(sorted(m.components)), json.dumps(m.to_dict())))

    def remove(self, sid: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM snapshots WHERE id=?", (sid,))

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM snapshots")}

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM snapshots")

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
