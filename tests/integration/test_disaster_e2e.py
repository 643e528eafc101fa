"""A simulated disaster on a running stack, repaired by one `ragctl restore latest`.

In: Redis and Chroma in containers (data bind-mounted, `service = "docker:NAME"`) and a documents
directory, backed up; then, with the containers still running, the Redis data wiped and its
dump.rdb overwritten, Chroma's segments deleted and its SQLite file overwritten, half the
documents deleted. Out: every service healthy again with the snapshot's facts, and every piece
of damaged data kept aside (`*.corrupted.*`) with the damaged content, never deleted.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from fixtures.components_e2e import (
    assert_chroma_matches,
    assert_redis_matches,
    chroma_container,
    fill,
    heartbeat_ok,
    only,
    populate_chroma,
    redis_client,
    redis_container,
    tree_digest,
)
from fixtures.dockerd import usrbind_volumes
from fixtures.procs import free_port

pytestmark = [pytest.mark.docker, pytest.mark.chroma]

GARBAGE = b"not an rdb file: the disk ate it\n" * 64


def make_documents(root: Path) -> None:
    for i in range(40):
        path = root / f"topic-{i % 4}" / f"doc-{i:03d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# document {i}\n" + "lorem ipsum " * (20 + i))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wreck_chroma(persist: Path) -> str:
    """Delete the vector segments and overwrite the SQLite file past its header; returns its new sha256."""
    for entry in persist.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
    db = persist / "chroma.sqlite3"
    with open(db, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(64 * 1024))
    return sha256(db)


def test_disaster_restore_brings_every_service_back(container_factory, redis_image, usrbind_image,
                                                   e2e_stack, tmp_path):
    rport, rdata = free_port(), tmp_path / "redis-data"
    rct = redis_container(container_factory, redis_image, rport, rdata)
    fill(redis_client(rport), "cache", 2000)
    fill(redis_client(rport, db=1), "session", 30)
    cport, cdata = free_port(), tmp_path / "chroma-data"
    cct = chroma_container(container_factory, usrbind_image, usrbind_volumes(), cport, cdata)
    populate_chroma(cport)
    docs = tmp_path / "documents"
    make_documents(docs)
    docs_before = tree_digest(str(docs))

    stack = e2e_stack()
    stack.declare("redis", "redis", str(rdata), port=rport, service=f"docker:{rct.name}", timeout_s=30)
    stack.declare("chroma", "chroma", str(cdata), url=f"http://127.0.0.1:{cport}", consistency="pause",
                  service=f"docker:{cct.name}", timeout_s=30)
    stack.declare("documents", "paths", str(docs))
    stack.start()
    stack.backup()
    components = stack.show()["components"]
    redis_facts, chroma_facts = components["redis"]["facts"], components["chroma"]["facts"]
    assert redis_facts["dbsize"] == {"db0": 2000, "db1": 30}

    # The disaster, with both containers still running.
    redis_client(rport).flushall()
    (rdata / "dump.rdb").write_bytes(GARBAGE)
    wrecked_db = wreck_chroma(cdata)
    for i, path in enumerate(sorted(docs.rglob("*.md"))):
        if i % 2:
            path.unlink()
    docs_left = tree_digest(str(docs))
    assert len(docs_left) == 20

    results = stack.restore()
    assert sorted(results) == ["chroma", "documents", "redis"]
    assert all(r["mismatches"] == [] for r in results.values())

    for ct in (rct, cct):
        ct.reload()
        assert ct.status == "running", ct.name
    assert redis_client(rport).ping() and heartbeat_ok(cport)
    assert_redis_matches(rport, redis_facts)
    assert redis_client(rport, db=1).get("session:29") == "value-29"
    assert_chroma_matches(cport, str(cdata), chroma_facts)
    assert tree_digest(str(docs)) == docs_before

    # Everything damaged is kept aside with its damaged content.
    redis_aside = Path(results["redis"]["moved_aside"])
    assert redis_aside == only(list(rdata.parent.glob(f"{rdata.name}.corrupted.*")))
    assert (redis_aside / "dump.rdb").read_bytes() == GARBAGE
    chroma_aside = Path(results["chroma"]["moved_aside"])
    assert chroma_aside == only(list(tmp_path.glob("chroma-data.corrupted.*")))
    assert sha256(chroma_aside / "chroma.sqlite3") == wrecked_db
    assert not [p for p in chroma_aside.iterdir() if p.is_dir()], "the deleted segments stay deleted there"
    docs_aside = Path(results["documents"]["moved_aside"])
    assert docs_aside == only(list(tmp_path.glob("documents.corrupted.*")))
    assert tree_digest(str(docs_aside)) == docs_left
