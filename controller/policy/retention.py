"""Retention policy (pure): which snapshots to keep, and the rule(s) that kept each.

In: snapshots (id, time, kind, components, tags), a `Policy` and "now". Out: one
`Verdict` per snapshot, newest first; `forget` runs next and deletes the rest.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Callable, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ragbackup import errors

DRILL_PASSED = "drill_passed"  # tag of a snapshot a restore drill has proven
UNLIMITED = -1  # keep_<bucket> = -1: every bucket
_DURATION = re.compile(r"(\d+)([smhdwy])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> _dt.timedelta:
    """`30d`, `12h`, `1w3d`, `90m` (minutes), `1y` (365 days) -> timedelta; UsageError otherwise."""
    text = text.strip()
    if not text or _DURATION.sub("", text):
        raise errors.UsageError(f"duration {text!r}: expected a number and a unit (s, m, h, d, w, y), e.g. 30d or 1w3d")
    return _dt.timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text)))


def format_duration(d: _dt.timedelta) -> str:
    secs = int(d.total_seconds())
    for unit in ("y", "w", "d", "h", "m"):
        if secs and secs % _UNITS[unit] == 0:
            return f"{secs // _UNITS[unit]}{unit}"
    return f"{secs}s"


@dataclass(frozen=True)
class Policy:
    """What to keep. Counts of 0 keep nothing by that rule; -1 keeps every bucket.

    `timezone` (an IANA name) sets where hour/day/week/month/year buckets begin.
    """

    keep_within: _dt.timedelta | None = None
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    rpo: _dt.timedelta | None = None
    timezone: str = "UTC"

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise errors.ConfigError(f"retention timezone {self.timezone!r} is not a known IANA time zone") from None


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: _dt.datetime  # timezone-aware
    kind: str = "full"
    components: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    id: str
    time: _dt.datetime
    keep: bool
    reasons: tuple[str, ...]  # the rules that kept it; for a forgotten one, why it went

    def as_dict(self) -> dict:
        return {"id": self.id, "time": self.time.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                "keep": self.keep, "reasons": list(self.reasons)}


def _hour(t: _dt.datetime) -> tuple:
    # The UTC offset is part of the key: the repeated hour of a DST change is a second hour.
    return (t.year, t.month, t.day, t.hour, t.utcoffset())


_BUCKETS: list[tuple[str, str, Callable[[_dt.datetime], tuple]]] = [
    ("keep_hourly", "hourly", _hour),
    ("keep_daily", "daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", "weekly", lambda t: tuple(t.isocalendar())[:2]),
    ("keep_monthly", "monthly", lambda t: (t.year, t.month)),
    ("keep_yearly", "yearly", lambda t: (t.year,)),
]


def _bucket_label(name: str, t: _dt.datetime) -> str:
    if name == "hourly":
        return t.strftime("%Y-%m-%d %H:00%z")
    if name == "weekly":
        y, w, _ = t.isocalendar()
        return f"{y}-W{w:02d}"
    return t.strftime({"daily": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}[name])


def _bucket_rule(snaps: list[Snapshot], count: int, rule: tuple[str, Callable], zone: ZoneInfo,
                 reasons: dict[str, list[str]]) -> None:
    """Keep the newest snapshot of each of the `count` newest buckets (snaps newest first)."""
    name, key = rule
    last, kept = None, 0
    for s in snaps:
        if count != UNLIMITED and kept >= count:
            return
        local = s.time.astimezone(zone)
        k = key(local)
        if k != last:
            last, kept = k, kept + 1
            reasons[s.id].append(f"{name} {_bucket_label(name, local)}")


def _invariants(snaps: list[Snapshot], policy: Policy, now: _dt.datetime, reasons: dict[str, list[str]]) -> None:
    """Rules no policy may break: newest of each component, newest drill-passed, younger than the RPO."""
    seen: set[str] = set()
    for s in snaps:
        for c in sorted(set(s.components) - seen):
            reasons[s.id].append(f"newest of component {c}")
        seen.update(s.components)
    drilled = next((s for s in snaps if DRILL_PASSED in s.tags), None)
    if drilled is not None:
        reasons[drilled.id].append("newest that passed a drill")
    if policy.rpo is not None:
        for s in snaps:
            if s.time > now - policy.rpo:
                reasons[s.id].append(f"younger than the RPO ({format_duration(policy.rpo)})")


def _policy_rules(snaps: list[Snapshot], policy: Policy, now: _dt.datetime, reasons: dict[str, list[str]]) -> None:
    if policy.keep_within is not None:
        for s in snaps:
            if s.time >= now - policy.keep_within:
                reasons[s.id].append(f"within {format_duration(policy.keep_within)}")
    for n, s in enumerate(snaps):
        if policy.keep_last == UNLIMITED or n < policy.keep_last:
            reasons[s.id].append(f"last {n + 1}")
    zone = policy.zone()
    for attr, name, key in _BUCKETS:
        count = getattr(policy, attr)
        if count:
            _bucket_rule(snaps, count, (name, key), zone, reasons)


def _newest_first(snapshots: Iterable[Snapshot]) -> list[Snapshot]:
    return sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)


def apply_retention(snapshots: Iterable[Snapshot], policy: Policy, now: _dt.datetime) -> list[Verdict]:
    """Keep what a policy rule or an invariant names; forget the rest. Newest first."""
    snaps = _newest_first(snapshots)
    reasons: dict[str, list[str]] = {s.id: [] for s in snaps}
    _policy_rules(snaps, policy, now, reasons)
    _invariants(snaps, policy, now, reasons)
    return [Verdict(s.id, s.time, bool(reasons[s.id]), tuple(reasons[s.id]) or ("no rule keeps it",))
            for s in snaps]


def forget_ids(snapshots: Iterable[Snapshot], ids: Iterable[str], policy: Policy, now: _dt.datetime) -> list[Verdict]:
    """Forget exactly `ids`, except what an invariant protects; everything else is kept as it is.

    NotFound names an id that is not a snapshot.
    """
    snaps = _newest_first(snapshots)
    wanted = set(ids)
    unknown = sorted(wanted - {s.id for s in snaps})
    if unknown:
        raise errors.NotFound(f"no snapshot {', '.join(unknown)}")
    reasons: dict[str, list[str]] = {s.id: [] for s in snaps}
    _invariants(snaps, policy, now, reasons)
    out = []
    for s in snaps:
        if s.id not in wanted:
            out.append(Verdict(s.id, s.time, True, ("not named",)))
        elif reasons[s.id]:
            out.append(Verdict(s.id, s.time, True, tuple(reasons[s.id])))
        else:
            out.append(Verdict(s.id, s.time, False, ("named for forgetting",)))
    return out
