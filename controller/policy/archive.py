"""Which snapshots become archive sets: the first snapshot of each period (month, week or day).

In: the snapshots (id, time) a source repository holds, the ids already archived, the period and
time zone. Out: the ids to archive now, oldest first. No I/O; docs/ARCHIVE.md explains the choice
(the first of a period is archived as soon as it exists, so no period is missed while local
retention still holds it).
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Iterable


def period_of(when: dt.datetime, every: str, tz: str = "UTC") -> str:
    """The period a time falls in, as text: "2026-11", "2026-W48" or "2026-11-24"."""
    local = when.astimezone(zoneinfo.ZoneInfo(tz))
    if every == "month":
        return local.strftime("%Y-%m")
    if every == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m-%d")


def sets_due(snapshots: Iterable[tuple[str, dt.datetime]], archived: Iterable[str], every: str,
             tz: str = "UTC") -> list[str]:
    """The first snapshot of every period that has no archived snapshot yet."""
    done = set(archived)
    firsts: dict[str, tuple[dt.datetime, str]] = {}
    covered: set[str] = set()
    for sid, when in snapshots:
        period = period_of(when, every, tz)
        if sid in done:
            covered.add(period)
        if period not in firsts or (when, sid) < firsts[period]:
            firsts[period] = (when, sid)
    due = [(when, sid) for period, (when, sid) in firsts.items() if period not in covered]
    return [sid for _, sid in sorted(due)]
