"""Lock maintenance decisions: which objects need a HeadObject, which an extension, and to when."""
import datetime as dt

from ragbackup.controller.policy.objectlock import extension_due, may_need_extension, new_until
from ragbackup.tier_options import ObjectLockConfig

LOCK = ObjectLockConfig(days=30, maintain_every=dt.timedelta(days=1), extend_within=dt.timedelta(days=7))
NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def test_young_objects_need_no_request():
    assert not may_need_extension(NOW - 22 * DAY, NOW, LOCK)  # written 22 days ago: 8 days left at least
    assert may_need_extension(NOW - 23 * DAY, NOW, LOCK)


def test_extension_when_less_than_the_margin_is_left():
    assert extension_due(NOW + 6 * DAY, NOW, LOCK)
    assert not extension_due(NOW + 8 * DAY, NOW, LOCK)
    assert extension_due(None, NOW, LOCK)  # written without retention
    assert new_until(NOW + dt.timedelta(microseconds=5), LOCK) == NOW + 30 * DAY


def test_no_live_object_lapses_between_two_runs():
    """Run every maintain_every for 90 days: the lock of an object written on day 0 never runs out."""
    until, t = NOW + LOCK.period, NOW
    while t < NOW + 90 * DAY:
        t += LOCK.maintain_every
        assert until > t
        if may_need_extension(NOW, t, LOCK) and extension_due(until, t, LOCK):
            until = new_until(t, LOCK)
