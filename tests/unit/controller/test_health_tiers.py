"""The pure half of the tier health checks: the verdict and each tier's check and row."""
import datetime as dt

from ragbackup.controller.health import Check, TierProbe, judge_tier, tier_row, verdict
from ragbackup.controller.replication_queue import TierQueue

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)


def test_verdict():
    ok, bad_tier, bad_agent = Check("agent a", True, ""), Check("tier s3", False, ""), Check("agent b", False, "")
    assert verdict([ok]) == "healthy" and verdict([]) == "healthy"
    assert verdict([ok, bad_tier]) == "degraded"
    assert verdict([bad_tier, bad_agent]) == "unhealthy" and verdict([bad_agent]) == "unhealthy"


def test_an_unreachable_tier_with_a_queue():
    queue = TierQueue("dr", 3, NOW - dt.timedelta(hours=2), "read timeout", NOW - dt.timedelta(days=1))
    probe = TierProbe(False, "S3 endpoint http://127.0.0.1:9: size failed: Could not connect")
    check = judge_tier("dr", probe, queue, NOW)
    assert check.name == "tier dr" and not check.ok
    assert check.detail.startswith("UNREACHABLE: S3 endpoint http://127.0.0.1:9")
    assert "3 snapshot(s) waiting, oldest queued 2h ago" in check.detail
    assert "last replicated 2026-12-01T12:00:00Z" in check.detail
    row = tier_row("dr", probe, queue, NOW)
    assert row == {"tier": "dr", "reachable": False, "detail": probe.detail, "queue_depth": 3,
                   "oldest_age_seconds": 7200.0, "last_error": "read timeout", "last_done": "2026-12-01T12:00:00Z"}


def test_a_reachable_tier_never_replicated():
    check = judge_tier("s3", TierProbe(True, "s3://b/ at http://x reachable"), TierQueue("s3", 0, None, "", None), NOW)
    assert check.ok and check.detail == "s3://b/ at http://x reachable; nothing waiting; never replicated"
