"""Offsite tiers through the real daemons and two real SeaweedFS servers (the s3 tier's endpoint and DR's).

In: LocalStacks (agent and controller as processes) with [tiers.*] tables, small trees and a real
redis-server backed up here. Out: each snapshot restores from DR alone and from S3 alone with the
local repository and the controller's state deleted, files byte for byte and the Redis RDB loading
into a fresh redis-server with exactly the dataset it was taken from; an S3 outage (SIGSTOP, SIGKILL) never fails a backup, is reported within
a bound and ends with a catch-up nobody starts; a controller killed mid-replication resumes; a
snapshot forgotten locally restores from S3, one forgotten on a tier is never copied back; one
component restored from a tier fetches only its own packs.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from typing import Iterator

import redis as redis_lib
from ragbackup.localstack import LocalStack
from reliability.conftest import mode

from fixtures.redis_server import RedisServer
from fixtures.s3tiers import replicate_now, tier_toml
from fixtures.stack import assert_same_tree, backup, build_tree, change_tree, ragctl_output, tree_state

N_FILES = 300
FAST = {"connect_timeout": 1, "read_timeout": 2, "max_attempts": 2}  # the outage bound (docs/OFFSITE.md)


@contextlib.contextmanager
def _stack(workdir, components: dict[str, str], extra_toml: str, redis: RedisServer | None = None
           ) -> Iterator[LocalStack]:
    st = LocalStack(str(workdir))
    st.repository_options = {"pack_size_mib": 4}
    st.extra_toml = extra_toml
    for name, path in components.items():
        st.add_paths_component(name, path)
    if redis is not None:
        st.add_component("redis", "redis", redis.data_dir, port=redis.port, timeout_s=30)
    try:
        st.start()
        st.ragctl("init")
        yield st
    finally:
        st.stop()
        for proc in ("agent", "controller"):
            print(f"--- {st.workdir}/{proc}.log (tail)\n{st.log_tail(proc, 30)}")


def _json(st: LocalStack, *args: str):
    cp = st.ragctl(*args, "--json", check=False)
    assert cp.returncode == 0, ragctl_output(cp)
    return json.loads(cp.stdout)


def _replication(st: LocalStack) -> dict:
    cp = st.ragctl("status", "--json", check=False)
    assert cp.returncode in (0, 10), ragctl_output(cp)  # 10: an alert fires (an outage may)
    return {t["tier"]: t for t in json.loads(cp.stdout)["replication"]["tiers"]}


def _wait(predicate, timeout: float, what: str, st: LocalStack) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s; replication: {_replication(st)}")


def _drained(st: LocalStack, timeout: float = 120) -> float:
    """Wait until every tier's queue is empty and a replication to it completed; returns the seconds."""
    return _wait(lambda: all(t["queue_depth"] == 0 and t["last_done"] for t in _replication(st).values()),
                 timeout, "replication queue drained", st)


def _snapshot_ids(st: LocalStack, *args: str) -> list[str]:
    return [s["id"] for s in _json(st, "snapshots", *args)]


def _add_file(root: str, name: str) -> None:
    with open(os.path.join(root, f"added-{name}.bin"), "wb") as f:
        f.write(os.urandom(300_000) + name.encode() * 1000)


def _restore(st: LocalStack, sid: str, target: str, *args: str) -> None:
    cp = st.ragctl("restore", sid, "--target", target, *args, check=False)
    assert cp.returncode == 0, ragctl_output(cp)


# --------------------------------------------------------------------------- restore from DR alone

def _fill_redis(server: RedisServer, run: int) -> None:
    """Strings, a hash, a list and a set in db 0 and db 3; each run changes some and adds others."""
    c0, c3 = server.client(), server.client(db=3)
    pipe = c0.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"doc:{i}", f"text {i} run {run if i % 10 == 0 else 0}")
    pipe.execute()
    c0.hset(f"session:{run}", mapping={"user": f"u{run}", "turns": str(run * 7)})
    c0.rpush("queue:ingest", *[f"job-{run}-{n}" for n in range(50)])
    c3.sadd("embeddings:cached", *[f"e{run}-{n}" for n in range(300)])
    if run:
        c0.delete(f"doc:{run}")


def redis_dataset(port: int) -> dict[int, dict[str, object]]:
    """Every key of every db with its value, read through the server (the dataset a restore must bring back)."""
    out: dict[int, dict[str, object]] = {}
    for db in range(16):
        client = redis_lib.Redis(host="127.0.0.1", port=port, db=db, decode_responses=True, socket_timeout=10)
        if not client.dbsize():
            continue
        values = {}
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            values[key] = {"string": client.get, "hash": client.hgetall, "set": client.smembers,
                           "list": lambda k, c=client: c.lrange(k, 0, -1)}[kind](key)
        out[db] = values
    return out


