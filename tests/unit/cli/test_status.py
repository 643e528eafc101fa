"""`ragctl status` rendering: the verdict, components against the RPO, drills, alerts, thresholds."""
from __future__ import annotations

from ragbackup.cli.status import render

BASE = {
    "safe": True, "alerts": [], "thresholds": {"min_free_ratio": 0.1, "max_backup_age_hours": 25.0},
    "components": [{"component": "docs", "newest_good_backup": "2026-12-01T10:00:00Z", "age_seconds": 7200.0,
                    "rpo_seconds": 14400.0, "within_rpo": True, "next_run": ""},
                   {"component": "redis", "newest_good_backup": "", "age_seconds": None, "rpo_seconds": 14400.0,
                    "within_rpo": False, "next_run": ""}],
    "drill": {"last": "", "result": "no drill yet", "duration_seconds": None, "rto_seconds": 3600.0,
              "within_rto": False},
    "volume": {"path": "/srv/backup", "size_bytes": 100 * 2**30, "free_bytes": 5 * 2**30, "free_ratio": 0.05},
    "replication": {"lag_seconds": None, "note": "no offsite replication configured"},
}


def test_safe_screen():
    text = render(BASE)
    assert text.startswith("SAFE")
    assert "docs" in text and "2.0h" in text and "OVER RPO" in text and "never" in text
    assert "last drill: no drill yet" in text and "5.0%" in text and "min_free_ratio=0.1" in text


def test_alerts_and_drill_listed():
    st = dict(BASE, safe=False, alerts=[{"name": "RagBackupVolumeLowSpace", "severity": "critical",
                                         "summary": "backup volume has 5.0% free (limit 10%)", "component": ""}],
              drill={"last": "2026-12-01T09:00:00Z", "result": "success", "duration_seconds": 4000.0,
                     "rto_seconds": 3600.0, "within_rto": False})
    text = render(st)
    assert text.startswith("NOT SAFE: 1 alert(s)")
    assert "CRITICAL RagBackupVolumeLowSpace: backup volume has 5.0% free" in text
    assert "success in 1.1h (RTO 1.0h, NOT within)" in text


def test_replication_queue_per_tier():
    st = dict(BASE, replication={"lag_seconds": 7200.0, "note": "1 snapshot(s) waiting", "tiers": [
        {"tier": "s3", "feed": "primary", "queue_depth": 1, "oldest_age_seconds": 7200.0,
         "last_error": "S3 endpoint http://s3: list failed: Read timeout", "last_done": "2026-12-01T08:00:00Z"},
        {"tier": "dr", "feed": "s3", "queue_depth": 0, "oldest_age_seconds": 0.0, "last_error": "", "last_done": ""}]})
    text = render(st)
    assert "replication: 1 snapshot(s) waiting" in text
    assert "s3 (from primary): 1 waiting, oldest 2.0h, last copy 2026-12-01T08:00:00Z; last error: S3 endpoint" in text
    assert "dr (from s3): 0 waiting, nothing copied yet" in text
