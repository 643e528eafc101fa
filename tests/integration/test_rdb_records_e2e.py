"""Redis RDB files captured by record, through the real daemons and a real redis-server.

In: a redis component and a paths component holding RDB files. Out: a backup after a
restart (new key order) and a 2% change adds little more than the changed keys; every
restored RDB is byte-identical and loads to the same dataset; an RDB the parser does
not know is stored as plain chunks and restores byte-identical too.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest
import zstandard
from fixtures.stack import backup, dir_usage
from ragbackup import entry_parts
from ragbackup.localstack import LocalStack
from ragbackup.repo import rdb
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import RDB_RECORDS, Entry
from ragbackup.storage import LocalStorage

KEYS = 20_000
CHANGED = KEYS * 2 // 100
WORDS = [f"w{i}" for i in range(400)]


def _value(rnd: random.Random) -> str:
    """Text of 300-700 bytes, as a cached LLM answer would be."""
    out: list[str] = []
    target = rnd.randint(300, 700)
    while sum(len(w) + 1 for w in out) < target:
        out.append(rnd.choice(WORDS))
    return " ".join(out)


def _fill(client, rnd: random.Random) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(KEYS):
        pipe.set(f"cache:{i}", _value(rnd))
    for i in range(200):
        pipe.hset(f"doc:{i}", mapping={"title": f"t{i}", "chunks": i * 3})
        pipe.rpush(f"queue:{i}", *[f"job-{i}-{j}" for j in range(5)])
        pipe.zadd(f"rank:{i}", {"a": i, "b": i + 0.5})
        pipe.set(f"session:{i}", "s" * 40, ex=7 * 86400)
    pipe.execute()


def _change(client, rnd: random.Random) -> int:
    """Give 2% of the string keys a new value; returns the new values' bytes."""
    pipe = client.pipeline(transaction=False)
    size = 0
    for i in rnd.sample(range(KEYS), CHANGED):
        v = _value(rnd)
        size += len(v) + len(f"cache:{i}") + 2
        pipe.set(f"cache:{i}", v)
    pipe.execute()
    return size


def _dataset(client) -> dict:
    """Every key's type and value, read back through the server."""
    out = {}
    for key in client.scan_iter(count=1000):
        t = client.type(key)
        if t == b"string":
            out[key] = client.get(key)
        elif t == b"hash":
            out[key] = client.hgetall(key)
        elif t == b"list":
            out[key] = client.lrange(key, 0, -1)
        elif t == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = t
    return out


def _unknown_rdb(real: bytes) -> bytes:
    """An RDB this parser does not know: a MODULE_AUX opcode right after the header."""
    return real[:rdb.HEADER_LEN] + bytes([rdb.OP_MODULE_AUX]) + real[rdb.HEADER_LEN:]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def redis_stack(redis_server_factory, tmp_path):
    server = redis_server_factory()
    files = tmp_path / "files"
    files.mkdir()
    st = LocalStack(str(tmp_path / "stack"))
    st.add_component("redis", "redis", server.data_dir, port=server.port, timeout_s=60)
    st.add_paths_component("files", str(files))
    with st:
        st.ragctl("init")
        yield st, server, files


def test_rdb_after_restart_and_2pct_change_adds_little_and_restores_exactly(redis_stack, redis_server_factory,
                                                                            tmp_path):
    st, server, files = redis_stack
    rnd = random.Random(7)
    _fill(server.client(), rnd)
    server.client().save()
    real = _read(os.path.join(server.data_dir, "dump.rdb"))
    (files / "copy.rdb").write_bytes(real)  # found by its magic in a paths component too
    (files / "unknown.rdb").write_bytes(_unknown_rdb(real))
    first = backup(st)
    rdb1, data1 = _read(os.path.join(server.data_dir, "dump.rdb")), _dataset(server.client())

    server.stop()
    server.start()  # a new hash seed: the keys are written in another order
    changed = _change(server.client(), rnd)
    server.client().save()
    repo_before = dir_usage(st.repo_dir)[0]
    second = backup(st)
    added = dir_usage(st.repo_dir)[0] - repo_before
    rdb2, data2 = _read(os.path.join(server.data_dir, "dump.rdb")), _dataset(server.client())
    stats = second["components"]["redis"]["stats"]
    plain = len(zstandard.ZstdCompressor(level=3).compress(rdb2))  # what plain chunks of the new file add
    print(f"rdb {len(rdb2)} bytes ({plain} compressed), changed keys {changed} bytes, second backup added "
          f"{added} bytes to the repository; redis component stats {stats}")
    assert rdb1[:rdb.HEADER_LEN] == rdb2[:rdb.HEADER_LEN] and rdb1 != rdb2
    # Stored as plain chunks, the rewritten RDB would add about its whole compressed size
    # (several MB here); by record it adds the groups holding the changed keys (about
    # 1 KiB each), the file's key order (4 bytes a key), the tree's chunk ids (32 bytes
    # a group, compressed) and the index: 0.8 MB for 0.2 MB of changed keys.
    assert added < 5 * changed, (added, changed)
    assert added < plain / 3, (added, plain)

    for sid, expected, dataset, name in ((first["id"], rdb1, data1, "r1"), (second["id"], rdb2, data2, "r2")):
        target = tmp_path / name
        st.ragctl("restore", sid, "--target", str(target))
        restored = _read(str(target / "redis" / "dump.rdb"))
        assert restored == expected, f"restore of {sid}: dump.rdb differs"
        fresh = redis_server_factory(start=False)
        shutil.copyfile(target / "redis" / "dump.rdb", os.path.join(fresh.data_dir, "dump.rdb"))
        fresh.start()
        assert _dataset(fresh.client()) == dataset
        fresh.stop()
    assert _read(str(tmp_path / "r1" / "files" / "unknown.rdb")) == _unknown_rdb(real)
    assert _read(str(tmp_path / "r1" / "files" / "copy.rdb")) == real

    # `ragctl export` rebuilds the RDB too (the runbook layout: a tar.gz per component)
    out, ex = tmp_path / "x.tar.gz", tmp_path / "ex"
    st.ragctl("export", second["id"], "-o", str(out))
    ex.mkdir()
    subprocess.run(["tar", "-xzf", str(out), "-C", str(ex)], check=True)
    top = ex / second["id"]
    for inner in top.glob("*.tar.gz"):
        subprocess.run(["tar", "-xzf", inner.name], cwd=top, check=True)
    exported = [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs if f == "dump.rdb"]
    assert len(exported) == 1 and _read(exported[0]) == rdb2, exported


