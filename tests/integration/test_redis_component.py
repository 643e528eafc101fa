"""Redis component steps against real redis-server processes.

In: redis_server_factory instances on loopback. Out: capture/restore/verify behaviour
(consistency under writes, AOF restore, busy saves, secrets kept out of errors).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat
import threading
import time
import traceback
from pathlib import Path

import pytest
from ragbackup import errors
from ragbackup.agent.kinds.redis import capture as rcap, client as rclient, place as rplace, verify as rverify
from ragbackup.clock import FakeClock
from ragbackup.secret import Secret

OWNER = (999, 999) if os.geteuid() == 0 else (os.getuid(), os.getgid())
AOF = ["--appendonly", "yes"]


def target_for(server, **kw) -> rclient.RedisTarget:
    password = Secret(server.password) if server.password else None
    return rclient.RedisTarget(data_dir=server.data_dir, port=server.port, password=password, timeout_s=30, **kw)


def fill(client, prefix: str, n: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}:{i}", "x" * 20)
    pipe.execute()


def error_text(exc: BaseException) -> str:
    """Everything a log could show of this error: the message, repr and the whole chain."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + repr(exc)


# ---------------------------------------------------------------- pure decisions

MARK = rcap.SaveMark(lastsave=1000, saves=4)


@pytest.mark.parametrize("fields,expected", [
    ({"rdb_bgsave_in_progress": 1, "rdb_last_bgsave_status": "ok", "rdb_last_save_time": 1000, "rdb_saves": 4},
     rcap.WAITING),
    ({"rdb_bgsave_in_progress": 1, "rdb_last_bgsave_status": "err", "rdb_last_save_time": 999, "rdb_saves": 5},
     rcap.WAITING),
    ({"rdb_bgsave_in_progress": 0, "rdb_last_bgsave_status": "ok", "rdb_last_save_time": 1001, "rdb_saves": 5},
     rcap.DONE),
    # same second as the previous save: LASTSAVE alone cannot tell, rdb_saves can
    ({"rdb_bgsave_in_progress": 0, "rdb_last_bgsave_status": "ok", "rdb_last_save_time": 1000, "rdb_saves": 5},
     rcap.DONE),
    ({"rdb_bgsave_in_progress": 0, "rdb_last_bgsave_status": "ok", "rdb_last_save_time": 1000, "rdb_saves": 4},
     rcap.WAITING),
    ({"rdb_bgsave_in_progress": 0, "rdb_last_bgsave_status": "err", "rdb_last_save_time": 1000, "rdb_saves": 5},
     rcap.FAILED),
    # Redis < 7 has no rdb_saves
    ({"rdb_bgsave_in_progress": 0, "rdb_last_bgsave_status": "ok", "rdb_last_save_time": 1000}, rcap.WAITING),
    ({"rdb_bgsave_in_progress": 0, "rdb_last_bgsave_status": "ok", "rdb_last_save_time": 1002}, rcap.DONE),
])
def test_bgsave_progress_table(fields, expected):
    before = MARK if "rdb_saves" in fields else rcap.SaveMark(1000, None)
    assert rcap.bgsave_progress(fields, before) == expected


@pytest.mark.parametrize("reply,expected", [
    ("Background saving started", rcap.STARTED),
    ("Background save already in progress", rcap.BUSY_RDB),
    ("Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE ...", rcap.BUSY_CHILD),
    ("An AOF log rewriting in progress: can't BGSAVE right now. Use BGSAVE SCHEDULE ...", rcap.BUSY_CHILD),
])
def test_classify_bgsave_reply(reply, expected):
    assert rcap.classify_bgsave_reply(reply) == expected


def test_classify_bgsave_reply_unknown_is_typed():
    with pytest.raises(errors.Unhealthy, match="MISCONF"):
        rcap.classify_bgsave_reply("MISCONF something")


