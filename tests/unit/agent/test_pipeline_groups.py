"""Small files are read and hashed in groups: every entry still names exactly its own chunks, in walk order."""
from __future__ import annotations

import os
import random

from ragbackup.repo import chunking
from ragbackup.repo.chunking import ChunkerParams
from ragbackup.repo.ids import chunk_id
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent.capture import pipeline
from ragbackup.agent.capture.pipeline import CapturePipeline, CaptureSettings
from fixtures.capture_events import capture_events

KEY = b"k" * 32
PARAMS = ChunkerParams(16 * 1024, 32 * 1024, 64 * 1024)


def _run(root: str) -> tuple[list[common_pb2.Entry], dict[bytes, bytes], CapturePipeline]:
    """Capture `root` wanting every chunk; (entries in stream order, plaintext by chunk id, pipeline)."""
    offers: list[agent_pb2.ChunkOffer] = []

    def next_want():
        o = offers.pop(0)
        return agent_pb2.ChunkWant(seq=o.seq, indexes=range(len(o.ids)))
    settings = CaptureSettings(root=os.fsencode(root), exclude=(), id_key=KEY, chunker=PARAMS,
                               compression_level=3, workers=2, parent=None, cache=None)
    pipe = CapturePipeline(settings, next_want)
    entries, stored = [], {}
    for kind, ev in capture_events(pipe):
        if kind == "offer":
            offers.append(ev.offer)
        elif kind == "entries":
            entries.extend(ev.entries.entries)
        elif kind == "chunks":
            for c in ev.chunks.chunks:
                stored[c.id] = bytes(chunking.decompress(c.payload, c.compressed, c.raw_size))
    return entries, stored, pipe


def test_small_files_in_groups_keep_their_own_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "GROUP_FILES", 7)  # several groups, some cut short by a large file
    rng = random.Random(5)
    files = {}
    for n in range(150):
        rel = f"d{n % 9}/f{n:03d}.txt"
        size = rng.choice([0, 1, 100, 5000, 16 * 1024]) if n % 40 else 300_000  # a few large files between
        files[rel] = rng.randbytes(size)
        os.makedirs(tmp_path / os.path.dirname(rel), exist_ok=True)
        (tmp_path / rel).write_bytes(files[rel])
    entries, stored, pipe = _run(str(tmp_path))
    got = {e.path.decode(): e for e in entries if e.type == common_pb2.ENTRY_TYPE_FILE}
    assert set(got) == set(files)
    for rel, data in files.items():
        e = got[rel]
        assert e.size == len(data), rel
        assert b"".join(stored[c] for c in e.chunks) == data, rel
        if 0 < len(data) <= PARAMS.min_size:
            assert list(e.chunks) == [chunk_id(KEY, data)], rel
    assert pipe.stats.files == 150 and pipe.stats.bytes_read == sum(map(len, files.values()))


def test_a_small_file_gone_before_its_group_is_read_is_recorded_empty(tmp_path):
    settings = CaptureSettings(root=os.fsencode(tmp_path), exclude=(), id_key=KEY, chunker=PARAMS,
                               compression_level=3, workers=1, parent=None, cache=None)
    (tmp_path / "here").write_bytes(b"x" * 10)
    pipe = CapturePipeline(settings, lambda: None)
    try:
        result = pipe._small_files([os.fsencode(tmp_path / "gone"), os.fsencode(tmp_path / "here")])
    finally:
        pipe._jobs.close()
    assert result[0] == [] and [c for c, _ in result[1]] == [chunk_id(KEY, b"x" * 10)]


def test_a_group_closes_every_file_it_opened_ahead(tmp_path):
    settings = CaptureSettings(root=os.fsencode(tmp_path), exclude=(), id_key=KEY, chunker=PARAMS,
                               compression_level=3, workers=1, parent=None, cache=None)
    paths = []
    for n in range(40):
        (tmp_path / f"f{n}").write_bytes(bytes([n]) * (n * 100))
        paths.append(os.fsencode(tmp_path / f"f{n}"))
    pipe = CapturePipeline(settings, lambda: None)
    before = len(os.listdir("/proc/self/fd"))
    try:
        result = pipe._small_files(paths)
    finally:
        pipe._jobs.close()
    assert len(os.listdir("/proc/self/fd")) == before
    assert [len(r) for r in result] == [0] + [1] * 39
