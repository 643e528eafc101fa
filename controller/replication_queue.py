"""The replication queue: which snapshot each tier still lacks, persistent across restarts and outages.

In: snapshots queued after each backup (and found missing by a replication run), their
outcome per tier. Out: the queue per tier (depth, oldest age, last error) in the catalog's
SQLite file, and the snapshots a tier forgot (replication never copies those again). The
replicate job (jobs/replicate.py) drains it; `ragctl status` and /metrics read it.
"""
from __future__ import annotations

import datetime as _dt
import sqlite3
import threading
from dataclasses import dataclass

from ragbackup import clock, errors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replication_queue (
    tier TEXT NOT NULL, snapshot TEXT NOT NULL, queued TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '', last_attempt TEXT NOT NULL DEFAULT '', PRIMARY KEY (tier, snapshot));
CREATE TABLE IF NOT EXISTS replication_forgotten (
    tier TEXT NOT NULL, snapshot TEXT NOT NULL, forgotten TEXT NOT NULL, PRIMARY KEY (tier, snapshot));
CREATE TABLE IF NOT EXISTS replication_done (
    tier TEXT PRIMARY KEY, snapshot TEXT NOT NULL, finished TEXT NOT NULL);
"""


@dataclass(frozen=True)
class TierQueue:
    """One tier's queue as status and metrics show it."""

    tier: str
    depth: int
    oldest: _dt.datetime | None  # when the oldest waiting snapshot was queued
    last_error: str
    last_done: _dt.datetime | None  # when a replication to this tier last completed

    def oldest_age(self, now: _dt.datetime) -> float:
        return max(0.0, (now - self.oldest).total_seconds()) if self.oldest else 0.0


class ReplicationQueue:
    """The queue tables (their own connection to the catalog's SQLite file, WAL, one writer at a time)."""

    def __init__(self, path: str):
        with errors.os_boundary("state_dir", "open replication queue", path):
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def enqueue(self, tier: str, snapshots: list[str], when: _dt.datetime) -> int:
        """Queue `snapshots` for `tier` unless queued already or forgotten there; returns how many were added."""
        forgotten = self.forgotten(tier)
        rows = [(tier, sid, clock.iso(when)) for sid in snapshots if sid not in forgotten]
        with self._lock:
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO replication_queue (tier, snapshot, queued) VALUES (?, ?, ?)",
                                 rows)
            return self._db.total_changes - before

    def waiting(self, tier: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT snapshot FROM replication_queue WHERE tier = ? ORDER BY snapshot",
                                    (tier,)).fetchall()
        return [r[0] for r in rows]

    def done(self, tier: str, snapshots: list[str], when: _dt.datetime) -> None:
        """`snapshots` are on `tier` now (or were dropped by its policy): off the queue."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM replication_queue WHERE tier = ? AND snapshot = ?",
                                 [(tier, s) for s in snapshots])
            self._db.execute("INSERT OR REPLACE INTO replication_done VALUES (?, ?, ?)",
                             (tier, snapshots[-1] if snapshots else "", clock.iso(when)))
            self._db.execute("COMMIT")

    def failed(self, tier: str, message: str, when: _dt.datetime) -> None:
        """A replication run to `tier` failed: every waiting row counts an attempt and keeps the message."""
        with self._lock:
            self._db.execute("UPDATE replication_queue SET attempts = attempts + 1, last_error = ?, last_attempt = ? "
                             "WHERE tier = ?", (message[:500], clock.iso(when), tier))

    def mark_forgotten(self, tier: str, snapshots: list[str], when: _dt.datetime) -> None:
        """`tier` forgot these: never copy them to it again."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO replication_forgotten VALUES (?, ?, ?)",
                                 [(tier, s, clock.iso(when)) for s in snapshots])
            self._db.executemany("DELETE FROM replication_queue WHERE tier = ? AND snapshot = ?",
                                 [(tier, s) for s in snapshots])
            self._db.execute("COMMIT")

    def forgotten(self, tier: str) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT snapshot FROM replication_forgotten WHERE tier = ?", (tier,)).fetchall()
        return {r[0] for r in rows}

    def state(self, tier: str) -> TierQueue:
        with self._lock:
            depth, oldest = self._db.execute("SELECT count(*), min(queued) FROM replication_queue WHERE tier = ?",
                                             (tier,)).fetchone()
            err = self._db.execute("SELECT last_error FROM replication_queue WHERE tier = ? AND last_error != '' "
                                   "ORDER BY last_attempt DESC LIMIT 1", (tier,)).fetchone()
            done = self._db.execute("SELECT finished FROM replication_done WHERE tier = ?", (tier,)).fetchone()
        return TierQueue(tier, depth, clock.parse_iso(oldest) if oldest else None, err[0] if err else "",
                         clock.parse_iso(done[0]) if done else None)