def test_keyspace_counts_and_compare():
    counts = rverify.keyspace_counts({"db3": {"keys": 2, "expires": 0}, "db10": {"keys": 1}})
    assert counts == {"db0": 0, "db3": 2, "db10": 1}
    assert rverify.compare_keyspace({"db0": 5}, {"db0": 5, "db1": 0}) == []
    assert [m.text() for m in rverify.compare_keyspace({"db0": 5}, {"db0": 4, "db2": 1})] == [
        "db0: DBSIZE 4, expected 5", "db2: DBSIZE 1, expected 0"]


# ---------------------------------------------------------------- facts


def test_collect_facts_empty_and_filled(redis_server):
    client = rclient.connect(target_for(redis_server))
    facts = rverify.collect_facts(client)
    assert facts["dbsize"] == {"db0": 0} and facts["total_keys"] == 0
    assert facts["appendonly"] is False and facts["appenddirname"] is None
    assert facts["redis_version"].split(".")[0].isdigit()
    fill(redis_server.client(2), "k", 7)
    fill(redis_server.client(0), "k", 3)
    facts = rverify.collect_facts(client)
    assert facts["dbsize"] == {"db0": 3, "db2": 7} and facts["total_keys"] == 10


# ---------------------------------------------------------------- capture and restore


class Writer(threading.Thread):
    """Writes w:0, w:1, ... in order until stopped (bounded in count and time)."""

    def __init__(self, server, limit: int = 1_000_000, seconds: float = 60.0):
        super().__init__(daemon=True)
        self.client, self.limit, self.seconds = server.client(), limit, seconds
        self.count, self.stop_event = 0, threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self.stop_event.is_set() and self.count < self.limit and time.monotonic() < deadline:
            self.client.set(f"w:{self.count}", self.count)
            self.count += 1

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 20
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.count >= n

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


def test_capture_while_writing_restores_the_fork_point(redis_server_factory, tmp_path):
    src = redis_server_factory()
    fill(src.client(), "base", 5000)
    fill(src.client(1), "one", 100)
    writer = Writer(src)
    writer.start()
    try:
        writer.wait_for(200)
        facts = rcap.prepare_capture(target_for(src), str(tmp_path / "staging"))
        at_capture = writer.count
        writer.wait_for(at_capture + 100)
    finally:
        writer.stop()
    assert facts["keyspace_at_fork"] is True
    written_at_fork = facts["dbsize"]["db0"] - 5000
    assert 200 <= written_at_fork <= at_capture
    assert src.client().dbsize() > facts["dbsize"]["db0"], "writes continued after the fork"
    assert os.path.getsize(tmp_path / "staging" / "dump.rdb") > 0

    dst = redis_server_factory()
    dst.stop()
    aside = rplace.place_restored_data(str(tmp_path / "staging"), dst.data_dir, facts, OWNER)
    assert aside is None  # fresh instance: nothing to move aside
    assert os.stat(os.path.join(dst.data_dir, "dump.rdb")).st_uid == OWNER[0]
    dst.start()
    rverify.wait_ready(target_for(dst), 20)
    client = rclient.connect(target_for(dst))
    assert rverify.verify_facts(client, facts) == []
    assert client.dbsize() == facts["dbsize"]["db0"]
    assert dst.client(1).dbsize() == 100
    # Point in time: the sequential writer's keys are exactly w:0 .. w:(n-1).
    assert client.exists(f"w:{written_at_fork - 1}") == 1
    assert client.exists(f"w:{written_at_fork}") == 0


