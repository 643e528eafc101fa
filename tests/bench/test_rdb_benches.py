"""The RDB benches run end to end on a small dump from a real redis-server, so they never rot
(an agent API they drive can change under them: bench/rdb_restore.py once fed `TreeWriter` a
pair where it took an entry).

In: a dump.rdb of 3,000 keys (strings and hash-table sets). Out: each bench's JSON, exit 0,
the rebuilt file byte-identical; figures are never asserted.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dump(redis_server) -> Path:
    c = redis_server.client()
    for i in range(2000):
        c.set(f"key:{i}", f"value {i} " * 10)
    for i in range(1000):
        c.sadd(f"set:{i}", *[f"member-{j}-{i}" for j in range(200)])  # over a listpack: stored sorted
    c.save()
    return Path(redis_server.data_dir) / "dump.rdb"


def _run(*argv: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_rdb_restore_bench_restores_the_dump_byte_identical(dump, tmp_path):
    out = json.loads(_run("bench.rdb_restore", "--work", str(tmp_path / "w"), "--rdb", str(dump), "--runs", "1").stdout)
    assert [run["identical"] for run in out["each"]] == [True]


def test_rdb_rebuild_bench_rebuilds_the_dump_byte_identical(dump, tmp_path):
    out = json.loads(_run("bench.rdb_rebuild", "--rdb", str(dump), "--spool", str(tmp_path)).stdout)
    assert out["identical"] is True and out["records"] == 3000 and out["peak_traced_mb"] > 0
