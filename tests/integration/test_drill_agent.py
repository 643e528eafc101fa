"""The agent's drill checks against a real redis-server, without the daemons.

In: restored Redis data (an RDB saved by a real server, or garbage) and facts. Out: the checks
name what failed (a server that exits on the data, a DBSIZE that differs from the facts), and
the throwaway server is gone and unrecorded afterwards.
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ragbackup.config import AgentConfig, TlsConfig
from ragbackup.agent import drill_procs
from ragbackup.agent.kinds.redis import verify as redis_verify


@pytest.fixture
def setup(tmp_path):
    pool = ThreadPoolExecutor(2)
    cfg = AgentConfig(source="test", listen="", cache_dir=str(tmp_path / "cache"),
                      staging_dir=str(tmp_path / "staging"), allowed_paths=(), workers=2,
                      tls=TlsConfig(insecure=True))
    os.makedirs(cfg.staging_dir)
    yield drill_procs.DrillSetup(cfg, 2, pool, lambda: True, time.monotonic() + 60)
    pool.shutdown()


def _scratch(tmp_path: Path, rdb: bytes | Path) -> tuple[str, str]:
    scratch = tmp_path / "staging" / ".rag-backup-drill-redis-x"
    data = scratch / "data"
    data.mkdir(parents=True)
    if isinstance(rdb, Path):
        shutil.copy(rdb, data / "dump.rdb")
    else:
        (data / "dump.rdb").write_bytes(rdb)
    return str(data), str(scratch)


def _registry_empty(setup) -> bool:
    reg = drill_procs.registry_dir(setup.cfg.staging_dir)
    return not os.path.isdir(reg) or os.listdir(reg) == []


def test_an_rdb_that_holds_other_keys_than_its_facts_fails_redis_dbsize(redis_server, setup, tmp_path):
    c = redis_server.client()
    for i in range(30):
        c.set(f"k{i}", i)
    c.save()
    data, scratch = _scratch(tmp_path, Path(redis_server.data_dir) / "dump.rdb")
    checks = {ch.name: ch for ch in redis_verify.drill(data, scratch, {"dbsize": {"db0": 31}}, setup)}
    assert checks["redis-start"].ok
    assert not checks["redis-dbsize"].ok and checks["redis-dbsize"].detail == "db0: DBSIZE 30, expected 31"
    assert _registry_empty(setup)
    ok = {ch.name: ch for ch in redis_verify.drill(data, scratch, {"dbsize": {"db0": 30}}, setup)}
    assert ok["redis-dbsize"].ok


def test_a_server_that_exits_on_the_restored_rdb_fails_redis_start_with_its_log(setup, tmp_path):
    data, scratch = _scratch(tmp_path, b"REDIS0011" + os.urandom(200))
    [check] = redis_verify.drill(data, scratch, {"dbsize": {"db0": 1}}, setup)
    assert check.name == "redis-start" and not check.ok
    assert "redis-server exited with status" in check.detail and "RDB" in check.detail.upper()
    assert _registry_empty(setup)


def test_no_rdb_in_the_restored_data_fails_redis_start(setup, tmp_path):
    data = tmp_path / "empty"
    data.mkdir()
    [check] = redis_verify.drill(str(data), str(tmp_path), {}, setup)
    assert not check.ok and check.detail == "the restored data has no dump.rdb"
