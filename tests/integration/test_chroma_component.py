"""Chroma component steps against a real `chroma run` server.

In: chroma_server_factory servers with collections of explicit embeddings (no model).
Out: online copy, restore over a wrecked persist dir, and fact checks that catch differences.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import threading

import pytest
from fixtures.components_e2e import fill_collections
from ragbackup import errors
from ragbackup.agent.kinds.chroma import api as capi, capture as ccap, place as cplace, verify as cverify
from ragbackup.agent.kinds.chroma import facts as cf
from ragbackup.agent.ready import NotReady
from ragbackup.clock import FakeClock

pytestmark = pytest.mark.chroma

OWNER = (1000, 1000) if os.geteuid() == 0 else (os.getuid(), os.getgid())
# (name, dimension, records, metric); each below Chroma's HNSW sync_threshold (1000).
COLLECTIONS = [("docs", 32, 300, "cosine"), ("chunks", 48, 250, "l2"), ("empty", 16, 0, "ip")]


def populate(server) -> None:
    fill_collections(server.client(), COLLECTIONS)


def target_for(server, **kw) -> capi.ChromaTarget:
    return capi.ChromaTarget(persist_dir=server.persist_dir, url=server.url, **kw)


def facts_of(copy: str, server, scratch) -> dict:
    """Facts of a captured copy, as a capture takes them (chromadb on a scratch copy of it)."""
    scratch.mkdir(exist_ok=True)
    target = target_for(server)
    scratch = os.path.relpath(scratch) if not os.path.isabs(copy) else str(scratch)
    return cf.facts_of_copy(copy, target, scratch, capi.server_version(target))


def online_facts(server, tmp_path) -> tuple[str, dict]:
    """An online copy of the server's persist dir and its facts."""
    copy = tmp_path / "staging"
    ccap.online_copy(server.persist_dir, str(copy))
    return str(copy), facts_of(str(copy), server, tmp_path / "scratch")


def test_facts_describe_the_collections(chroma_server, tmp_path):
    populate(chroma_server)
    copy, facts = online_facts(chroma_server, tmp_path)
    assert facts["engine"].startswith("chromadb ") and "unverified" not in facts
    assert capi.major_version(facts["version"]) >= 1
    by_name = {c["name"]: c for c in facts["collections"]}
    assert sorted(by_name) == sorted(n for n, *_ in COLLECTIONS)
    for name, dim, n, space in COLLECTIONS:
        col = by_name[name]
        assert (col["count"], col["space"]) == (n, space)
        assert len(col["probes"]) == (3 if n else 0)
        if n:
            assert col["dimension"] == dim
            for probe in col["probes"]:
                assert len(probe["embedding"]) == dim and len(probe["top_k"]) == 5
                assert probe["top_k"][0] == probe["id"]  # a stored vector finds itself first
    assert facts_of(copy, chroma_server, tmp_path / "again") == facts, "facts are deterministic"
    assert cverify.verify_facts(target_for(chroma_server), facts) == [], "the copy answers like the server"


