"""Restore drills end to end: real redis-server, `chroma run`, documents, agent and controller processes.

In: a stack backing up a host Redis, a host Chroma and a documents directory. Out: `ragctl drill`
passes and records its verdict, duration, RTO and RPO in the job record and an audit event; a
snapshot whose RDB restores to another DBSIZE than its facts (planted with the repository key, so it
authenticates) FAILS and names the redis check; a drill whose agent is killed midway leaves no
process and no scratch data once the agent has started again; the live data is never touched.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fixtures.components_e2e import fill, populate_chroma, redis_client
from fixtures.procs import wait_until
from ragbackup.repo.crypto import Unlocker
from ragbackup.storage.local import LocalStorage
from ragbackup.repo.repository import Repository

pytestmark = pytest.mark.chroma


def _stack(e2e_stack, redis_server_factory, chroma_server_factory, tmp_path: Path):
    src = redis_server_factory()
    fill(redis_client(src.port), "cache", 500)
    fill(redis_client(src.port, db=1), "session", 20)
    ch = chroma_server_factory()
    populate_chroma(ch.port)
    docs = tmp_path / "docs"
    (docs / "a").mkdir(parents=True)
    for i in range(40):
        (docs / "a" / f"doc-{i}.txt").write_bytes(os.urandom(3000 + i))
    stack = e2e_stack()
    stack.declare("redis", "redis", src.data_dir, port=src.port, timeout_s=30)
    stack.declare("chroma", "chroma", ch.persist_dir, url=ch.url, consistency="online", timeout_s=30)
    stack.declare("documents", "paths", str(docs))
    return stack.start(), src


def _drill(stack, *args: str, expect: int = 0) -> dict:
    return json.loads(stack.ragctl("drill", *args, "--json", expect=expect, timeout=300).stdout)


def _staging(stack) -> Path:
    return Path(stack.workdir) / "agent-staging"


def _leftovers(stack) -> list[str]:
    """Scratch dirs and process records the drill left in the agent's staging dir."""
    staging = _staging(stack)
    out = [p.name for p in staging.glob(".rag-backup-*")] if staging.exists() else []
    registry = staging / "drill-processes"
    return out + ([f"drill-processes/{p.name}" for p in registry.iterdir()] if registry.exists() else [])


def _drill_jobs(stack) -> list[dict]:
    return json.loads(stack.ragctl("jobs", "--kind", "drill", "--json").stdout)


def test_drill_of_the_whole_stack_passes_and_records_its_duration(e2e_stack, redis_server_factory,
                                                                  chroma_server_factory, tmp_path):
    stack, src = _stack(e2e_stack, redis_server_factory, chroma_server_factory, tmp_path)
    sid = stack.backup()["id"]
    d = _drill(stack, "latest")
    assert d["result"] == "SUCCESSFUL", d
    assert d["snapshot"] == sid and 0 < d["duration_s"] < d["rto_s"] == 3600
    assert d["rpo_s"] >= 0 and d["within_rto"] and d["failed"] == []
    checks = {name: {c["name"]: c for c in comp["checks"]} for name, comp in d["components"].items()}
    assert set(checks) == {"redis", "chroma", "documents"}
    assert all(c["ok"] for comp in checks.values() for c in comp.values())
    assert set(checks["redis"]) == {"restore", "redis-start", "redis-dbsize"}
    assert "'db0': 500" in checks["redis"]["redis-dbsize"]["detail"]
    assert set(checks["chroma"]) == {"restore", "chroma-quick-check", "chroma-start", "chroma-counts",
                                     "chroma-probes"}
    assert "docs=300" in checks["chroma"]["chroma-counts"]["detail"]
    assert "40 files" in checks["documents"]["restore"]["detail"]
    assert _leftovers(stack) == []

    job = _drill_jobs(stack)[-1]
    assert job["result"] == "success" and job["snapshot"] == sid
    assert sorted(job["components"]) == ["chroma", "documents", "redis"]
    assert job["summary"].startswith("drill SUCCESSFUL") and "RTO 1h00m" in job["summary"]
    assert "recovery point age (RPO)" in job["summary"] and job["finished"]
    assert redis_client(src.port).dbsize() == 500, "the live Redis was not touched"


def _plant_mismatched_redis(stack, tmp_path: Path, good: str, other: str) -> str:
    """A snapshot (authenticated: written with the key) holding `other`'s redis RDB under `good`'s facts."""
    with open(stack.local.passphrase_file, "rb") as f:
        repo = Repository.open(LocalStorage(stack.local.repo_dir), Unlocker("passphrase", f.read().strip()),
                               str(tmp_path / "plant-cache"))
    try:
        manifest = repo.load_snapshot(good)
        manifest["components"]["redis"]["tree"] = repo.load_snapshot(other)["components"]["redis"]["tree"]
        planted = good[:-6] + ("000000" if good[-6:] != "000000" else "000001")
        manifest["id"] = planted
        repo.save_snapshot(manifest)
    finally:
        repo.close()
    return planted


