"""Redis components end to end: agent + controller processes, driven only through `ragctl`.

In: a redis-server on the host and redis-server containers (bind-mounted /data; /data in the
container's own layer with AOF on; bind-mounted with AOF on), each backed up while a writer
writes. Out: restores into a fresh instance (--target + a new redis-server, or in place into a
new container through `service = "docker:NAME"`) that serve exactly what `ragctl show`
recorded, at one point in time, also after a restart.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures.components_e2e import (
    KeyWriter,
    assert_redis_matches,
    assert_writes_cut_at_fork,
    container_exec,
    fill,
    only,
    redis_client,
    redis_container,
    wait_redis,
)
from fixtures.procs import free_port

BASE_KEYS = 3000


def seed(port: int) -> None:
    fill(redis_client(port), "base", BASE_KEYS)
    fill(redis_client(port, db=2), "two", 40)


def backup_while_writing(stack, port: int) -> tuple[dict, int]:
    """`ragctl backup` while KeyWriter writes; returns (the redis facts, keys written in all)."""
    writer = KeyWriter(port)
    writer.start()
    try:
        writer.wait_for(200)
        stack.backup()
        at_backup = writer.count
        writer.wait_for(at_backup + 50)  # it kept writing through and after the backup
    finally:
        written = writer.stop()
    facts = stack.facts("redis")
    assert 200 <= facts["dbsize"]["db0"] - BASE_KEYS <= at_backup
    assert facts["dbsize"]["db2"] == 40
    return facts, written


def test_host_redis_backup_under_writes_restores_into_a_fresh_server(redis_server_factory, e2e_stack,
                                                                      tmp_path):
    src = redis_server_factory()
    seed(src.port)
    stack = e2e_stack()
    stack.declare("redis", "redis", src.data_dir, port=src.port, timeout_s=30)
    stack.start()
    facts, written = backup_while_writing(stack, src.port)
    assert redis_client(src.port).dbsize() == BASE_KEYS + written > facts["dbsize"]["db0"]

    target = tmp_path / "restored"
    result = stack.restore("--components", "redis", "--target", str(target))
    assert result["redis"]["restored_path"] == str(target / "redis")
    assert sorted(os.listdir(target / "redis")) == ["dump.rdb"]
    for _ in range(3):  # refused before the agent reads the stream: the job must still end (it once hung)
        refused = stack.ragctl("restore", "latest", "--components", "redis", "--target", str(target),
                               expect=2, timeout=30)
        assert "already exists and is not empty" in refused.stderr
    src.stop()  # the fresh server takes nothing from the old one

    fresh = redis_server_factory(["--dir", str(target / "redis")])  # args after the conf file win
    assert redis_client(fresh.port).config_get("dir")["dir"] == str(target / "redis")
    assert_redis_matches(fresh.port, facts)
    assert_writes_cut_at_fork(fresh.port, facts, BASE_KEYS)
    assert redis_client(fresh.port, db=2).get("two:39") == "value-39"


@pytest.mark.docker
def test_container_redis_bind_mount_restores_in_place_into_a_fresh_container(
        container_factory, redis_image, e2e_stack, tmp_path):
    port = free_port()
    old = redis_container(container_factory, redis_image, port, tmp_path / "old-data", label="old")
    seed(port)
    stack = e2e_stack()
    stack.declare("redis", "redis", str(tmp_path / "old-data"), port=port, service=f"docker:{old.name}",
                  timeout_s=30)
    stack.start()
    facts, _ = backup_while_writing(stack, port)
    old.stop(timeout=5)

    # A fresh, empty instance on the same port becomes the component's path and service.
    new_dir = tmp_path / "new-data"
    new = redis_container(container_factory, redis_image, port, new_dir, label="new")
    assert redis_client(port).dbsize() == 0
    stack.declare("redis", "redis", str(new_dir), port=port, service=f"docker:{new.name}", timeout_s=30)
    result = stack.restore("--components", "redis")
    assert result["redis"]["mismatches"] == [] and result["redis"]["moved_aside"] == ""

    new.reload()
    assert new.status == "running"
    assert_redis_matches(port, facts)
    assert_writes_cut_at_fork(port, facts, BASE_KEYS)
    assert os.stat(new_dir / "dump.rdb").st_uid == 999
    assert redis_client(port).bgsave()  # redis (uid 999) can write its data dir after the restore
    assert redis_client(port).lastsave()


@pytest.mark.docker
def test_container_redis_without_bind_mount_restores_into_a_fresh_container(
        container_factory, redis_image, e2e_stack, tmp_path):
    port = free_port()
    # /data lives in the container's own layer; AOF on, so the AOF dir is fetched through Docker too.
    old = redis_container(container_factory, redis_image, port, aof=True, label="old")
    seed(port)
    stack = e2e_stack()
    stack.declare("redis", "redis", "", port=port, container=old.name, container_path="/data",
                  service=f"docker:{old.name}", timeout_s=30)
    stack.start()
    facts, _ = backup_while_writing(stack, port)
    assert facts["appendonly"] is True
    old.stop(timeout=5)

    new = redis_container(container_factory, redis_image, port, aof=True, label="new")
    fill(redis_client(port), "fresh", 10)  # the new instance's own AOF has other data
    stack.declare("redis", "redis", "", port=port, container=new.name, container_path="/data",
                  service=f"docker:{new.name}", timeout_s=30)
    result = stack.restore("--components", "redis")
    assert result["redis"]["mismatches"] == []
    assert_redis_matches(port, facts)
    assert_writes_cut_at_fork(port, facts, BASE_KEYS)
    assert redis_client(port).exists("fresh:0") == 0
    # /data keeps the owner and mode the image gave it, so redis (uid 999) can still save there.
    assert container_exec(new, "stat", "-c", "%u:%g %a", "/data").split() == ["999:999", "750"]
    assert redis_client(port).save()
    # Still the snapshot (plus new writes) after a restart: nothing of the fresh instance's AOF comes back.
    redis_client(port).set("after-restore", "1")
    new.restart(timeout=5)
    wait_redis(port)
    assert redis_client(port).exists("fresh:0") == 0 and redis_client(port).get("after-restore") == "1"
    assert redis_client(port).dbsize() == facts["dbsize"]["db0"] + 1
    # The fresh container's previous /data is kept on the agent host, not deleted.
    aside = Path(result["redis"]["moved_aside"])
    assert aside.name.startswith("redis.corrupted.") and aside.is_dir()
    assert b"fresh:9" in only(list((aside / "appendonlydir").glob("*.incr.aof"))).read_bytes()


@pytest.mark.docker
def test_container_redis_aof_restore_serves_the_backup_not_the_later_aof(
        container_factory, redis_image, e2e_stack, tmp_path):
    port, data = free_port(), tmp_path / "data"
    ct = redis_container(container_factory, redis_image, port, data, aof=True)
    seed(port)
    stack = e2e_stack()
    stack.declare("redis", "redis", str(data), port=port, service=f"docker:{ct.name}", timeout_s=30)
    stack.start()
    facts, _ = backup_while_writing(stack, port)
    assert facts["appendonly"] is True and facts["appenddirname"] == "appendonlydir"

    # After the backup the live AOF moves on: keys deleted and added, a db flushed.
    client = redis_client(port)
    client.delete(*[f"base:{i}" for i in range(0, BASE_KEYS, 3)])
    fill(client, "after", 500)
    redis_client(port, db=2).flushdb()
    live = dict(db0=client.dbsize(), db2=0)
    assert live["db0"] != facts["dbsize"]["db0"]
    os.chmod(data, 0o750)
    dir_before = os.stat(data)

    result = stack.restore("--components", "redis")
    assert result["redis"]["mismatches"] == []
    wait_redis(port)
    assert_redis_matches(port, facts)
    assert_writes_cut_at_fork(port, facts, BASE_KEYS)
    client = redis_client(port)
    assert client.exists("after:0") == 0 and client.exists("base:0") == 1
    assert client.config_get("appendonly")["appendonly"] == "yes"

    # The live data dir (its AOF with the later writes) was moved aside as a sibling, not deleted.
    aside = Path(result["redis"]["moved_aside"])
    assert aside.parent == data.parent and aside.name.startswith(f"{data.name}.corrupted.")
    dir_after = os.stat(data)  # the new data dir has the old one's owner and mode
    assert (dir_after.st_mode, dir_after.st_uid, dir_after.st_gid) == (
        dir_before.st_mode, dir_before.st_uid, dir_before.st_gid)
    incr = only(list((aside / "appendonlydir").glob("*.incr.aof")))
    assert b"after:499" in incr.read_bytes()

    # The AOF built by the restore keeps new writes across a restart.
    client.set("after-restore", "1")
    ct.restart(timeout=5)
    wait_redis(port)
    assert redis_client(port).get("after-restore") == "1"
    assert redis_client(port).dbsize() == facts["dbsize"]["db0"] + 1