def test_facts_leave_the_captured_copy_alone(chroma_server, tmp_path):
    populate(chroma_server)
    copy = tmp_path / "staging"
    ccap.online_copy(chroma_server.persist_dir, str(copy))
    before = {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    facts_of(str(copy), chroma_server, tmp_path / "scratch")
    after = {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after == before, "the engine opened a scratch copy, not the bytes being captured"


def test_facts_of_a_copy_under_relative_paths(chroma_server, tmp_path, monkeypatch):
    populate(chroma_server)
    monkeypatch.chdir(tmp_path)  # an agent's staging_dir may be given relative to its working dir
    ccap.online_copy(chroma_server.persist_dir, "staging")
    facts = facts_of("staging", chroma_server, tmp_path / "scratch-rel")
    assert {c["name"]: c["count"] for c in facts["collections"]} == {n: k for n, _, k, _ in COLLECTIONS}


def test_without_a_usable_engine_facts_say_why(tmp_path, monkeypatch):
    monkeypatch.setattr(cf, "engine_version", lambda: None)
    (tmp_path / "captured").mkdir()
    target = capi.ChromaTarget(persist_dir=str(tmp_path / "captured"))
    facts = cf.facts_of_copy(str(tmp_path / "captured"), target, str(tmp_path), "1.0.0")
    assert facts["unverified"] == "the chromadb package is not installed on the agent host"
    assert "collections" not in facts and facts["version"] == "1.0.0"
    assert sorted(os.listdir(tmp_path)) == ["captured"], "nothing copied"


def _engine_children() -> list[int]:
    """PIDs of this process's children running the facts engine."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"kinds.chroma.facts" in cmdline:
            pids.append(int(entry))
    return pids


def test_an_engine_not_told_to_read_is_ended(tmp_path):
    """A capture that fails before its copy is complete (the hold refused) leaves no engine behind."""
    target = capi.ChromaTarget(persist_dir=str(tmp_path / "none"))
    with pytest.raises(errors.UsageError):
        with cf.engine(target, "1.0.0", str(tmp_path)):
            assert len(_engine_children()) == 1
            raise errors.UsageError("the hold was refused")
    assert _engine_children() == []


def test_facts_say_why_they_are_missing():
    assert "not installed" in cf.unusable_engine("1.0.0", None)
    assert "may not read" in cf.unusable_engine("0.5.23", "1.5.9")
    assert cf.unusable_engine("1.0.0", "1.5.9") is None


def test_online_copy_then_restore_over_a_wrecked_dir(chroma_server, tmp_path):
    populate(chroma_server)
    target = target_for(chroma_server)
    staging = tmp_path / "staging"
    ccap.online_copy(chroma_server.persist_dir, str(tmp_path / "first"))
    facts = facts_of(str(tmp_path / "first"), chroma_server, tmp_path / "scratch")

    readers_ok = []

    def reader() -> None:  # the server stays busy and answering while we copy
        for _ in range(20):
            readers_ok.append(cverify.verify_facts(target, facts) == [])

    thread = threading.Thread(target=reader)
    thread.start()
    ccap.online_copy(chroma_server.persist_dir, str(staging))
    thread.join()
    assert readers_ok and all(readers_ok)
    assert ccap.quick_check(str(staging / "chroma.sqlite3")) == "ok"
    segments = [p for p in staging.iterdir() if p.is_dir()]
    assert segments and not any(p.name.startswith("chroma.sqlite3-") for p in staging.iterdir())
    src_db = os.path.join(chroma_server.persist_dir, "chroma.sqlite3")
    assert os.stat(staging / "chroma.sqlite3").st_mtime_ns == os.stat(src_db).st_mtime_ns

    chroma_server.stop()
    persist = chroma_server.persist_dir
    for seg in os.listdir(persist):
        if os.path.isdir(os.path.join(persist, seg)):
            shutil.rmtree(os.path.join(persist, seg))
    with open(src_db, "r+b") as f:  # wreck the database past its header
        f.seek(8192)
        f.write(os.urandom(8192))
    assert ccap.quick_check(src_db) != "ok"

    clock = FakeClock(dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc))
    aside = cplace.place_restored_data(str(staging), persist, OWNER, clock)
    assert aside == persist + ".corrupted.20260304_050607"
    assert os.path.isfile(os.path.join(aside, "chroma.sqlite3")) and not staging.exists()
    assert all(os.stat(os.path.join(d, n)).st_uid == OWNER[0]
               for d, dirs, files in os.walk(persist) for n in dirs + files)

    chroma_server.start()
    capi.wait_heartbeat(chroma_server.url, 30)
    assert cverify.verify_facts(target, facts) == []
    assert os.path.isdir(aside), "the old data is kept"


def test_verify_detects_differences(chroma_server, tmp_path):
    populate(chroma_server)
    target = target_for(chroma_server)
    _, facts = online_facts(chroma_server, tmp_path)
    client = chroma_server.client()
    docs = next(c for c in facts["collections"] if c["name"] == "docs")
    client.get_collection("docs").delete(ids=[docs["probes"][1]["top_k"][1]])
    client.delete_collection("chunks")
    client.create_collection("stranger", embedding_function=None)
    problems = [m.text() for m in cverify.verify_facts(target, facts)]
    assert "docs: count 299, expected 300" in problems
    assert "chunks: collection missing, expected present" in problems
    assert "stranger: collection present, expected absent" in problems
    assert any(p.startswith("docs: probe ") for p in problems), problems


def test_wait_heartbeat_times_out_typed(chroma_server):
    chroma_server.stop()
    with pytest.raises(NotReady, match="heartbeat not ready after 0.3s") as info:
        capi.wait_heartbeat(chroma_server.url, 0.3)
    assert isinstance(info.value, errors.Unavailable) and info.value.exit_code == 7
    with pytest.raises(errors.Unavailable, match=f"127.0.0.1:{chroma_server.port}"):
        capi.server_version(target_for(chroma_server))


def test_quick_check_reports_a_damaged_file(tmp_path):
    db = tmp_path / "t.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 2000)
    conn.commit()
    conn.close()
    assert ccap.quick_check(str(db)) == "ok"
    with open(db, "r+b") as f:
        f.seek(4096 * 3)
        f.write(b"\xff" * 4096 * 5)
    assert ccap.quick_check(str(db)) != "ok"


@pytest.mark.parametrize("version,major", [("1.5.9", 1), ("v0.6.3", 0), ("1.0.0", 1), ("2", 2)])
def test_major_version(version, major):
    assert capi.major_version(version) == major


@pytest.mark.parametrize("snapshot,running,ok", [
    ("1.0.0", "1.5.9", True), ("0.6.3", "0.6.0", True),
    ("0.6.3", "1.0.0", False), ("0.5.23", "0.6.3", False), ("2.0.0", "1.0.0", False),
])
def test_version_compatibility(snapshot, running, ok):
    if ok:
        assert capi.check_version_compatible(snapshot, running, force=False) is None
        return
    with pytest.raises(errors.UsageError, match="--force"):
        capi.check_version_compatible(snapshot, running, force=False)
    assert "forced" in capi.check_version_compatible(snapshot, running, force=True)


def test_major_version_rejects_garbage():
    with pytest.raises(errors.UsageError):
        capi.major_version("latest")


def test_probe_offsets():
    assert cf.probe_offsets(0, 3) == []
    assert cf.probe_offsets(2, 3) == [0, 1]
    assert cf.probe_offsets(300, 3) == [0, 100, 200]


def test_health_says_whether_backups_can_take_facts(chroma_server):
    from ragbackup.agent import checks
    from ragbackup.component_options import ChromaOptions
    from ragbackup.controller.component_spec import component_spec

    spec = component_spec("chroma", "chroma", chroma_server.persist_dir, (), ChromaOptions(url=chroma_server.url))
    result = checks.check(spec)
    assert result.ok and f"heartbeat ok at {chroma_server.url}" in result.detail
    assert f"facts read with chromadb {cf.engine_version()}" in result.detail, result.detail
