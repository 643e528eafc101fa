"""Retention policy: table-driven cases checked against golden files (UPDATE_GOLDEN=1 rewrites them)."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from ragbackup import errors
from ragbackup.controller.policy.retention import (DRILL_PASSED, Policy, Snapshot, apply_retention, forget_ids,
                                                   parse_duration)

GOLDEN = Path(__file__).parent / "golden"
UTC = dt.timezone.utc


def _snap(t: dt.datetime, comps=("documents",), tags=()) -> Snapshot:
    return Snapshot("rag-system-backup-" + t.astimezone(UTC).strftime("%Y%m%d_%H%M%S"), t, "full", tuple(comps),
                    tuple(tags))


def _series(start: dt.datetime, step: dt.timedelta, n: int, **kw) -> list[Snapshot]:
    return [_snap(start + i * step, **kw) for i in range(n)]


def _render(verdicts) -> dict:
    return {"kept": {v.id: list(v.reasons) for v in verdicts if v.keep},
            "forgotten": [v.id for v in verdicts if not v.keep]}


NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SIXTY_DAYS = _series(NOW - dt.timedelta(days=59, hours=10), dt.timedelta(days=1), 60)
# every 3 days from 2023-01-01 through 2026-11-29: spans four calendar years
YEARS = _series(dt.datetime(2023, 1, 1, 2, tzinfo=UTC), dt.timedelta(days=3), 477)
NY = "America/New_York"
# every 30 minutes across the autumn change (2026-11-01 02:00 EDT -> 01:00 EST) and the spring one
FALL_BACK = _series(dt.datetime(2026, 11, 1, 4, 0, tzinfo=UTC), dt.timedelta(minutes=30), 10)
SPRING = _series(dt.datetime(2026, 3, 8, 5, 0, tzinfo=UTC), dt.timedelta(minutes=30), 8)
AROUND_MIDNIGHT = [_snap(dt.datetime(2026, 11, 29, 23, 30, tzinfo=UTC)),
                   _snap(dt.datetime(2026, 11, 30, 0, 30, tzinfo=UTC)),
                   _snap(dt.datetime(2026, 11, 30, 14, 30, tzinfo=UTC))]
MIXED = [_snap(dt.datetime(2026, 9, 1, 2, tzinfo=UTC), comps=("config",)),
         _snap(dt.datetime(2026, 10, 1, 2, tzinfo=UTC), comps=("documents", "redis"), tags=(DRILL_PASSED,)),
         *_series(dt.datetime(2026, 11, 1, 2, tzinfo=UTC), dt.timedelta(days=1), 30, comps=("documents", "redis"))]

CASES = {
    "within_30d": (SIXTY_DAYS, Policy(keep_within=dt.timedelta(days=30)), NOW),
    "last_and_daily": (SIXTY_DAYS, Policy(keep_last=3, keep_daily=7, keep_weekly=3), NOW),
    "years_gfs": (YEARS, Policy(keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=-1), NOW),
    "dst_fall_back_hourly": (FALL_BACK, Policy(keep_hourly=-1, timezone=NY), NOW),
    "dst_fall_back_daily": (FALL_BACK, Policy(keep_daily=-1, timezone=NY), NOW),
    "dst_spring_hourly": (SPRING, Policy(keep_hourly=-1, timezone=NY), NOW),
    "tz_daily_utc": (AROUND_MIDNIGHT, Policy(keep_daily=-1), NOW),
    "tz_daily_tokyo": (AROUND_MIDNIGHT, Policy(keep_daily=-1, timezone="Asia/Tokyo"), NOW),
    "tz_daily_los_angeles": (AROUND_MIDNIGHT, Policy(keep_daily=-1, timezone="America/Los_Angeles"), NOW),
    "invariants_only": (MIXED, Policy(rpo=dt.timedelta(hours=60)), dt.datetime(2026, 12, 1, 0, tzinfo=UTC)),
    "empty": ([], Policy(keep_last=5), NOW),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_policy_matches_golden(name):
    snaps, policy, now = CASES[name]
    got = _render(apply_retention(snaps, policy, now))
    path = GOLDEN / f"retention_{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())


def test_within_30d_keeps_exactly_the_last_30_days():
    verdicts = apply_retention(SIXTY_DAYS, Policy(keep_within=dt.timedelta(days=30)), NOW)
    kept = [v.id for v in verdicts if v.keep]
    assert kept == [s.id for s in reversed(SIXTY_DAYS) if s.time >= NOW - dt.timedelta(days=30)]
    assert len(kept) == 30
    # the newest snapshot is kept by both rules; the oldest goes with the reason named
    assert verdicts[0].reasons == ("within 30d", "newest of component documents")
    assert verdicts[-1].reasons == ("no rule keeps it",)


def test_fall_back_hour_is_two_buckets_and_one_day():
    hourly = [v for v in apply_retention(FALL_BACK, Policy(keep_hourly=-1, timezone=NY), NOW) if v.keep]
    labels = [r for v in hourly for r in v.reasons if r.startswith("hourly")]
    assert "hourly 2026-11-01 01:00-0400" in labels and "hourly 2026-11-01 01:00-0500" in labels
    daily = [v for v in apply_retention(FALL_BACK, Policy(keep_daily=-1, timezone=NY), NOW) if v.keep]
    assert len(daily) == 1  # the 25-hour day is one bucket (the newest is also "newest of component")


def test_time_zone_moves_day_boundaries():
    def kept(zone):
        return [n for n, s in enumerate(AROUND_MIDNIGHT)
                if s.id in {v.id for v in apply_retention(AROUND_MIDNIGHT, Policy(keep_daily=-1, timezone=zone), NOW)
                            if v.keep}]
    assert kept("UTC") == [0, 2]  # Nov 29 23:30 | Nov 30 00:30, 14:30
    assert kept("Asia/Tokyo") == [2]  # all three on Nov 30 JST
    assert kept("America/Los_Angeles") == [1, 2]  # Nov 29 15:30, 16:30 | Nov 30 06:30


def test_invariants_keep_newest_component_drill_and_rpo():
    now = dt.datetime(2026, 12, 1, 0, tzinfo=UTC)
    v = {x.id: x for x in apply_retention(MIXED, Policy(), now)}
    assert v[MIXED[0].id].reasons == ("newest of component config",)
    assert v[MIXED[1].id].reasons == ("newest that passed a drill",)
    rpo = [x for x in apply_retention(MIXED, Policy(rpo=dt.timedelta(hours=60)), now) if x.keep]
    assert sum("younger than the RPO (60h)" in x.reasons for x in rpo) == 2  # Nov 29 and 30, 02:00


def test_years_keep_one_per_year():
    got = apply_retention(YEARS, Policy(keep_yearly=-1), NOW)
    years = [r for v in got for r in v.reasons if r.startswith("yearly")]
    assert years == ["yearly 2026", "yearly 2025", "yearly 2024", "yearly 2023"]


def test_forget_ids_spares_protected():
    snaps = MIXED
    got = {v.id: v for v in forget_ids(snaps, [snaps[0].id, snaps[2].id], Policy(), NOW)}
    assert got[snaps[0].id].keep and got[snaps[0].id].reasons == ("newest of component config",)
    assert not got[snaps[2].id].keep
    assert sum(not v.keep for v in got.values()) == 1
    with pytest.raises(errors.NotFound):
        forget_ids(snaps, ["rag-system-backup-20000101_000000"], Policy(), NOW)


@pytest.mark.parametrize("text,seconds", [("30d", 30 * 86400), ("12h", 43200), ("1w3d", 10 * 86400),
                                          ("90m", 5400), ("1y", 365 * 86400), ("45s", 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "30 days", "-1d", "1.5d"])
def test_parse_duration_rejects(text):
    with pytest.raises(errors.UsageError):
        parse_duration(text)


def test_unknown_timezone_is_config_error():
    with pytest.raises(errors.ConfigError):
        apply_retention(SIXTY_DAYS, Policy(keep_daily=1, timezone="Mars/Olympus"), NOW)


def test_a_snapshot_a_drill_passed_is_tagged_and_kept():
    """The forget job's input: drill job records mark the snapshots they proved (controller/forget.py)."""
    import datetime as _dt
    from ragbackup.controller.forget import snapshots_of
    from ragbackup.controller.policy.retention import DRILL_PASSED, Policy, apply_retention

    class _Rec:
        def __init__(self, sid, day):
            self.id, self.time, self.kind, self.components = sid, f"2026-01-{day:02d}T00:00:00Z", "full", ("docs",)

    class _Catalog:
        def list(self):
            return [_Rec(f"s{d}", d) for d in range(1, 11)]

    snaps = snapshots_of(_Catalog(), frozenset({"s3"}))
    assert [s.id for s in snaps if DRILL_PASSED in s.tags] == ["s3"]
    now = _dt.datetime(2026, 2, 1, tzinfo=_dt.timezone.utc)
    kept = {v.id: v for v in apply_retention(snaps, Policy(keep_last=1), now) if v.keep}
    assert set(kept) == {"s10", "s3"}
