"""Chroma facts describe exactly the bytes captured, with a writer adding vectors during `ragctl backup`.

In: `chroma run` in a container (persist dir bind-mounted, `service = "docker:NAME"`) in each
consistency mode, a thread adding vectors over HTTP throughout the backup, the daemons as
processes driven through `ragctl`. Out: three backups per mode whose facts equal what the
restored copy answers (counts and probe top-k ids, read with chromadb's own client), in-place
restores that exit 0, `ragctl show` listing the collections as a table, and a failed
verification printed as a readable table and as JSON rows.
"""
from __future__ import annotations

import json
import random
import threading
import time

import pytest
from fixtures.components_e2e import (
    assert_chroma_matches,
    chroma_client,
    chroma_container,
    fill_collections,
    populate_chroma,
)
from fixtures.dockerd import usrbind_volumes
from fixtures.procs import free_port, wait_until

pytestmark = [pytest.mark.chroma, pytest.mark.docker]

RUNS = 3
DIMENSION = 32
BATCH = 4
# Below Chroma's HNSW sync threshold (1000) per collection: the writer gets a collection per run.
MAX_VECTORS = 900


class VectorWriter(threading.Thread):
    """Adds batches of vectors to one collection until stopped; rides out a paused or stopped server."""

    def __init__(self, port: int, collection: str):
        super().__init__(daemon=True)
        self.port, self.name_ = port, collection
        self.added = 0
        self.failures = 0
        self._stop_event = threading.Event()
        self._rnd = random.Random(collection)

    def run(self) -> None:
        col = chroma_client(self.port).get_or_create_collection(self.name_, embedding_function=None)
        while not self._stop_event.is_set() and self.added < MAX_VECTORS:
            ids = [f"{self.name_}-{self.added + i:05d}" for i in range(BATCH)]
            try:
                col.add(ids=ids, embeddings=[[self._rnd.uniform(-1, 1) for _ in range(DIMENSION)] for _ in ids])
                self.added += BATCH
            except Exception:  # the service is stopped for the copy: try again once it is back
                self.failures += 1
                time.sleep(0.05)
            time.sleep(0.005)

    def wait_for(self, n: int, timeout: float = 60) -> None:
        wait_until(lambda: self.added >= n or not self.is_alive(), timeout, f"{n} vectors added")
        assert self.added >= n, f"the writer stopped at {self.added}"

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=60)
        return self.added


def live_count(port: int, collection: str) -> int:
    return chroma_client(port).get_collection(collection, embedding_function=None).count()


def backup_under_writes(stack, port: int, collection: str) -> tuple[dict, int]:
    """`ragctl backup` while the writer adds vectors; the facts, and how many it added meanwhile."""
    writer = VectorWriter(port, collection)
    writer.start()
    writer.wait_for(2 * BATCH)
    before = writer.added
    stack.backup()
    writer.wait_for(writer.added + 2 * BATCH)  # still writing after the capture
    during = writer.stop() - before
    return stack.facts("chroma"), during


def start_stack(e2e_stack, container_factory, usrbind_image, tmp_path, consistency: str):
    port = free_port()
    data = tmp_path / "chroma-data"
    ct = chroma_container(container_factory, usrbind_image, usrbind_volumes(), port, data)
    populate_chroma(port)
    stack = e2e_stack()
    stack.declare("chroma", "chroma", str(data), url=f"http://127.0.0.1:{port}", consistency=consistency,
                  service=f"docker:{ct.name}", timeout_s=60)
    stack.start()
    return stack, ct, port, data


@pytest.mark.parametrize("consistency", ["online", "pause", "stop"])
def test_facts_equal_the_restored_copy_under_a_writer(consistency, container_factory, usrbind_image, e2e_stack,
                                                      tmp_path):
    stack, ct, port, data = start_stack(e2e_stack, container_factory, usrbind_image, tmp_path, consistency)
    for run in range(RUNS):
        collection = f"live-{run}"
        facts, during = backup_under_writes(stack, port, collection)
        assert facts["consistency"] == consistency and "unverified" not in facts
        recorded = {c["name"]: c["count"] for c in facts["collections"]}
        assert during > 0 and recorded[collection] > 0, (during, recorded)
        live = live_count(port, collection)
        print(f"{consistency} run {run}: {during} vectors added during the backup, facts {recorded[collection]},"
              f" live {live} before the restore")
        assert live > recorded[collection], "the writer went on after the capture"

        result = stack.restore("--components", "chroma")  # exit 0: the restored server answers like the facts
        assert result["chroma"]["mismatches"] == []
        ct.reload()
        assert ct.status == "running"
        assert_chroma_matches(port, str(data), facts)  # counts and probe top-k ids, by chromadb's own client
        assert live_count(port, collection) == recorded[collection]


def test_a_failed_verification_is_a_readable_list(container_factory, usrbind_image, e2e_stack,
                                                  chroma_server_factory, tmp_path):
    stack, ct, port, data = start_stack(e2e_stack, container_factory, usrbind_image, tmp_path, "online")
    stack.backup()
    shown = stack.ragctl("show", "latest").stdout.splitlines()
    assert ["collection", "count", "dimension", "metric", "probes"] in [line.split() for line in shown], shown
    assert ["docs", "300", "32", "cosine", "3", "x", "top-5"] in [line.split() for line in shown], shown
    other = chroma_server_factory()  # the restored server is checked at the wrong URL: another Chroma
    fill_collections(other.client(), [("docs", DIMENSION, 250, "cosine")])
    stack.declare("chroma", "chroma", str(data), url=other.url, consistency="online",
                  service=f"docker:{ct.name}", timeout_s=60)

    cp = stack.ragctl("restore", "latest", "--components", "chroma", "--json", expect=11)
    print(cp.stderr)
    header = next(line for line in cp.stderr.splitlines() if line.strip().startswith("component"))
    assert header.split() == ["component", "collection", "check", "expected", "found"], cp.stderr
    rows = [line.split() for line in cp.stderr.splitlines()]
    assert ["chroma", "docs", "count", "300", "250"] in rows, cp.stderr
    assert ["chroma", "chunks", "collection", "present", "missing"] in rows, cp.stderr
    assert "{" not in cp.stderr, "no raw dict"

    error = json.loads(cp.stdout)["error"]  # --json: the same rows as data on stdout
    assert error["kind"] == "VerificationFailed" and error["exit_code"] == 11
    assert {"component": "chroma", "collection": "docs", "check": "count", "expected": "300",
            "found": "250"} in error["mismatches"]
    assert error["mismatch_count"] >= len(error["mismatches"]) >= 3