def _assert_rdb_loads(factory, rdb_dir: str, expected: dict, what: str) -> None:
    fresh = factory(["--dir", rdb_dir])
    try:
        got = redis_dataset(fresh.port)
        assert got == expected, f"{what}: the restored RDB loads {sum(map(len, got.values()))} keys in dbs " \
                                f"{sorted(got)}, expected {sum(map(len, expected.values()))} in {sorted(expected)}"
    finally:
        fresh.stop()


def test_each_snapshot_restores_from_dr_alone_after_losing_the_site(tier_servers, redis_server_factory, tmp_path):
    a, b = tier_servers
    data = str(tmp_path / "data")
    build_tree(data, n_files=N_FILES, big_files=1)
    redis = redis_server_factory()
    work = tmp_path / "stack"
    dr = dict(FAST, feed="s3")
    toml = tier_toml(work, {"s3": {}, "dr": dr, "vault": {"feed": "s3"}}, {"s3": a, "dr": b, "vault": a})
    with _stack(work, {"data": data}, toml, redis) as st:
        states, datasets = {}, {}
        for i in range(3):
            _fill_redis(redis, i)
            if i == 1:
                change_tree(data, n_files=N_FILES, seed=11)
            elif i:
                _add_file(data, f"run-{i}")
                _drained(st)
                b.pause()  # DR unreachable: the third snapshot reaches s3, not dr
            sid = backup(st, "--reason", f"run {i}")["id"]
            states[sid], datasets[sid] = tree_state(data), redis_dataset(redis.port)
        try:
            _wait(lambda: _replication(st)["dr"]["last_error"] != "" and _replication(st)["s3"]["queue_depth"] == 0,
                  90, "s3 has the third snapshot, dr reports its outage", st)
            # The local volume is lost while dr still lacks the third snapshot; dr catches up from s3 alone.
            st.stop_process("controller")
            shutil.rmtree(st.repo_dir)
        finally:
            b.resume()
        st.start_controller()
        _wait(lambda: _replication(st)["dr"]["queue_depth"] == 0, 120, "dr caught up from s3", st)
        assert sorted(_snapshot_ids(st, "--tier", "dr")) == sorted(states)
        log = open(os.path.join(st.workdir, "controller.log")).read()
        assert "to tier vault from s3, server-side" in log and "to tier dr from s3, through the controller" in log
        s3_bucket, vault_bucket = _bucket(st, "s3"), _bucket(st, "vault")
        assert {k for k in a.keys(vault_bucket) if k.startswith("data/")} == \
            {k for k in a.keys(s3_bucket) if k.startswith("data/")}
        # The site is lost: the controller's state goes too; a new controller starts.
        st.stop_process("controller")
        shutil.rmtree(st.state_dir)
        st.start_controller()
        assert sorted(_snapshot_ids(st, "--tier", "dr")) == sorted(states)  # the catalog rebuilt from DR
        redis.stop()  # the database host is lost too: every dataset comes back from a tier's RDB alone
        assert len({json.dumps(d, sort_keys=True, default=sorted) for d in datasets.values()}) == 3
        for tier in ("dr", "s3"):
            for n, (sid, expected) in enumerate(states.items()):
                target = str(tmp_path / f"restored-{tier}-{n}")
                _restore(st, sid, target, "--from", tier)
                assert_same_tree(expected, os.path.join(target, "data"), f"restore of {sid} from {tier}")
                assert sorted(os.listdir(os.path.join(target, "redis"))) == ["dump.rdb"]
                _assert_rdb_loads(redis_server_factory, os.path.join(target, "redis"), datasets[sid],
                                  f"redis of {sid} from {tier}")
        drill = _json(st, "drill", "latest", "--from", "dr")
        assert drill["result"] == "SUCCESSFUL" and drill["snapshot"] == list(states)[-1], drill
        assert not os.path.exists(st.repo_dir), "a restore or drill from dr touched the local repository"


def _bucket(st: LocalStack, tier: str) -> str:
    text = open(st.controller_config).read()
    section = text.split(f"[tiers.{tier}]", 1)[1]
    return section.split('bucket = "', 1)[1].split('"', 1)[0]


# --------------------------------------------------------------------------- outages and crashes

