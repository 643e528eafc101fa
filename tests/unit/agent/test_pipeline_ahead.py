"""Compressing ahead of the want (wantrate.py): only wanted chunks leave, the budget is all given back,
and a capture whose chunks the controller mostly has stops compressing ahead."""
from __future__ import annotations

import os
import random

from ragbackup.repo import chunking
from ragbackup.repo.chunking import ChunkerParams
from ragbackup.repo.ids import chunk_id
from ragbackup.v1 import agent_pb2

from ragbackup.agent.capture import pipeline
from ragbackup.agent.capture.budget import ByteBudget
from ragbackup.agent.capture.pipeline import CapturePipeline, CaptureSettings
from ragbackup.agent.capture.wantrate import WantRate
from fixtures.capture_events import capture_events

KEY = b"k" * 32
PARAMS = ChunkerParams(16 * 1024, 32 * 1024, 64 * 1024)


def _capture(root, wanted_share: float, budget: ByteBudget | None = None):
    """Run a capture whose controller wants about `wanted_share` of each offer; (asked, sent, pipeline).

    As the real one, it never wants an id it answered before: it stored it, or already had it.
    """
    offers: list[agent_pb2.ChunkOffer] = []
    rng = random.Random(1)
    asked: set[bytes] = set()

    answered: set[bytes] = set()  # what it wanted it then stores; what it did not want it has

    def next_want():
        o = offers.pop(0)
        idx = [i for i in range(len(o.ids)) if o.ids[i] not in answered and rng.random() < wanted_share]
        asked.update(o.ids[i] for i in idx)
        answered.update(o.ids)
        return agent_pb2.ChunkWant(seq=o.seq, indexes=idx)

    settings = CaptureSettings(root=os.fsencode(root), exclude=(), id_key=KEY, chunker=PARAMS,
                               compression_level=3, workers=2, parent=None, cache=None, budget=budget)
    pipe = CapturePipeline(settings, next_want)
    sent: dict[bytes, bytes] = {}
    for kind, ev in capture_events(pipe):
        if kind == "offer":
            offers.append(ev.offer)
        elif kind == "chunks":
            for c in ev.chunks.chunks:
                assert c.id not in sent, "a chunk was sent twice"
                sent[c.id] = bytes(chunking.decompress(c.payload, c.compressed, c.raw_size))
        elif kind == "done":  # everything sent: nothing may still be held (the end would hide it)
            assert pipe._reserved == 0
            assert budget is None or budget.used == 0
    return asked, sent, pipe


def _files(root, n: int = 12, size: int = 600_000) -> None:
    rng = random.Random(7)
    for i in range(n):
        (root / f"f{i:02d}").write_bytes(rng.randbytes(size // 2) + b"text " * (size // 10))


def test_only_the_wanted_chunks_are_sent_and_they_decode_to_their_ids(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "OFFER_BYTES", 128 * 1024)  # many offers
    _files(tmp_path)
    budget = ByteBudget(2 * 1024 * 1024)
    asked, sent, pipe = _capture(tmp_path, 0.5, budget)
    assert set(sent) == asked and asked
    for cid, data in sent.items():
        assert chunk_id(KEY, data) == cid


def test_a_capture_the_controller_mostly_has_stops_compressing_ahead(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "OFFER_BYTES", 128 * 1024)
    _files(tmp_path)
    _, _, mostly_known = _capture(tmp_path, 0.05)
    _, _, all_new = _capture(tmp_path, 1.0)
    assert not mostly_known._rate.speculate
    assert all_new._rate.speculate


def test_want_rate_follows_recent_offers():
    rate = WantRate()
    assert rate.speculate  # a first capture wants everything
    for _ in range(4):
        rate.update(1000, 50)
    assert not rate.speculate
    for _ in range(6):
        rate.update(1000, 1000)
    assert rate.speculate
    rate.update(0, 0)  # an empty offer says nothing
    assert rate.speculate


def test_large_batches_are_split_into_jobs_without_splitting_a_chunk():
    views = [memoryview(bytes(n)) for n in (300, 300, 500, 1000, 10)]
    parts = list(pipeline._split(views, 600))
    assert [[len(v) for v in p] for p, _ in parts] == [[300, 300], [500, 1000], [10]]
    assert [size for _, size in parts] == [600, 1500, 10]
