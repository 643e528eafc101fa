"""The drill's pure decisions: RTO from config, verdict, RPO, summary line and details."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from ragbackup import errors
from ragbackup.controller.policy import drill as dp

OK = dp.Check("redis", "redis-dbsize", True, "DBSIZE per db {'db0': 5} as recorded")
BAD = dp.Check("redis", "redis-dbsize", False, "db0: DBSIZE 4, expected 5")


@dataclass(frozen=True)
class Objectives:
    rto: object = None


@dataclass(frozen=True)
class Cfg:
    objectives: object = None


@pytest.mark.parametrize("cfg,want", [
    (object(), 3600.0),  # a config without [objectives] (before that table exists)
    (Cfg(None), 3600.0),
    (Cfg(Objectives(None)), 3600.0),
    (Cfg(Objectives(900)), 900.0),
    (Cfg(Objectives("30m")), 1800.0),
    (Cfg(Objectives("1h30m")), 5400.0),
    (Cfg({"rto": "2h"}), 7200.0),
    (Cfg(Objectives(dt.timedelta(minutes=5))), 300.0),
])
def test_rto_seconds(cfg, want):
    assert dp.rto_seconds(cfg) == want


@pytest.mark.parametrize("bad", ["soon", "10 parsecs", "-5", "1h and then some"])
def test_a_bad_rto_is_a_usage_error_naming_the_key(bad):
    with pytest.raises(errors.UsageError, match=r"\[objectives\] rto"):
        dp.rto_seconds(Cfg(Objectives(bad)))


@pytest.mark.parametrize("checks,duration,deadline_hit,want", [
    ([OK], 10, False, dp.SUCCESSFUL),
    ([OK], 3601, False, dp.TIMED_OUT),
    ([OK], 10, True, dp.TIMED_OUT),
    ([OK, BAD], 10, False, dp.FAILED),
    ([BAD], 4000, True, dp.FAILED),  # a failed check is the finding, whatever the time
    ([], 10, False, dp.SUCCESSFUL),
])
def test_judge(checks, duration, deadline_hit, want):
    assert dp.judge(checks, duration, 3600, deadline_hit) == want


def test_recovery_point_age_is_the_rpo():
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    assert dp.recovery_point_age("2026-12-02T10:30:00Z", now) == 5400
    assert dp.recovery_point_age("2026-12-02T10:30:00+00:00", now) == 5400
    assert dp.recovery_point_age("2026-12-02T13:00:00Z", now) == 0  # a clock ahead never gives a negative age


def test_summary_and_details_name_what_failed():
    v = dp.verdict([OK, BAD, dp.Check("chroma", "chroma-probes", True, "3 probes")], 12.34, 3600, 7260)
    line = dp.summary(v, "snap-1")
    assert line.startswith("drill FAILED: snapshot snap-1 restored and checked in 12.3s (RTO 1h00m)")
    assert "recovery point age (RPO) 2h01m" in line and "2/3 checks passed" in line
    assert line.endswith("failed: redis redis-dbsize: db0: DBSIZE 4, expected 5")
    d = dp.details(v, "snap-1", "2026-12-02T10:00:00Z", {"redis": "a1", "chroma": "a2"}, {"redis": 1.5})
    assert d["result"] == "FAILED" and d["duration_s"] == 12.34 and d["rto_s"] == 3600 and d["rpo_s"] == 7260
    assert d["failed"] == ["redis/redis-dbsize: db0: DBSIZE 4, expected 5"]
    assert d["components"]["redis"]["agent"] == "a1" and d["components"]["redis"]["seconds"] == 1.5
    assert [c["ok"] for c in d["components"]["redis"]["checks"]] == [True, False]


def test_a_slow_drill_says_so():
    v = dp.verdict([OK], 4000, 3600, 60)
    assert v.result == dp.TIMED_OUT and "slower than the RTO" in dp.summary(v, "s")


@pytest.mark.parametrize("source", ["s3", "dr", "offsite"])
def test_drill_sources_are_local_and_the_configured_tiers(source):
    assert dp.check_source("") == dp.check_source("local") == "local"
    assert dp.check_source(source, ("s3", "dr", "offsite")) == source
    with pytest.raises(errors.UsageError, match="expected local or s3"):
        dp.check_source(source + "x", ("s3",))