def test_s3_outage_never_fails_a_backup_and_the_catch_up_needs_no_one(tier_servers, tmp_path):
    a, _ = tier_servers
    data = str(tmp_path / "data")
    build_tree(data, n_files=N_FILES, big_files=1)
    work = tmp_path / "stack"
    with _stack(work, {"data": data}, tier_toml(work, {"s3": dict(FAST)}, {"s3": a})) as st:
        backup(st)
        _drained(st)
        # A frozen server (SIGSTOP) waits out the read timeouts: the long run only (tests/reliability covers it).
        outages = (("SIGSTOP", a.resume), ("SIGKILL", a.start)) if mode() == "long" else (("SIGKILL", a.start),)
        for outage, end in outages:
            (a.pause if outage == "SIGSTOP" else a.kill)()
            try:
                _add_file(data, outage)
                began = time.monotonic()
                sid = backup(st, "--reason", f"during {outage}")["id"]  # succeeds locally
                backed_up = time.monotonic() - began
                took = _wait(lambda: _replication(st)["s3"]["last_error"] != "", 90, "the outage reported", st)
                row = _replication(st)["s3"]
                print(f"\n{outage}: backup took {backed_up:.1f}s; replication failed {took:.1f}s after it: "
                      f"{row['last_error']}")
                assert row["queue_depth"] >= 1 and a.endpoint_url in row["last_error"], row
                assert took < 60, f"replication error took {took:.1f}s to surface ({outage})"
            finally:
                end()
            caught_up = _drained(st, timeout=180)
            print(f"{outage}: caught up {caught_up:.1f}s after the server returned")
            assert sid in _snapshot_ids(st, "--tier", "s3")
        # kill -9 of the controller between a replication's packs and its snapshot
        st.env["RAG_BACKUP_FAULT"] = "replicate.mid"
        st.restart_controller()
        _add_file(data, "crash")
        sid = backup(st, "--reason", "before the crash")["id"]
        proc = st.procs["controller"]
        _wait(lambda: proc.poll() is not None, 60, "the controller's crash at replicate.mid", st)
        assert proc.returncode == -9 and "replicate.mid" in st.log_tail("controller", 50)
        st.env.pop("RAG_BACKUP_FAULT")
        st.start_controller()
        _drained(st)
        assert sid in _snapshot_ids(st, "--tier", "s3")
        jobs = _json(st, "jobs", "--kind", "replicate")
        assert any(j["result"] == "interrupted" for j in jobs), jobs


def _random_files(root: str, count: int, size: int) -> None:
    os.makedirs(root)
    for i in range(count):
        with open(os.path.join(root, f"f{i}.bin"), "wb") as f:
            f.write(os.urandom(size))


def test_one_component_from_a_tier_fetches_only_its_own_packs(tier_servers, tmp_path):
    a, _ = tier_servers
    big, small = str(tmp_path / "big"), str(tmp_path / "small")
    _random_files(big, 12, 1_000_000)  # 12 MB: three packs of 4 MiB
    _random_files(small, 40, 10_000)  # 400 kB, captured at the same time as big
    work = tmp_path / "stack"
    with _stack(work, {"big": big, "small": small}, tier_toml(work, {"s3": {}}, {"s3": a})) as st:
        backup(st)
        _drained(st)
        small_state = tree_state(small)
        st.stop_process("controller")  # the site is lost: a new state, no local repository
        shutil.rmtree(st.state_dir)
        shutil.rmtree(st.repo_dir)
        st.start_controller()
        target = str(tmp_path / "restored")
        cp = st.ragctl("restore", "latest", "--components", "small", "--from", "s3", "--target", target, check=False)
        assert cp.returncode == 0, ragctl_output(cp)
        assert_same_tree(small_state, os.path.join(target, "small"), "small from s3")
        fetched = re.search(r"fetched (\d+) packs \(([\d.]+) MiB\) from tier s3", cp.stdout + cp.stderr)
        assert fetched, ragctl_output(cp)
        # small's own pack and the trees' pack: none of big's 12 MB, which a shared pack would have carried
        assert int(fetched[1]) <= 2 and float(fetched[2]) < 1.0, fetched[0]


# --------------------------------------------------------------------------- retention per tier

