"""The schedule and recovery objectives as plain values: [schedule] and [objectives] of controller.toml.

In: span texts ("6h") from the config loader. Out: frozen Schedule and Objectives that the
pure schedule policy (controller/policy/schedule.py) reads. No I/O.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

_SPAN = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_span(text: str) -> _dt.timedelta | None:
    """`"90s"`, `"15m"`, `"6h"`, `"1d"` -> timedelta; None when the text is not such a span
    (or one longer than a timedelta holds, about 2.7 million years)."""
    m = _SPAN.match(text)
    if m is None:
        return None
    try:
        return _dt.timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])
    except OverflowError:
        return None


def span_text(span: _dt.timedelta) -> str:
    """The shortest exact `Nd`/`Nh`/`Nm`/`Ns` form of a span."""
    secs = int(span.total_seconds())
    for unit in ("d", "h", "m"):
        if secs and secs % _UNIT[unit] == 0:
            return f"{secs // _UNIT[unit]}{unit}"
    return f"{secs}s"


@dataclass(frozen=True)
class Schedule:
    """[schedule]: the cadence the timers keep and how the controller reads a firing."""

    full_every: _dt.timedelta = _dt.timedelta(hours=24)  # rag-backup.timer, daily 02:00 UTC
    incremental_every: _dt.timedelta = _dt.timedelta(hours=6)  # rag-backup-incremental.timer
    # a firing this long before a full is due still takes it (timer jitter, a late previous run)
    tolerance: _dt.timedelta = _dt.timedelta(hours=1)
    # a component backed up this recently is not backed up again (two timers catching up at boot)
    min_gap: _dt.timedelta = _dt.timedelta(minutes=30)
    components: tuple[str, ...] = ()  # () = every configured component
    deploy_debounce: _dt.timedelta = _dt.timedelta(seconds=10)  # deploy backups coalesced in this window


@dataclass(frozen=True)
class Objectives:
    """[objectives]: recovery point and recovery time objectives."""

    rpo: _dt.timedelta = _dt.timedelta(hours=4)
    rto: _dt.timedelta = _dt.timedelta(hours=1)
