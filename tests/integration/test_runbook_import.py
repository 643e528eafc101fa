"""`ragctl import` of the old runbook's backups through the real daemons: secrets, time, mapping, facts.

In: agent and controller processes (E2EStack), runbook backups built with GNU tar as the bash
runbook did (inner tarballs, manifest.json, `cp .env .env.backup` beside them), as the outer
tarball or as the directory before it was tarred; a real redis-server and `chroma run` for the
data, and Docker containers of both for in-place restores. Out: .env.backup restored as the
config component's .env (0600) and never logged; the snapshot timed by the backup; --map choosing
between two chroma components; Redis and Chroma facts derived from the imported data and checked
by an in-place restore.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fixtures.components_e2e import (chroma_container, fill, populate_chroma, redis_client, redis_container,
                                     wait_redis)
from fixtures.dockerd import usrbind_volumes
from fixtures.procs import free_port
from fixtures.stack import write as _write
from ragbackup import errors
from ragbackup.controller import runbook_facts
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import Repository
from ragbackup.storage.local import LocalStorage

TS = "20250102_030000"  # in the file name
MANIFEST_TS = "20250101_020000"  # in manifest.json: the backup's own time wins
SECRET = b"OPENAI_API_KEY=sk-live-4f9a\nREDIS_PASSWORD=hunter2\n"


def write(path: str, data: bytes, mode: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _write(path, data, mode)


def tar(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["tar", *args], cwd=cwd, check=True, capture_output=True)


def runbook_dir(out: Path, sources: dict[str, tuple[Path, str]], env: bytes | None = SECRET,
                manifest: dict | None = None) -> Path:
    """BACKUP_DIR as the runbook leaves it: one tarball per entry of `sources` ({stem: (dir, member)}
    made with `tar -czf STEM.tar.gz -C DIR MEMBER`), .env.backup and manifest.json beside them."""
    d = out / f"rag-system-backup-{TS}"
    d.mkdir(parents=True)
    for stem, (cwd, member) in sources.items():
        tar("-czf", str(d / f"{stem}.tar.gz"), "-C", str(cwd), member)
    if env is not None:
        write(str(d / ".env.backup"), env, 0o644)
    if manifest is not None:
        (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def outer_tarball(d: Path) -> Path:
    tar("-czf", f"{d.name}.tar.gz", f"{d.name}/", cwd=d.parent)
    return d.parent / f"{d.name}.tar.gz"


def plain_sources(root: Path) -> dict[str, tuple[Path, str]]:
    """documents and a deploy dir whose config.tar.gz has no .env (the runbook copied it aside)."""
    write(str(root / "app" / "documents" / "a.txt"), b"uploaded\n", 0o644)
    write(str(root / "deploy" / "docker-compose.yml"), b"services: {}\n", 0o644)
    return {"documents": (root / "app", "documents"), "config": (root / "deploy", ".")}


def logs(stack) -> str:
    return "".join(Path(stack.workdir, f"{p}.log").read_text(errors="replace") for p in ("agent", "controller"))


# --------------------------------------------------------------------------- .env.backup and time


@pytest.mark.parametrize("as_directory", [False, True], ids=["tarball", "directory"])
def test_env_backup_restores_as_the_config_components_env_and_the_time_is_the_backups(
        e2e_stack, tmp_path, as_directory):
    stack = e2e_stack()
    stack.declare("documents", "paths", str(tmp_path / "live-docs"))
    stack.declare("config", "config", str(tmp_path / "live-config"))
    stack.start()
    d = runbook_dir(tmp_path / "out", plain_sources(tmp_path / "src"),
                    manifest={"timestamp": MANIFEST_TS, "version": "2.3", "components": ["documents", "config"]})
    if as_directory:
        (d / "logs").mkdir()
    cp = stack.ragctl("import", str(d if as_directory else outer_tarball(d)))
    sid = cp.stdout.strip()
    assert f"imported rag-system-backup-{TS}/.env.backup -> config as .env" in cp.stderr, cp.stderr
    assert "time 2025-01-01T02:00:00Z (from manifest.json)" in cp.stderr, cp.stderr

    m = stack.show(sid)
    assert (m["time"], m["source"]["time_from"]) == ("2025-01-01T02:00:00Z", "manifest.json")
    assert m["imported_at"] > "2026" and m["imported_at"] != m["time"]
    imported = {i["member"].rsplit("/", 1)[-1]: i for i in m["source"]["imported"]}
    assert imported[".env.backup"] == {"member": f"rag-system-backup-{TS}/.env.backup", "component": "config",
                                       "as": ".env", "bytes": len(SECRET), "entries": 1}
    assert imported["documents.tar.gz"]["component"] == "documents"
    if as_directory:
        assert {"member": "logs", "why": "not a regular file: not sent"} in json.loads(
            stack.ragctl("import", str(d), "--json").stdout)["source"]["skipped"]

    target = tmp_path / "restored"
    stack.ragctl("restore", sid, "--target", str(target), "--components", "config,documents")
    env = target / "config" / ".env"
    assert env.read_bytes() == SECRET
    assert oct(env.stat().st_mode & 0o777) == oct(0o600)
    assert (target / "config" / "docker-compose.yml").read_bytes() == b"services: {}\n"
    assert b"sk-live" not in logs(stack).encode() and "sk-live" not in stack.outputs()


def test_each_imported_component_is_stored_in_packs_of_its_own(e2e_stack, tmp_path):
    """An import writes each component's chunks to packs of their own, as a backup does: no pack holds
    chunks of two components (a restore of one from a tier then fetches only its own packs)."""
    stack = e2e_stack()
    stack.declare("documents", "paths", str(tmp_path / "live-docs"))
    stack.declare("config", "config", str(tmp_path / "live-config"))
    stack.start()
    src = tmp_path / "src"
    for i in range(12):
        write(str(src / "app" / "documents" / f"d{i}.bin"), os.urandom(40_000), 0o644)
        write(str(src / "deploy" / f"c{i}.yml"), os.urandom(20_000), 0o644)
    d = runbook_dir(tmp_path / "out", {"documents": (src / "app", "documents"), "config": (src / "deploy", ".")})
    sid = stack.ragctl("import", str(outer_tarball(d))).stdout.strip()
    with open(stack.local.passphrase_file, "rb") as f:
        repo = Repository.open(LocalStorage(stack.local.repo_dir), Unlocker("passphrase", f.read().strip()),
                               str(tmp_path / "cache"))
    try:
        repo.sync_index()
        comps, packs = repo.load_snapshot(sid)["components"], {}
        for name in ("documents", "config"):
            ids = [c for e in repo.read_tree(bytes.fromhex(t) for t in comps[name]["tree"]) for c in e.chunks]
            packs[name], absent = repo.index.packs_of(ids)
            assert len(ids) >= 12 and not absent
        assert packs["documents"] and packs["config"] and packs["documents"].isdisjoint(packs["config"])
    finally:
        repo.close()


def test_config_tarball_with_its_own_env_keeps_it(e2e_stack, tmp_path):
    stack = e2e_stack()
    stack.declare("config", "config", str(tmp_path / "live-config"))
    stack.start()
    src = tmp_path / "src"
    sources = plain_sources(src)
    write(str(src / "deploy" / ".env"), b"FROM_TARBALL=1\n", 0o600)
    cp = stack.ragctl("import", str(outer_tarball(runbook_dir(tmp_path / "out", sources))))
    assert "skipped rag-system-backup-" in cp.stderr and "config.tar.gz already holds .env (kept that one)" in cp.stderr
    target = tmp_path / "restored"
    stack.ragctl("restore", cp.stdout.strip(), "--target", str(target), "--components", "config")
    assert (target / "config" / ".env").read_bytes() == b"FROM_TARBALL=1\n"


# --------------------------------------------------------------------------- --map


def test_two_chroma_components_need_a_map_and_env_without_config_is_skipped(e2e_stack, tmp_path):
    stack = e2e_stack()
    stack.declare("chroma_a", "chroma", str(tmp_path / "a"))
    stack.declare("chroma_b", "chroma", str(tmp_path / "b"))
    stack.start()
    write(str(tmp_path / "src" / "chroma" / "chroma.sqlite3"), b"not really sqlite", 0o644)
    path = outer_tarball(runbook_dir(tmp_path / "out", {"chromadb": (tmp_path / "src", "chroma")}))

    refused = stack.ragctl("import", str(path), expect=errors.UsageError.exit_code)
    assert "chroma_a, chroma_b" in refused.stderr and "--map chromadb=chroma_a" in refused.stderr, refused.stderr
    unknown = stack.ragctl("import", str(path), "--map", "vectors=chroma_a", expect=errors.UsageError.exit_code)
    assert "no such member" in unknown.stderr and "chromadb.tar.gz" in unknown.stderr
    assert json.loads(stack.ragctl("snapshots", "--json").stdout) == []

    cp = stack.ragctl("import", str(path), "--map", "chromadb=chroma_b")
    m = stack.show(cp.stdout.strip())
    assert {n: (c["kind"], c["agent"]) for n, c in m["components"].items()} == {"chroma_b": ("chroma", "local")}
    assert "skipped rag-system-backup-" in cp.stderr and "no config component" in cp.stderr, cp.stderr
    assert any(w.startswith("chroma_b: facts not derived") for w in m["source"]["warnings"])
    assert (m["time"], m["source"]["time_from"]) == ("2025-01-02T03:00:00Z", "filename")


# --------------------------------------------------------------------------- facts


def redis_source(redis_server_factory, src: Path) -> tuple[Path, str]:
    """A redis-server's dump.rdb as the runbook tarred it (`-C /data .`): 300 keys in db0, 40 in db3."""
    server = redis_server_factory()
    fill(redis_client(server.port), "k", 300)
    fill(redis_client(server.port, db=3), "three", 40)
    redis_client(server.port).save()
    server.stop()
    return Path(server.data_dir), "."


