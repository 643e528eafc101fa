"""Chroma components end to end: agent + controller processes, driven only through `ragctl`.

In: `chroma run` as a host process (online capture) and in a container with its persist dir
bind-mounted (consistency online, pause and stop) or in the container's own layer (`container`,
pause), holding collections of explicit embeddings.
Out: after the data changed, a --target restore started by a fresh server, and an in-place restore
through `service = "docker:NAME"`, answer like the snapshot's facts: quick_check ok, the same
collections and counts, and the recorded top-k ids for the probe queries.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures.components_e2e import (
    assert_chroma_matches,
    chroma_container,
    copy_from_container,
    damage_chroma,
    heartbeat_ok,
    only,
    populate_chroma,
    sqlite_collections,
    sqlite_quick_check,
)
from fixtures.dockerd import usrbind_volumes
from fixtures.procs import free_port
from ragbackup.agent.kinds.chroma import api as capi, verify as cverify

pytestmark = pytest.mark.chroma


def check_facts(facts: dict, consistency: str) -> None:
    assert facts["kind"] == "chroma" and facts["consistency"] == consistency
    counts = {c["name"]: c["count"] for c in facts["collections"]}
    assert counts == {"docs": 300, "chunks": 200, "empty": 0}
    assert all(len(c["probes"]) == 3 for c in facts["collections"] if c["count"])


def test_host_chroma_online_backup_restores_into_a_fresh_server(chroma_server_factory, e2e_stack, tmp_path):
    src = chroma_server_factory()
    populate_chroma(src.port)
    stack = e2e_stack()
    stack.declare("chroma", "chroma", src.persist_dir, url=src.url, consistency="online", timeout_s=30)
    stack.start()
    stack.backup()
    facts = stack.facts("chroma")
    check_facts(facts, "online")
    damage_chroma(src.port)  # the live server moves on; the snapshot must not

    target = tmp_path / "restored"
    result = stack.restore("--components", "chroma", "--target", str(target))
    restored = target / "chroma"
    assert result["chroma"]["restored_path"] == str(restored)
    assert sqlite_quick_check(str(restored / "chroma.sqlite3")) == "ok"
    assert not [n for n in os.listdir(restored) if n.startswith("chroma.sqlite3-")]

    fresh = chroma_server_factory(persist_dir=restored)
    assert_chroma_matches(fresh.port, str(restored), facts)
    assert cverify.verify_facts(capi.ChromaTarget(persist_dir=str(restored), url=fresh.url), facts) == []
    assert "stranger" in {c.name for c in src.client().list_collections()}, "the source was left alone"


@pytest.mark.docker
@pytest.mark.parametrize("consistency,mount", [("online", "bind"), ("pause", "bind"), ("stop", "bind"),
                                               ("pause", "container")])
def test_container_chroma_in_place_restore(consistency, mount, container_factory, usrbind_image, e2e_stack,
                                           tmp_path):
    port = free_port()
    data = tmp_path / "chroma-data" if mount == "bind" else None  # else /data is in the container's layer
    ct = chroma_container(container_factory, usrbind_image, usrbind_volumes(), port, data)
    populate_chroma(port)
    where = {"container": ct.name, "container_path": "/data"} if data is None else {}
    stack = e2e_stack()
    stack.declare("chroma", "chroma", str(data or ""), url=f"http://127.0.0.1:{port}",
                  consistency=consistency, service=f"docker:{ct.name}", timeout_s=30, **where)
    stack.start()
    stack.backup()
    facts = stack.facts("chroma")
    check_facts(facts, consistency)
    ct.reload()
    assert ct.status == "running" and heartbeat_ok(port), "the backup gave the service back"

    damage_chroma(port)
    result = stack.restore("--components", "chroma")  # exit 0: the agent's own verification found no mismatch
    assert result["chroma"]["mismatches"] == []
    ct.reload()
    assert ct.status == "running"
    live = data or copy_from_container(ct, "/data/chroma.sqlite3", tmp_path / "live").parent
    assert_chroma_matches(port, str(live), facts)
    assert "stranger" not in sqlite_collections(str(live / "chroma.sqlite3"))

    # The changed persist dir was moved aside whole (container data: copied to the agent host), not deleted.
    aside = Path(result["chroma"]["moved_aside"])
    if data is None:
        assert aside.parent == Path(stack.workdir, "agent-staging")
        assert aside.name.startswith("chroma.corrupted.")
    else:
        assert aside == only(list(tmp_path.glob("chroma-data.corrupted.*")))
    assert "stranger" in sqlite_collections(str(aside / "chroma.sqlite3"))
