"""Chunk ids the agent offered leave its memory once the controller has them, and no id is ever wanted twice.

In: a tree of files sharing content across many offers, and a controller that answers each
offer, in stream order, from what it has stored and what it is still waiting for. Out: every
file's chunks stored once, no chunk sent unasked or twice, and the agent's set of offered ids
ending far smaller than the number of distinct chunks.
"""
from __future__ import annotations

import os
import random
import threading
from concurrent.futures import Future

from ragbackup.repo.chunking import ChunkerParams
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent.capture import pipeline
from ragbackup.agent.capture.pipeline import CapturePipeline, CaptureSettings
from fixtures.capture_events import capture_events

PARAMS = ChunkerParams(16 * 1024, 32 * 1024, 64 * 1024)


class _Controller:
    """Answers offers as controller/backup.py does: wants every id it has not stored (the writer's
    `missing`); an id wanted again before its chunk arrived would fail the real backup."""

    def __init__(self):
        self.stored: set[bytes] = set()
        self.wanted: set[bytes] = set()
        self.wants: list[agent_pb2.ChunkWant] = []

    def offer(self, o: agent_pb2.ChunkOffer) -> None:
        idx = [n for n, i in enumerate(o.ids) if i not in self.stored]
        want = {o.ids[n] for n in idx}
        assert len(want) == len(idx), "an offer names one id twice"
        assert not want & self.wanted, "an id offered again before its chunk arrived"
        self.wanted |= want
        self.wants.append(agent_pb2.ChunkWant(seq=o.seq, indexes=idx))

    def chunks(self, batch) -> None:
        for c in batch.chunks:
            assert c.id in self.wanted, "a chunk sent that was not asked for (or sent twice)"
            self.wanted.discard(c.id)
            self.stored.add(c.id)


def test_offered_ids_are_forgotten_once_sent_and_none_is_wanted_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "OFFER_COUNT", 5)  # many offers, each outstanding while others are built
    real_done = pipeline._done

    def late(result):  # chunks ready only after the offers that follow theirs have gone out
        fut = Future()
        threading.Timer(0.02, lambda: fut.set_result(real_done(result).result())).start()
        return fut
    monkeypatch.setattr(pipeline, "_done", late)
    rng = random.Random(7)
    contents = [rng.randbytes(rng.choice([100, 3000, 20_000])) for _ in range(60)]
    for n in range(400):  # each content in about 7 files, spread over the walk
        d = tmp_path / f"d{n % 13}"
        d.mkdir(exist_ok=True)
        (d / f"f{n:03d}").write_bytes(contents[rng.randrange(len(contents))])
    ctl = _Controller()
    settings = CaptureSettings(root=os.fsencode(str(tmp_path)), exclude=(), id_key=b"k" * 32, chunker=PARAMS,
                               compression_level=3, workers=2, parent=None, cache=None)
    pipe = CapturePipeline(settings, lambda: ctl.wants.pop(0))
    entries = []
    for kind, ev in capture_events(pipe):
        if kind == "offer":
            ctl.offer(ev.offer)
        elif kind == "chunks":
            ctl.chunks(ev.chunks)
        elif kind == "entries":
            entries.extend(ev.entries.entries)

    files = [e for e in entries if e.type == common_pb2.ENTRY_TYPE_FILE]
    assert len(files) == 400 and not ctl.wanted
    assert all(c in ctl.stored for e in files for c in e.chunks)
    assert len(pipe._offered) < len(ctl.stored) / 2