def chroma_source(chroma_server_factory, src: Path) -> tuple[Path, str]:
    """A Chroma persist dir with the e2e collections, its server stopped, tarred as `-C PARENT data`."""
    server = chroma_server_factory(persist_dir=src / "chroma" / "data")
    populate_chroma(server.port)
    server.stop()
    return src / "chroma", "data"


EXPECTED_COLLECTIONS = {"chunks": (200, 48), "docs": (300, 32), "empty": (0, None)}


@pytest.mark.docker
@pytest.mark.chroma
@pytest.mark.parametrize("aof", [False, True], ids=["rdb", "aof"])
def test_imported_databases_get_facts_and_an_in_place_restore_verifies_them(
        redis_server_factory, chroma_server_factory, container_factory, redis_image, usrbind_image, e2e_stack,
        tmp_path, aof):
    """Into a Redis with AOF on too: the imported RDB becomes the AOF's base, else Redis starts empty."""
    sources = {"redis": redis_source(redis_server_factory, tmp_path / "src"),
               "chromadb": chroma_source(chroma_server_factory, tmp_path / "src")}
    path = outer_tarball(runbook_dir(tmp_path / "out", sources, env=None))

    redis_port, chroma_port = free_port(), free_port()
    rct = redis_container(container_factory, redis_image, redis_port, tmp_path / "redis-data", label="import",
                          aof=aof)
    cct = chroma_container(container_factory, usrbind_image, usrbind_volumes(), chroma_port,
                           tmp_path / "chroma-data", label="import")
    stack = e2e_stack()
    stack.declare("redis", "redis", str(tmp_path / "redis-data"), port=redis_port, service=f"docker:{rct.name}",
                  timeout_s=30)
    stack.declare("chroma", "chroma", str(tmp_path / "chroma-data"), url=f"http://127.0.0.1:{chroma_port}",
                  consistency="online", service=f"docker:{cct.name}", timeout_s=30)
    stack.start()

    cp = stack.ragctl("import", str(path))
    assert "warning" not in cp.stderr, cp.stderr
    m = stack.show(cp.stdout.strip())
    redis_facts, chroma_facts = m["components"]["redis"]["facts"], m["components"]["chroma"]["facts"]
    assert (redis_facts["dbsize"], redis_facts["total_keys"]) == ({"db0": 300, "db3": 40}, 340)
    assert {c["name"]: (c["count"], c["dimension"]) for c in chroma_facts["collections"]} == EXPECTED_COLLECTIONS
    assert redis_facts["derived"] == chroma_facts["derived"] == "import"

    assert redis_client(redis_port).dbsize() == 0
    for name in ("redis", "chroma"):  # one at a time: the agent's lazy `docker` import is not thread-safe on 3.11
        restored = json.loads(stack.ragctl("restore", m["id"], "--components", name, "--json").stdout)
        assert restored["components"][name]["mismatches"] == [], restored
    assert "not verified" not in Path(stack.workdir, "agent.log").read_text()
    assert redis_client(redis_port, db=3).dbsize() == 40
    rct.restart(timeout=10)  # what Redis loads at its next start is the import too
    wait_redis(redis_port)
    assert (redis_client(redis_port).dbsize(), redis_client(redis_port, db=3).dbsize()) == (300, 40)


