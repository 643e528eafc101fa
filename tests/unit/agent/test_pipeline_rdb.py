"""The capture pipeline stores a Redis RDB by record only when the controller records that layout."""
from __future__ import annotations

import os

from ragbackup.repo import chunking, rdb, rdb_layout
from ragbackup.repo.chunking import ChunkerParams
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent.capture import pipeline
from ragbackup.agent.capture.pipeline import CapturePipeline, CaptureSettings
from fixtures.capture_events import capture_events

KEY = b"k" * 32
PARAMS = ChunkerParams(16 * 1024, 32 * 1024, 64 * 1024)


def _capture(root: str, layouts: tuple[str, ...]) -> tuple[dict[bytes, common_pb2.Entry], dict[bytes, bytes]]:
    offers: list[agent_pb2.ChunkOffer] = []

    def next_want():
        o = offers.pop(0)
        return agent_pb2.ChunkWant(seq=o.seq, indexes=range(len(o.ids)))
    settings = CaptureSettings(root=os.fsencode(root), exclude=(), id_key=KEY, chunker=PARAMS,
                               compression_level=3, workers=2, parent=None, cache=None, layouts=layouts)
    entries, stored = {}, {}
    for kind, ev in capture_events(CapturePipeline(settings, next_want)):
        if kind == "offer":
            offers.append(ev.offer)
        elif kind == "entries":
            entries.update((e.path, e) for e in ev.entries.entries)
        elif kind == "chunks":
            for c in ev.chunks.chunks:
                stored[c.id] = bytes(chunking.decompress(c.payload, c.compressed, c.raw_size))
    return entries, stored


def test_rdb_by_record_only_when_the_layout_is_named(redis_server, tmp_path, monkeypatch):
    c = redis_server.client()
    for i in range(3000):
        c.set(f"key:{i}", f"value {i} " * 10)
    c.save()
    with open(os.path.join(redis_server.data_dir, "dump.rdb"), "rb") as f:
        data = f.read()
    root = tmp_path / "root"
    root.mkdir()
    (root / "dump.rdb").write_bytes(data)
    unknown = data[:rdb.HEADER_LEN] + bytes([rdb.OP_MODULE_AUX]) + data[rdb.HEADER_LEN:]
    (root / "module.rdb").write_bytes(unknown)

    entries, stored = _capture(str(root), (rdb_layout.LAYOUT,))
    e = entries[b"dump.rdb"]
    assert e.layout == rdb_layout.LAYOUT and e.size == len(data)
    assert b"".join(rdb_layout.rebuild(stored[c] for c in e.chunks)) == data
    m = entries[b"module.rdb"]  # not known record by record: plain chunks
    assert m.layout == "" and b"".join(stored[c] for c in m.chunks) == unknown

    entries, stored = _capture(str(root), ())  # a controller that records no layouts
    e = entries[b"dump.rdb"]
    assert e.layout == "" and b"".join(stored[c] for c in e.chunks) == data

    monkeypatch.setattr(pipeline, "RDB_MAX_BYTES", len(data) - 1)  # too large to hold in memory
    entries, stored = _capture(str(root), (rdb_layout.LAYOUT,))
    assert entries[b"dump.rdb"].layout == ""
