"""The alert policy as a table: each rule fires on the state that should fire it and stays quiet
on its neighbour; start/stop changes between evaluations."""
from __future__ import annotations

import datetime as _dt

import pytest

from ragbackup.config import AlertsConfig
from ragbackup.controller.policy.alerts import AlertState, JobView, changes, evaluate_alerts, size_baseline

NOW = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=_dt.timezone.utc)
H = 3600.0


def job(kind="backup", result="success", hours_ago=1.0, minutes=5.0, comps=("docs",), size=1000, read=None):
    """A finished job; a backup's `size` is the data its snapshot holds, `read` what it read (default: all)."""
    end = NOW - _dt.timedelta(hours=hours_ago)
    return JobView(kind, result, end - _dt.timedelta(minutes=minutes), end, tuple(comps),
                   size if read is None else read, bytes_total=size)


def state(*jobs, total=100, free=50, comps=("docs",), rpo=4 * H, rto=H, **kw):
    return AlertState(comps, tuple(jobs), rpo, rto, total, free, **kw)


def names(st, t=AlertsConfig()):
    return [a.name for a in evaluate_alerts(st, t, NOW)]


CASES = [
    ("all good", state(job()), []),
    ("job failed in the window", state(job(), job(result="failure", hours_ago=0.5)), ["RagBackupJobFailed"]),
    ("failure past the window", state(job(hours_ago=2), job(result="failure", hours_ago=1.5)), []),
    ("interrupted counts as failed", state(job(), job(result="interrupted", hours_ago=0.2)), ["RagBackupJobFailed"]),
    ("failure then success", state(job(result="failure", hours_ago=0.5), job(hours_ago=0.1)), []),
    ("a failed restore is answered on the terminal", state(job(), job("restore", "failure", 0.2)), []),
    ("a failed verify alerts", state(job(), job("verify", "failure", 0.2)), ["RagBackupJobFailed"]),
    ("cancelled is not a failure", state(job(), job(result="cancelled", hours_ago=0.1)), []),
    ("size +25%", state(*[job(hours_ago=10 - i) for i in range(7)], job(hours_ago=1, size=1250)),
     ["RagBackupSizeDeviation"]),
    ("size +15%", state(*[job(hours_ago=10 - i) for i in range(7)], job(hours_ago=1, size=1150)), []),
    ("size -30%", state(job(hours_ago=3), job(hours_ago=2), job(hours_ago=1, size=700)), ["RagBackupSizeDeviation"]),
    ("an unchanged backup after a full one reads nothing: same size, quiet",
     state(job(hours_ago=2), job(hours_ago=1, read=0)), []),
    ("one component's backup is compared with that component's backups only",
     state(job(hours_ago=4, comps=("docs", "redis"), size=5000), job(hours_ago=3, comps=("docs",)),
           job(hours_ago=2, comps=("docs", "redis"), size=5000), job(hours_ago=1, comps=("docs",), size=1100)), []),
    ("one component shrinks by half: fires",
     state(job(hours_ago=4, comps=("docs", "redis"), size=5000), job(hours_ago=3, comps=("docs",)),
           job(hours_ago=2, comps=("docs", "redis"), size=5000), job(hours_ago=1, comps=("docs",), size=500)),
     ["RagBackupSizeDeviation"]),
    ("sizes not recorded (older records): quiet", state(job(hours_ago=2, size=0), job(hours_ago=1, size=0, read=9)),
     []),
    ("no backup at all", state(), ["RagBackupTooOld"]),
    ("backup 26 h old", state(job(hours_ago=26)), ["RagBackupTooOld", "RagBackupRPOBreach"]),
    ("backup 5 h old: RPO only", state(job(hours_ago=5)), ["RagBackupRPOBreach"]),
    ("other component's backup does not count", state(job(comps=("redis",))), ["RagBackupTooOld"]),
    ("upload failures", state(job(), upload_failures_1h=2), ["RagBackupUploadFailures"]),
    ("9% free", state(job(), total=100, free=9), ["RagBackupVolumeLowSpace"]),
    ("10% free", state(job(), total=100, free=10), []),
    ("volume unknown", state(job(), total=0, free=0), []),
    ("drill failed", state(job(), job("drill", "failure", 0.5, comps=())), ["RagBackupJobFailed", "RagBackupDrillFailed"]),
    ("old drill failed", state(job(), job("drill", "failure", 30, comps=())), ["RagBackupDrillFailed"]),
    ("drill slower than RTO", state(job(), job("drill", hours_ago=2, minutes=61)), ["RagBackupDrillSlow"]),
    ("drill within RTO", state(job(), job("drill", hours_ago=2, minutes=59)), []),
    ("no drill for 40 days", state(job("drill", hours_ago=40 * 24), job()), ["RagBackupDrillOverdue"]),
    ("no drill, first backup 40 days ago", state(job(hours_ago=40 * 24), job()), ["RagBackupDrillOverdue"]),
    ("no drill, first backup 10 days ago", state(job(hours_ago=10 * 24), job()), []),
    ("replication lag", state(job(), replication_lag=27 * H), ["RagBackupReplicationLag"]),
    ("replication absent", state(job(), replication_lag=None), []),
]


