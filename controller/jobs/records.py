"""Job records: one SQLite row per job the controller ran, kept beside the snapshot catalog.

In: a JobRecord when a job starts and again when it ends (the runner writes both).
Out: listings for `ragctl jobs` / `ragctl job ID`; at startup, rows a dead controller
left `running` become `interrupted`. Rebuilding the snapshot catalog keeps this table.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
from dataclasses import dataclass

RUNNING = "running"
SUCCESS = "success"
FAILURE = "failure"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"
TRIGGERS = ("manual", "timer", "path", "api")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, trigger TEXT NOT NULL, caller TEXT NOT NULL,
    components TEXT NOT NULL, snapshot TEXT NOT NULL, started TEXT NOT NULL, finished TEXT NOT NULL,
    result TEXT NOT NULL, error_class TEXT NOT NULL, error_message TEXT NOT NULL, bytes_read INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL, bytes_added INTEGER NOT NULL, files INTEGER NOT NULL, summary TEXT NOT NULL,
    repository TEXT NOT NULL, bytes_total INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_kind ON jobs (kind, id);
"""
_COLUMNS = ("kind", "trigger", "caller", "components", "snapshot", "started", "finished", "result", "error_class",
            "error_message", "bytes_read", "bytes_sent", "bytes_added", "files", "summary", "repository",
            "bytes_total")


@dataclass(frozen=True)
class JobRecord:
    """What is known of one job. Times are ISO-8601 UTC (`finished` is "" while it runs)."""

    id: int
    kind: str
    trigger: str
    caller: str
    components: tuple[str, ...]
    snapshot: str
    started: str
    finished: str = ""
    result: str = RUNNING
    error_class: str = ""
    error_message: str = ""
    bytes_read: int = 0
    bytes_sent: int = 0
    bytes_added: int = 0
    files: int = 0
    summary: str = ""
    repository: str = "primary"
    # The data the job's snapshot holds (its files' sizes, every component): what a backup's
    # size is compared by. bytes_read is only what was read, near 0 when little changed.
    bytes_total: int = 0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["components"] = list(self.components)
        return d


def _row(rec: JobRecord) -> tuple:
    d = rec.as_dict()
    d["components"] = json.dumps(d["components"])
    return tuple(d[c] for c in _COLUMNS)


def _record(row: tuple) -> JobRecord:
    values = dict(zip(("id",) + _COLUMNS, row))
    values["components"] = tuple(json.loads(values["components"]))
    return JobRecord(**values)


class JobRecords:
    """The `jobs` table (its own connection to the catalog's SQLite file)."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "bytes_total" not in columns:  # a catalog written before sizes were recorded: 0, "unknown"
            self._db.execute("ALTER TABLE jobs ADD COLUMN bytes_total INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def start(self, rec: JobRecord) -> JobRecord:
        """Insert a new running job; returns it with its id."""
        with self._lock:
            cur = self._db.execute(f"INSERT INTO jobs ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
                                   _row(rec))
            return dataclasses.replace(rec, id=int(cur.lastrowid))

    def finish(self, rec: JobRecord) -> None:
        """Write a job's final state (every field but the id)."""
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {','.join(c + '=?' for c in _COLUMNS)} WHERE id=?",
                             (*_row(rec), rec.id))

    def mark_interrupted(self, finished: str) -> list[int]:
        """Jobs left `running` by a controller that died: they are `interrupted` now. Returns their ids."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE result=?", (RUNNING,))]
            self._db.execute("UPDATE jobs SET result=?, finished=?, error_class=?, error_message=? WHERE result=?",
                             (INTERRUPTED, finished, "Interrupted", "the controller stopped while the job ran",
                              RUNNING))
        return ids

    def get(self, job_id: int) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT id,{','.join(_COLUMNS)} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _record(row) if row else None

    def list(self, kind: str = "", limit: int = 0) -> list[JobRecord]:
        """Newest last; `limit` keeps the newest N (0: all)."""
        where, args = ("WHERE kind=?", [kind]) if kind else ("", [])
        sql = f"SELECT id,{','.join(_COLUMNS)} FROM jobs {where} ORDER BY id DESC"
        if limit > 0:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_record(r) for r in reversed(rows)]