def test_drill_of_a_snapshot_whose_rdb_differs_from_its_facts_fails_and_names_redis(
        e2e_stack, redis_server_factory, chroma_server_factory, tmp_path):
    stack, src = _stack(e2e_stack, redis_server_factory, chroma_server_factory, tmp_path)
    first = stack.backup("--components", "redis")["id"]
    fill(redis_client(src.port), "later", 70)
    second = stack.backup()["id"]
    planted = _plant_mismatched_redis(stack, tmp_path, second, first)

    d = _drill(stack, planted, expect=11)
    assert d["result"] == "FAILED"
    assert d["failed"] == ["redis/redis-dbsize: db0: DBSIZE 500, expected 570"], d["failed"]
    chroma_checks = d["components"]["chroma"]["checks"]
    assert all(c["ok"] for c in chroma_checks), "only redis failed"
    job = _drill_jobs(stack)[-1]
    assert job["result"] == "failure" and job["error_class"] == "VerificationFailed"
    assert job["summary"].startswith("drill FAILED") and "redis redis-dbsize: db0: DBSIZE 500, expected 570" in \
        job["summary"]
    assert _leftovers(stack) == []
    cp = stack.ragctl("drill", planted, expect=11, timeout=300)
    assert "FAILED redis-dbsize" in cp.stdout
    assert "\nragctl: error: drill FAILED" in cp.stderr


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_drill_and_wait_for_a_server(stack) -> tuple[subprocess.Popen, list[int]]:
    registry = _staging(stack) / "drill-processes"
    proc = subprocess.Popen(stack.local.ragctl_argv("drill", "latest"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    def pids() -> list[int]:  # registrations are written as PID.tmp, then renamed to PID
        return [int(p.name) for p in registry.iterdir() if p.name.isdigit()] if registry.exists() else []

    wait_until(lambda: bool(pids()), 120, "a throwaway server of the drill")
    return proc, pids()


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def _gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_pid_alive(p) for p in pids)


def test_a_drill_whose_agent_is_killed_midway_leaves_nothing_after_the_next_agent_start(
        e2e_stack, redis_server_factory, chroma_server_factory, tmp_path):
    stack, _ = _stack(e2e_stack, redis_server_factory, chroma_server_factory, tmp_path)
    stack.backup()
    proc, pids = _start_drill_and_wait_for_a_server(stack)
    try:
        stack.local.kill("agent")  # kill -9 mid-drill
        assert all(_pid_alive(p) for p in pids), "the throwaway server outlived its agent (until the next start)"
        assert list(_staging(stack).glob(".rag-backup-drill-*"))
        proc.wait(120)
        assert proc.returncode != 0
    finally:
        _end(proc)
    stack.local.start_agent()
    assert _gone(pids, 10), "the agent killed the recorded drill processes at start"
    assert _leftovers(stack) == []
    job = _drill_jobs(stack)[-1]
    assert job["result"] == "failure"
    assert _drill(stack, "latest")["result"] == "SUCCESSFUL", "the next drill runs normally"


def test_a_drill_whose_controller_is_killed_midway_is_cleaned_up_by_the_agent(
        e2e_stack, redis_server_factory, chroma_server_factory, tmp_path):
    stack, _ = _stack(e2e_stack, redis_server_factory, chroma_server_factory, tmp_path)
    stack.backup()
    proc, pids = _start_drill_and_wait_for_a_server(stack)
    try:
        stack.local.kill("controller")  # kill -9 mid-drill: the agent's call is cancelled
        proc.wait(60)
    finally:
        _end(proc)
    assert _gone(pids, 60), "the agent stopped the drill's servers when its call was cancelled"
    wait_until(lambda: _leftovers(stack) == [], 30, "the drill's scratch data removed")
    stack.local.start_controller()
    assert _drill_jobs(stack)[-1]["result"] == "interrupted"


def _flip_byte_in_a_blob(pack_path: Path) -> None:
    """Flip one byte halfway through the pack's blob area (between the magic and the sealed header)."""
    data = pack_path.read_bytes()
    header_len = int.from_bytes(data[-12:-8], "little")
    offset = (8 + len(data) - 12 - header_len) // 2
    with open(pack_path, "r+b") as f:
        f.seek(offset)
        f.write(bytes([data[offset] ^ 0x01]))


def test_a_drill_of_a_snapshot_with_a_damaged_pack_fails_and_names_the_component(make_stack, tmp_path):
    """Damage the repository holds (a flipped byte in a pack) is a FAILED drill naming the component
    and the pack, not a crashed job; the other components are still drilled."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for i in range(3):
            (d / f"part-{i}.bin").write_bytes(os.urandom(300_000))
    st = make_stack({"a": str(a), "b": str(b)})
    packs = lambda: set((Path(st.repo_dir) / "data").rglob("*"))  # noqa: E731
    st.ragctl("backup", "--components", "a")
    packs_a = {p for p in packs() if p.is_file()}
    st.ragctl("backup")  # both components: a's data deduplicated into the pack above
    assert len(packs_a) == 2  # a's data and its trees, in packs of their own
    pack = max(packs_a, key=lambda p: p.stat().st_size)  # a's data
    _flip_byte_in_a_blob(pack)

    cp = st.ragctl("drill", "latest", "--json", check=False, timeout=300)
    assert cp.returncode == 11, cp.stderr
    d = json.loads(cp.stdout)
    assert d["result"] == "FAILED"
    assert len(d["failed"]) == 1 and d["failed"][0].startswith("a/read: repository:"), d["failed"]
    assert pack.name in d["failed"][0]
    assert all(c["ok"] for c in d["components"]["b"]["checks"])
    assert not list((Path(st.workdir) / "agent-staging").glob(".rag-backup-*"))
    cp = st.ragctl("drill", "latest", "--from", "s3", check=False)
    assert cp.returncode == 2 and "no tier named 's3'" in cp.stderr, cp.stderr  # no [tiers.s3] here