@pytest.mark.parametrize("st,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules(st, expected):
    assert names(st) == expected


def test_thresholds_come_from_config():
    st = state(job(), total=100, free=15)
    assert names(st) == []
    assert names(st, AlertsConfig(min_free_ratio=0.2)) == ["RagBackupVolumeLowSpace"]
    assert names(state(job(hours_ago=5)), AlertsConfig(max_backup_age_hours=4)) == ["RagBackupTooOld",
                                                                                  "RagBackupRPOBreach"]


def test_too_old_is_per_component_and_names_it():
    fired = evaluate_alerts(state(job(comps=("docs",)), comps=("docs", "redis")), AlertsConfig(), NOW)
    assert [(a.name, a.component) for a in fired] == [("RagBackupTooOld", "redis")]
    assert "redis has no successful backup" in fired[0].summary


def test_baseline_is_median_of_earlier_successes():
    jobs = tuple(job(hours_ago=20 - i, size=s) for i, s in enumerate([1, 100, 100, 200, 300, 900, 900, 900, 50]))
    assert size_baseline(jobs) == (50, 300.0)  # the 7 successes before the newest: 100 100 200 300 900 900 900
    assert size_baseline(jobs[:1]) is None


def test_changes_name_started_and_stopped():
    fired = evaluate_alerts(state(job(hours_ago=26)), AlertsConfig(), NOW)
    started, stopped = changes({"RagBackupTooOld/docs", "RagBackupVolumeLowSpace"}, fired)
    assert [a.key for a in started] == ["RagBackupRPOBreach/docs"]
    assert stopped == ["RagBackupVolumeLowSpace"]


def test_the_rpo_counted_on_drill_proven_backups_only():
    """A backup counts as drill-proven once a successful drill restored its snapshot."""
    import datetime as _dt
    from ragbackup.controller.policy.alerts import JobView, newest_drill_verified_backup
    t = _dt.datetime(2026, 12, 1, tzinfo=_dt.timezone.utc)
    h = _dt.timedelta(hours=1)
    jobs = (JobView("backup", "success", t, t + h, ("docs",), snapshot="s1"),
            JobView("backup", "success", t + 2 * h, t + 3 * h, ("docs",), snapshot="s2"),
            JobView("drill", "success", t + 4 * h, t + 5 * h, ("docs",), snapshot="s1"),
            JobView("drill", "failure", t + 6 * h, t + 7 * h, ("docs",), snapshot="s2"))
    assert newest_drill_verified_backup(jobs, "docs").snapshot == "s1"
    assert newest_drill_verified_backup(jobs, "cache") is None
    assert newest_drill_verified_backup(jobs[:2], "docs") is None