def test_an_unchanged_rdb_in_a_paths_component_is_not_read_again(redis_stack, tmp_path):
    """A no-change backup reuses the RDB's records from the agent's cache (neither read nor re-sorted),
    and that snapshot restores it byte-identical."""
    st, server, files = redis_stack
    _fill(server.client(), random.Random(11))
    server.client().save()
    real = _read(os.path.join(server.data_dir, "dump.rdb"))
    (files / "copy.rdb").write_bytes(real)
    backup(st)
    again = backup(st)
    stats = again["components"]["files"]["stats"]
    assert stats.get("files_reused") == stats.get("files") == 1, stats
    assert not stats.get("bytes_read"), stats
    st.ragctl("restore", again["id"], "--target", str(tmp_path / "r"), "--components", "files")
    assert _read(str(tmp_path / "r" / "files" / "copy.rdb")) == real


BIG_KEYS = 110_000  # about 100 MB of records: more groups of about 1 KiB than one message's PART_IDS


def _repo_entry(st: LocalStack, sid: str, component: str, path: bytes, cache: str) -> Entry:
    """The tree entry `path` of `component` in snapshot `sid`, read from the repository itself."""
    with open(st.passphrase_file, "rb") as f:
        repo = Repository.open(LocalStorage(st.repo_dir), Unlocker("passphrase", f.read().strip()), cache)
    try:
        repo.sync_index()
        trees = repo.load_snapshot(sid)["components"][component]["tree"]
        return next(e for e in repo.read_tree(bytes.fromhex(t) for t in trees) if e.path == path)
    finally:
        repo.close()


def test_an_rdb_of_more_record_groups_than_a_message_holds_crosses_in_parts(redis_stack, redis_server_factory,
                                                                             tmp_path):
    """The RDB's entry names more chunk ids than one message carries (entry_parts.PART_IDS): the agent
    sends it in parts, the controller stores one entry, and a restore brings it back whole through
    the agent in parts, byte-identical and loading to the same dataset; a copy in a paths component,
    unchanged, is sent again from the agent's cache, in parts too."""
    st, server, files = redis_stack
    client, rnd = server.client(), random.Random(5)
    for first in range(0, BIG_KEYS, 10_000):
        pipe = client.pipeline(transaction=False)
        for i in range(first, first + 10_000):
            pipe.set(f"doc:{i}", rnd.randbytes(450).hex())
        pipe.execute()
    client.save()
    real = _read(os.path.join(server.data_dir, "dump.rdb"))
    (files / "copy.rdb").write_bytes(real)

    backup(st)
    again = backup(st)
    dump = _read(os.path.join(server.data_dir, "dump.rdb"))  # the second backup's BGSAVE
    stats = again["components"]["files"]["stats"]
    assert stats.get("files_reused") == 1 and not stats.get("bytes_read"), stats
    entry = _repo_entry(st, again["id"], "redis", b"dump.rdb", str(tmp_path / "c1"))
    copy = _repo_entry(st, again["id"], "files", b"copy.rdb", str(tmp_path / "c2"))
    for e in (entry, copy):
        assert e.layout == RDB_RECORDS and len(e.chunks) > entry_parts.PART_IDS, len(e.chunks)

    st.ragctl("restore", again["id"], "--target", str(tmp_path / "r"))
    assert _read(str(tmp_path / "r" / "redis" / "dump.rdb")) == dump
    assert _read(str(tmp_path / "r" / "files" / "copy.rdb")) == real
    fresh = redis_server_factory(start=False)
    shutil.copyfile(tmp_path / "r" / "redis" / "dump.rdb", os.path.join(fresh.data_dir, "dump.rdb"))
    fresh.start()
    assert fresh.client().dbsize() == BIG_KEYS and fresh.client().get("doc:77") == client.get("doc:77")
    fresh.stop()
