"""The agent-wide capture budget: bounded, never deadlocked, cancellable."""
import os
import threading
import time

import pytest

from ragbackup import errors
from ragbackup.repo.chunking import ChunkerParams
from ragbackup.v1 import agent_pb2

from ragbackup.agent.capture.budget import ByteBudget
from ragbackup.agent.capture.pipeline import CapturePipeline, CaptureSettings


def test_try_acquire_respects_the_limit_but_a_lone_reservation_fits():
    b = ByteBudget(100)
    assert b.try_acquire(60) and not b.try_acquire(50) and b.try_acquire(40)
    b.release(100)
    assert b.used == 0 and b.try_acquire(500) and b.used == 500


def test_acquire_waits_for_a_release_and_can_be_cancelled():
    b = ByteBudget(10)
    b.acquire(10)
    got = threading.Event()
    t = threading.Thread(target=lambda: (b.acquire(5), got.set()))
    t.start()
    assert not got.wait(0.3)
    b.release(10)
    assert got.wait(5)
    t.join()
    with pytest.raises(errors.Cancelled):
        b.acquire(10, cancelled=lambda: True)


def _capture(root: str, budget: ByteBudget, sent: dict) -> None:
    """Run one pipeline to the end, wanting every offered chunk; record what was sent."""
    offers: list[agent_pb2.ChunkOffer] = []

    def next_want():
        o = offers.pop(0)
        return agent_pb2.ChunkWant(seq=o.seq, indexes=range(len(o.ids)))
    settings = CaptureSettings(root=os.fsencode(root), exclude=(), id_key=b"k" * 32,
                               chunker=ChunkerParams(16 * 1024, 32 * 1024, 64 * 1024), compression_level=3,
                               workers=2, parent=None, cache=None, budget=budget)
    for ev in CapturePipeline(settings, next_want).run():
        if isinstance(ev, bytes):
            ev = agent_pb2.CaptureEvent.FromString(ev)
        if ev.WhichOneof("kind") == "offer":
            offers.append(ev.offer)
        elif ev.WhichOneof("kind") == "chunks":
            sent[root] = sent.get(root, 0) + sum(c.raw_size for c in ev.chunks.chunks)


def test_concurrent_captures_share_a_small_budget_and_all_finish(tmp_path):
    budget = ByteBudget(96 * 1024)  # far less than any one capture reads
    roots, total = [], {}
    for n in range(3):
        root = tmp_path / f"c{n}"
        root.mkdir()
        for i in range(40):
            (root / f"small{i}").write_bytes(os.urandom(3000 + i))
        (root / "big").write_bytes(os.urandom(700_000 + n))
        roots.append(str(root))
        total[str(root)] = sum(p.stat().st_size for p in root.iterdir())
    sent: dict = {}
    threads = [threading.Thread(target=_capture, args=(r, budget, sent), daemon=True) for r in roots]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "captures deadlocked on the shared budget"
    assert sent == total
    assert budget.used == 0