def test_aof_restore_serves_the_backup_not_the_old_aof(redis_server_factory, tmp_path):
    src = redis_server_factory(AOF)
    fill(src.client(), "src", 300)
    fill(src.client(3), "src3", 20)
    src.client().config_set("auto-aof-rewrite-percentage", 77)
    staging = tmp_path / "staging"
    facts = rcap.prepare_capture(target_for(src), str(staging))
    assert facts["appendonly"] is True and facts["appenddirname"] == "appendonlydir"
    assert (staging / "appendonlydir" / "appendonly.aof.manifest").is_file()
    assert src.client().config_get("auto-aof-rewrite-percentage")["auto-aof-rewrite-percentage"] == "77"

    # The instance we restore over has other data, in its AOF and in an RDB.
    dst = redis_server_factory(AOF)
    fill(dst.client(), "other", 50)
    dst.client().save()
    fill(dst.client(), "other-incr", 10)
    dst.stop()
    old_manifest = Path(dst.data_dir, "appendonlydir", "appendonly.aof.manifest").read_text()

    aside = rplace.place_restored_data(str(staging), dst.data_dir, facts, OWNER)
    dst.start()
    rverify.wait_ready(target_for(dst), 20)
    client = rclient.connect(target_for(dst))
    assert rverify.verify_facts(client, facts) == []
    assert sorted(client.keys("*")) == sorted(f"src:{i}" for i in range(300))
    assert dst.client(3).dbsize() == 20

    # The old data dir is kept aside as its sibling, untouched.
    assert aside is not None and os.path.dirname(aside) == os.path.dirname(dst.data_dir)
    assert os.path.basename(aside).startswith("data.corrupted.")
    assert Path(aside, "appendonlydir", "appendonly.aof.manifest").read_text() == old_manifest
    assert os.path.isfile(os.path.join(aside, "dump.rdb"))

    # The new AOF works: a write survives a restart.
    client.set("after-restore", 1)
    client.close()
    dst.stop()
    dst.start()
    assert dst.client().get("after-restore") == "1" and dst.client().dbsize() == 301
    assert os.path.isdir(aside)


def test_place_restored_data_never_overwrites_an_aside_dir(tmp_path):
    data, clock = tmp_path / "data", FakeClock(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    data.mkdir()
    facts = {"dbfilename": "dump.rdb", "appendonly": False}
    asides = []
    for n in range(2):
        (data / "dump.rdb").write_text(f"old{n}")
        restored = tmp_path / f"restored{n}"
        restored.mkdir()
        (restored / "dump.rdb").write_text(f"new{n}")
        asides.append(rplace.place_restored_data(str(restored), str(data), facts, None, clock))
    assert [os.path.basename(a) for a in asides] == [
        "data.corrupted.20260102_030405", "data.corrupted.20260102_030405.2"]
    assert [Path(a, "dump.rdb").read_text() for a in asides] == ["old0", "old1"]
    assert (data / "dump.rdb").read_text() == "new1"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_data_dir_moves_aside_as_a_sibling_and_comes_back_with_its_owner_and_mode(tmp_path):
    data = tmp_path / "redis-data"
    data.mkdir()
    (data / "dump.rdb").write_text("old")
    (data / "nodes.conf").write_text("cluster")
    os.chmod(data, 0o750)
    os.chown(data, 1234, 1234)
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "dump.rdb").write_text("new")
    clock = FakeClock(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    aside = rplace.place_restored_data(str(restored), str(data), {"dbfilename": "dump.rdb"}, OWNER, clock)
    assert aside == str(tmp_path / "redis-data.corrupted.20260102_030405")
    assert sorted(os.listdir(aside)) == ["dump.rdb", "nodes.conf"]
    assert (data / "dump.rdb").read_text() == "new"
    st = os.stat(data)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1234, 1234)
    assert os.stat(data / "dump.rdb").st_uid == OWNER[0]


def test_restore_without_rdb_is_refused(tmp_path):
    with pytest.raises(errors.UsageError, match="dump.rdb"):
        rplace.place_restored_data(str(tmp_path), str(tmp_path), {"appendonly": False}, None)


# ---------------------------------------------------------------- busy and failing saves


def slow_saves(server, keys: int = 1000, delay_us: int = 500) -> None:
    """Make each save take about keys * delay_us (Redis's own test knob)."""
    fill(server.client(), "slow", keys)
    server.client().config_set("rdb-key-save-delay", delay_us)


