"""The one source of time for schedules, snapshot ids, retention and alerts.

In: nothing (or a fixed time in tests). Out: timezone-aware UTC datetimes.
Tests pass a FakeClock where production code takes a Clock.
"""
from __future__ import annotations

import datetime as _dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> _dt.datetime:
        """Current time, timezone-aware UTC."""


class SystemClock:
    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.timezone.utc)


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
