"""Replication planning (pure) and the persistent queue: what a tier lacks, in which order, what waits."""
import datetime as dt

import pytest

from ragbackup.controller.policy import replicate as rp
from ragbackup.controller.replication import Throttle
from ragbackup.controller.replication_queue import ReplicationQueue

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def snaps(*ages_days):
    return [rp.SourceSnapshot(f"s{i}", NOW - age * DAY) for i, age in enumerate(ages_days)]


@pytest.mark.parametrize("on_tier,forgotten,keep,expected", [
    (set(), set(), None, ["s0", "s1", "s2"]),  # oldest first: s0 is 30 days old
    ({"s1"}, set(), None, ["s0", "s2"]),
    (set(), {"s0"}, None, ["s1", "s2"]),  # forgotten on the tier: never again
    (set(), set(), 20 * DAY, ["s1", "s2"]),  # older than the tier's keep_within: never copied
    ({"s0", "s1", "s2"}, set(), None, []),
])
def test_snapshots_to_copy(on_tier, forgotten, keep, expected):
    assert rp.snapshots_to_copy(snaps(30, 10, 0), on_tier, forgotten, keep, NOW) == expected


def test_too_old_names_what_the_tier_will_never_get():
    assert rp.too_old(snaps(30, 10, 0), set(), 20 * DAY, NOW) == ["s0"]
    assert rp.too_old(snaps(30), set(), None, NOW) == []


def test_plan_follows_the_write_order():
    steps = rp.plan_snapshot("S", {"p1", "p2", "p3"}, {"p2"}, ["keys/k", "config"])
    assert [s.phase for s in steps] == list(rp.ORDER)
    assert steps[0].keys == ("p1", "p3")  # p2 is on the tier already: indexed, not copied
    assert steps[1].keys == ("p1", "p2", "p3")
    assert steps[-1].keys == ("snapshots/S",)


def test_plan_of_a_snapshot_needing_nothing_is_the_snapshot_alone():
    assert [s.phase for s in rp.plan_snapshot("S", set(), {"p"}, [])] == [rp.SNAPSHOT]


def test_metadata_config_last():
    assert rp.metadata_missing({"config", "keys/a", "keys/b", "dicts/1", "index/x"}, {"keys/a"}) == \
        ["dicts/1", "keys/b", "config"]


def test_retry_delay_backs_off_to_a_ceiling():
    assert [rp.retry_delay(n) for n in range(5)] == [0, 5, 10, 20, 40]
    assert rp.retry_delay(30) == 300


def test_throttle_spaces_sends_by_rate():
    t, slept = [0.0], []
    th = Throttle(1000, monotonic=lambda: t[0], sleep=slept.append)
    th.take(500)
    th.take(500)
    th.take(1000)
    assert slept == [0.5, 1.0]


def test_queue_survives_reopen_and_skips_forgotten(tmp_path):
    path = str(tmp_path / "catalog.sqlite")
    q = ReplicationQueue(path)
    assert q.enqueue("s3", ["a", "b"], NOW - DAY) == 2
    q.failed("s3", "S3 endpoint down", NOW)
    q.close()
    q = ReplicationQueue(path)
    st = q.state("s3")
    assert (st.depth, st.oldest, st.last_error, st.oldest_age(NOW)) == (2, NOW - DAY, "S3 endpoint down", 86400)
    q.mark_forgotten("s3", ["a"], NOW)
    assert q.enqueue("s3", ["a"], NOW) == 0 and q.waiting("s3") == ["b"]
    q.done("s3", ["b"], NOW)
    st = q.state("s3")
    assert (st.depth, st.last_done, q.state("dr").depth) == (0, NOW, 0)