def test_bgsave_waits_for_a_save_already_in_progress(redis_server):
    slow_saves(redis_server)
    client = rclient.connect(target_for(redis_server))
    saves_before = client.info("persistence")["rdb_saves"]
    client.bgsave()
    assert client.info("persistence")["rdb_bgsave_in_progress"] == 1
    result = rcap.bgsave_and_wait(client, 30)
    info = client.info("persistence")
    assert info["rdb_saves"] == saves_before + 2, "ours ran after the one in progress"
    assert info["rdb_bgsave_in_progress"] == 0 and result.mark == rcap.save_mark(info)
    assert result.keyspace == {"db0": 1000} and result.at_fork


def test_bgsave_waits_for_an_aof_rewrite(redis_server_factory):
    server = redis_server_factory(AOF)
    slow_saves(server)
    client = rclient.connect(target_for(server))
    rewrites = client.info("persistence")["aof_rewrites"]
    client.bgrewriteaof()
    assert client.info("persistence")["aof_rewrite_in_progress"] == 1
    rcap.bgsave_and_wait(client, 30)
    assert client.info("persistence")["aof_rewrites"] == rewrites + 1


def test_aof_rewrite_paused_waits_and_restores_setting_on_error(redis_server_factory):
    server = redis_server_factory(AOF)
    slow_saves(server)
    client = rclient.connect(target_for(server))
    client.config_set("auto-aof-rewrite-percentage", 55)
    client.bgrewriteaof()
    with pytest.raises(RuntimeError, match="boom"), rcap.aof_rewrite_paused(client, 30):
        info = client.info("persistence")
        assert info["aof_rewrite_in_progress"] == 0 and info["aof_rewrite_scheduled"] == 0
        assert client.config_get("auto-aof-rewrite-percentage")["auto-aof-rewrite-percentage"] == "0"
        raise RuntimeError("boom")
    assert client.config_get("auto-aof-rewrite-percentage")["auto-aof-rewrite-percentage"] == "55"


def test_bgsave_timeout_is_typed(redis_server):
    slow_saves(redis_server, keys=2000, delay_us=2000)
    client = rclient.connect(target_for(redis_server))
    with pytest.raises(errors.Unhealthy, match="timed out waiting for BGSAVE"):
        rcap.bgsave_and_wait(client, 0.3)


def test_bgsave_failure_is_typed(redis_server_factory, tmp_path):
    server = redis_server_factory(["--enable-protected-configs", "yes"])
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    client = rclient.connect(target_for(server))
    client.config_set("dir", str(doomed))
    doomed.rmdir()  # the child cannot create its temp file any more
    with pytest.raises(errors.Unhealthy, match="BGSAVE failed"):
        rcap.bgsave_and_wait(client, 30)


# ---------------------------------------------------------------- passwords


PASSWORD = "Tr0ub4dor-and-3-horses"


def test_password_protected_capture_and_errors_hide_password(redis_server_factory, tmp_path):
    server = redis_server_factory(password=PASSWORD)
    fill(server.client(), "k", 10)
    target = target_for(server)
    assert PASSWORD not in repr(target)
    facts = rcap.prepare_capture(target, str(tmp_path / "staging"))
    assert facts["dbsize"] == {"db0": 10}

    failures = []
    for bad in (dataclasses.replace(target, password=Secret(PASSWORD + "-wrong")),
                dataclasses.replace(target, password=None)):
        with pytest.raises(errors.Unavailable) as info:
            rclient.connect(bad)
        failures.append(info.value)
    server.stop()
    for call in (lambda: rclient.connect(target), lambda: rverify.wait_ready(target, 0.3),
                 lambda: rcap.prepare_capture(target, str(tmp_path / "again"))):
        with pytest.raises(errors.Unavailable) as info:
            call()
        failures.append(info.value)
    for exc in failures:
        text = error_text(exc)
        assert f"127.0.0.1:{server.port}" in str(exc)
        assert PASSWORD not in text, text
