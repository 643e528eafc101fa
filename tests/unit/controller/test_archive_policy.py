"""Archive sets: the first snapshot of each period, once."""
import datetime as dt

from ragbackup.controller.policy.archive import period_of, sets_due


def _t(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


SNAPS = [("b", _t("2026-10-31T23:30:00")), ("a", _t("2026-10-02T02:00:00")), ("c", _t("2026-11-01T02:00:00")),
         ("d", _t("2026-11-20T02:00:00"))]


def test_the_first_snapshot_of_each_month_is_due_once():
    assert sets_due(SNAPS, [], "month") == ["a", "c"]
    assert sets_due(SNAPS, ["a"], "month") == ["c"]
    assert sets_due(SNAPS, ["b", "d"], "month") == []  # any archived snapshot covers its month


def test_periods_follow_the_time_zone_and_the_period_kind():
    late = _t("2026-10-31T23:30:00")
    assert period_of(late, "month") == "2026-10"
    assert period_of(late, "month", "Europe/Berlin") == "2026-11"
    assert period_of(late, "week") == "2026-W44" and period_of(late, "day") == "2026-10-31"
    assert sets_due(SNAPS, [], "month", "Europe/Berlin") == ["a", "b"]
