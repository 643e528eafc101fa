"""`ragctl health` judges the backup volume and the newest backup by the [alerts] thresholds the alerts use."""
import datetime as dt

from ragbackup.config import AlertsConfig

from ragbackup.controller.health import judge_backup_age, judge_free_space

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)


def test_free_space_is_judged_by_the_configured_ratio():
    default = AlertsConfig().min_free_ratio
    assert not judge_free_space(9, 100, default).ok
    assert judge_free_space(10, 100, default).ok
    assert judge_free_space(9, 100, 0.05).ok  # an operator who set min_free_ratio = 0.05
    assert not judge_free_space(0, 0, 0.05).ok
    assert judge_free_space(9, 100, 0.05).detail.startswith("9.0% free")


def test_backup_age_is_judged_by_the_configured_hours():
    newest = NOW - dt.timedelta(hours=30)
    assert not judge_backup_age(newest, NOW, AlertsConfig().max_backup_age_hours).ok
    check = judge_backup_age(newest, NOW, 48)
    assert check.ok and check.detail == "30.0 h old (limit 48 h)"
    assert judge_backup_age(NOW - dt.timedelta(hours=1), NOW, 25).detail == "1.0 h old (limit 25 h)"
    assert not judge_backup_age(None, NOW, 25).ok