def test_forgotten_locally_restores_from_s3_and_a_tier_forget_is_never_copied_back(tier_servers, tmp_path):
    a, _ = tier_servers
    data = str(tmp_path / "data")
    build_tree(data, n_files=N_FILES, big_files=1)
    work = tmp_path / "stack"
    with _stack(work, {"data": data}, tier_toml(work, {"s3": {}}, {"s3": a})) as st:
        first_state = tree_state(data)
        first = backup(st)["id"]
        change_tree(data, n_files=N_FILES, seed=5)
        second = backup(st)["id"]
        _add_file(data, "third")
        backup(st)  # the newest of a component is always kept: forget the middle one on the tier
        _drained(st)
        _json(st, "forget", first)
        _json(st, "prune")
        assert first not in _snapshot_ids(st) and first in _snapshot_ids(st, "--tier", "s3")
        target = str(tmp_path / "restored")
        _restore(st, first, target, "--from", "s3")
        assert_same_tree(first_state, os.path.join(target, "data"), f"restore of {first} forgotten locally")
        _json(st, "forget", "--tier", "s3", second)
        assert second not in _snapshot_ids(st, "--tier", "s3")
        cp = replicate_now(st, "--tier", "s3", "--json")
        assert cp.returncode == 0, ragctl_output(cp)
        rep = json.loads(cp.stdout)
        assert rep["tiers"]["s3"]["snapshots"] == 0 and second not in _snapshot_ids(st, "--tier", "s3")
        assert second in _snapshot_ids(st)  # the primary keeps it: its own policy
        cp = st.ragctl("prune", "--tier", "all", check=False)
        assert cp.returncode == 0, ragctl_output(cp)
        _restore(st, first, str(tmp_path / "again"), "--from", "s3")


# --------------------------------------------------------------------------- S3 stopped mid-upload

def _local_objects(st: LocalStack, prefix: str) -> dict[str, int]:
    root = os.path.join(st.repo_dir, prefix)
    return {os.path.relpath(os.path.join(d, f), st.repo_dir): os.path.getsize(os.path.join(d, f))
            for d, _, files in os.walk(root) for f in files}


def test_s3_stopped_mid_upload_leaves_nothing_half_visible_and_the_queue_finishes_the_copy(tier_servers, tmp_path):
    a, _ = tier_servers
    data = str(tmp_path / "data")
    build_tree(data, n_files=50, big_files=0)
    work = tmp_path / "stack"
    cut = {"connect_timeout": 1, "read_timeout": 1, "max_attempts": 1, "bandwidth_limit": "6MiB", "max_concurrency": 1}
    toml = tier_toml(work, {"s3": cut}, {"s3": a})
    bucket = toml.split('bucket = "', 1)[1].split('"', 1)[0]
    with _stack(work, {"data": data}, toml) as st:
        first = backup(st)["id"]
        _drained(st)
        for n in range(6):  # 24 MiB of new data: six 4 MiB packs, paced at 6 MiB/s
            with open(os.path.join(data, f"new-{n}.bin"), "wb") as f:
                f.write(os.urandom(4 * 1024 * 1024))
        state = tree_state(data)
        before = set(a.keys(bucket, "data/"))
        sid = backup(st, "--reason", "to be cut")["id"]
        deadline = time.monotonic() + 30
        while not set(a.keys(bucket, "data/")) - before and time.monotonic() < deadline:
            time.sleep(0.1)
        a.pause()  # SIGSTOP by PID while the other packs are on their way: their requests time out
        try:
            failed = _wait(lambda: _replication(st)["s3"]["last_error"] != "", 40, "the failure reported", st)
            row = _replication(st)["s3"]
            assert row["queue_depth"] == 1 and a.endpoint_url in row["last_error"], row
        finally:
            a.resume()
        # Right after the server returns (the catch-up waits its backoff, 5 s): only whole packs, no new snapshot.
        on_tier, local = a.keys(bucket), _local_objects(st, "data")
        assert sid not in {k.rsplit("/", 1)[-1] for k in on_tier if k.startswith("snapshots/")}, sorted(on_tier)
        assert first in {k.rsplit("/", 1)[-1] for k in on_tier if k.startswith("snapshots/")}
        copied = {k: size for k, size in on_tier.items() if k.startswith("data/")}
        assert set(copied) - before and set(local) - set(copied), "the cut came before or after every pack"
        assert all(local.get(k) == size for k, size in copied.items()), "a pack on the tier is not whole"
        assert _snapshot_ids(st, "--tier", "s3") == [first]  # the tier is a consistent repository without it
        caught_up = _drained(st, timeout=60)  # nobody asks: the queue kept the work
        print(f"\nS3 stopped mid-upload: replication failed {failed:.1f}s after SIGSTOP, caught up {caught_up:.1f}s "
              f"after SIGCONT; {len(copied) - len(before)} of {len(local) - len(before)} new packs were up at the cut")
        assert set(a.keys(bucket, "data/")) >= set(local)
        assert sorted(_snapshot_ids(st, "--tier", "s3")) == sorted([first, sid])
        target = str(tmp_path / "restored")
        _restore(st, sid, target, "--from", "s3")
        assert_same_tree(state, os.path.join(target, "data"), f"restore of {sid} from s3 after the cut")
