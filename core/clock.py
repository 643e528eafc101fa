"""The one source of time for schedules, snapshot ids, retention and alerts.

In: nothing (or a fixed time in tests). Out: timezone-aware UTC datetimes.
Tests pass a FakeClock where production code takes a Clock. Tests of the daemons
(processes) set RAG_BACKUP_CLOCK_FILE to a file holding an ISO time: the system
clock then reads its time from that file on every call (never set in production).
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import Protocol

CLOCK_FILE_ENV = "RAG_BACKUP_CLOCK_FILE"


class Clock(Protocol):
    def now(self) -> _dt.datetime:
        """Current time, timezone-aware UTC."""


class SystemClock:
    def now(self) -> _dt.datetime:
        path = os.environ.get(CLOCK_FILE_ENV)
        if path:
            return _file_time(path)
        return _dt.datetime.now(_dt.timezone.utc)


def _file_time(path: str) -> _dt.datetime:
    """The time written in `path` (tests of the daemons move it); unreadable is a plain error."""
    with open(path) as f:
        when = parse_iso(f.read().strip())
    if when.tzinfo is None:
        raise ValueError(f"{CLOCK_FILE_ENV} {path}: the time must carry a zone, e.g. 2026-11-24T02:00:00Z")
    return when.astimezone(_dt.timezone.utc)


class FakeClock:
    """A settable clock for tests."""

    def __init__(self, start: _dt.datetime):
        self._now = start

    def now(self) -> _dt.datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += _dt.timedelta(seconds=seconds)


SYSTEM = SystemClock()


def stamp(when: _dt.datetime) -> str:
    """`YYYYMMDD_HHMMSS` in UTC, the runbook's timestamp format."""
    return when.astimezone(_dt.timezone.utc).strftime("%Y%m%d_%H%M%S")


def iso(when: _dt.datetime) -> str:
    return when.astimezone(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
