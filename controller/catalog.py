"""The controller's catalog: one SQLite row per snapshot, rebuildable from the repository.

In: snapshot manifests (after they are durable in the repository). Out: fast
listings for ragctl and history for the planner; `rebuild` reloads it from the
repository's `snapshots/` objects alone.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import Iterator

from ragbackup import errors

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
    manifest: dict


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

    def add(self, manifest: dict) -> None:
        with self._lock, _guard(self._path, "update catalog"):
            self._db.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?,?,?,?)", (
                manifest["id"], manifest["time"], manifest.get("kind", ""), manifest.get("reason", ""),
                manifest.get("host", ""), json.dumps(sorted(manifest["components"])), json.dumps(manifest)))

    def remove(self, sid: str) -> None:
        with self._lock, _guard(self._path, "update catalog"):
            self._db.execute("DELETE FROM snapshots WHERE id=?", (sid,))

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM snapshots")}

    def clear(self) -> None:
        with self._lock, _guard(self._path, "update catalog"):
            self._db.execute("DELETE FROM snapshots")

    def list(self) -> list[SnapshotRecord]:
        """All snapshots, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id,time,kind,reason,host,components,manifest FROM snapshots").fetchall()
        recs = [SnapshotRecord(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), json.loads(r[6]))
                for r in rows]
        return sorted(recs, key=lambda r: (r.time, sort_key(r.id)))

    def get(self, sid: str) -> SnapshotRecord | None:
        for rec in self.list():
            if rec.id == sid:
                return rec
        return None