def test_redis_facts_from_a_real_rdb_and_why_not_when_they_cannot_be(redis_server_factory, tmp_path):
    rdb = redis_source(redis_server_factory, tmp_path)[0] / "dump.rdb"
    work = tmp_path / "work"
    work.mkdir()
    facts = runbook_facts.redis_facts(str(rdb), str(work))
    assert (facts["dbsize"], facts["total_keys"], facts["dbfilename"]) == ({"db0": 300, "db3": 40}, 340, "dump.rdb")
    assert os.listdir(work) == [], "the throwaway server's dir is removed"
    with pytest.raises(runbook_facts.FactsUnavailable, match="no-such-redis-server is not on the controller's PATH"):
        runbook_facts.redis_facts(str(rdb), str(work), runbook_facts.RedisProbe(binary="no-such-redis-server"))
    bad = tmp_path / "bad.rdb"
    bad.write_bytes(b"REDIS0011" + os.urandom(5000))
    with pytest.raises(runbook_facts.FactsUnavailable, match="could not load the RDB"):
        runbook_facts.redis_facts(str(bad), str(work))


def test_redis_facts_count_the_whole_rdb_not_the_keys_loaded_so_far(redis_server_factory, tmp_path):
    """INFO answers while an RDB loads: a million keys take long enough to catch a partial count."""
    server = redis_server_factory(["--enable-debug-command", "yes"])
    client = redis_client(server.port)
    client.execute_command("DEBUG", "POPULATE", 1_000_000, "key", 100)
    client.save()
    server.stop()
    work = tmp_path / "work"
    work.mkdir()
    facts = runbook_facts.redis_facts(str(Path(server.data_dir) / "dump.rdb"), str(work))
    assert facts["dbsize"] == {"db0": 1_000_000}
