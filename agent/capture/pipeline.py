"""The agent's capture pipeline: walk -> read/chunk -> hash+compress (threads) -> offer.

In: a directory, CaptureStart settings, the parent capture's cache and the
controller's ChunkWant replies. Out: CaptureEvents (entry batches, chunk offers,
wanted chunks, done) for the gRPC stream; unchanged files are not read, chunks
the controller already holds are never sent. Memory is bounded by MAX_INFLIGHT.
"""
from __future__ import annotations

import collections
import os
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ragbackup.repo import chunking
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent.cache import CacheReader, CacheWriter
from ragbackup.agent.capture.walk import walk

MAX_INFLIGHT = 64 * chunking.MiB  # raw bytes submitted to workers and not yet offered
OFFER_BYTES = 8 * chunking.MiB
OFFER_COUNT = 512
ENTRY_BATCH = 1000
OUTSTANDING_OFFERS = 2


@dataclass
class CaptureSettings:
    root: bytes
    exclude: tuple[str, ...]
    id_key: bytes
    chunker: chunking.ChunkerParams
    compression_level: int
    workers: int
    parent: CacheReader | None
    cache: CacheWriter | None
    facts_json: str = "{}"


@dataclass
class _Slot:
    """One step in emission order: a chunk future, or an entry that takes the ids before it."""

    future: Future | None = None
    entry: common_pb2.Entry | None = None
    stat: os.stat_result | None = None
    chunk_bytes: int = 0
    cached: bool = False


@dataclass
class _Offer:
    seq: int
    chunks: list[chunking.Prepared] = field(default_factory=list)
    size: int = 0


_TYPE = {"file": common_pb2.ENTRY_TYPE_FILE, "dir": common_pb2.ENTRY_TYPE_DIR,
         "symlink": common_pb2.ENTRY_TYPE_SYMLINK, "hardlink": common_pb2.ENTRY_TYPE_HARDLINK}


def _base_entry(rel: bytes, st: os.stat_result, kind: str) -> common_pb2.Entry:
    return common_pb2.Entry(path=rel, type=_TYPE[kind], mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                            gid=st.st_gid, mtime_ns=st.st_mtime_ns)


class CapturePipeline:
    """Produces the agent side of one Capture stream; `run` is a generator of CaptureEvents."""

    def __init__(self, settings: CaptureSettings, next_want: Callable[[], agent_pb2.ChunkWant]):
        self.s = settings
        self._next_want = next_want
        self.stats = agent_pb2.CaptureStats()
        self._pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="chunk")
        self._local = threading.local()
        self._slots: collections.deque[_Slot] = collections.deque()
        self._inflight = 0
        self._ids: list[bytes] = []
        self._ids_bytes = 0
        self._offered: set[bytes] = set()
        self._offer = _Offer(1)
        self._outstanding: collections.deque[_Offer] = collections.deque()
        self._entries: list[common_pb2.Entry] = []
        self._hardlinks: dict[tuple[int, int], bytes] = {}

    # --- per-thread work ------------------------------------------------------------

    def _prepare(self, data: bytes) -> chunking.Prepared:
        comp = getattr(self._local, "compressor", None)
        if comp is None:
            comp = self._local.compressor = chunking.Compressor(self.s.compression_level)
        return chunking.prepare(self.s.id_key, data, comp)

    # --- main loop ------------------------------------------------------------------

    def run(self) -> Iterator[agent_pb2.CaptureEvent]:
        try:
            for rel, st in walk(self.s.root, self.s.exclude):
                yield from self._visit(rel, st)
                yield from self._drain(MAX_INFLIGHT)
            yield from self._drain(0)
            yield from self._flush_entries(force=True)
            yield from self._flush_offer(force=True)
            while self._outstanding:
                yield from self._answer_want()
            done = agent_pb2.CaptureDone(stats=self.stats, facts_json=self.s.facts_json)
            yield agent_pb2.CaptureEvent(done=done)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _visit(self, rel: bytes, st: os.stat_result) -> Iterator[agent_pb2.CaptureEvent]:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            self.stats.dirs += 1
            self._slots.append(_Slot(entry=_base_entry(rel, st, "dir")))
        elif stat.S_ISLNK(mode):
            self.stats.symlinks += 1
            e = _base_entry(rel, st, "symlink")
            e.target = os.readlink(os.path.join(self.s.root, rel))
            self._slots.append(_Slot(entry=e))
        elif stat.S_ISREG(mode):
            yield from self._visit_file(rel, st)
        # sockets, fifos and devices are not captured

    def _visit_file(self, rel: bytes, st: os.stat_result) -> Iterator[agent_pb2.CaptureEvent]:
        if st.st_nlink > 1:
            first = self._hardlinks.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                e = _base_entry(rel, st, "hardlink")
                e.target = first
                self._slots.append(_Slot(entry=e))
                return
        self.stats.files += 1
        self.stats.bytes_total += st.st_size
        entry = _base_entry(rel, st, "file")
        cached = self.s.parent.lookup(rel, st) if self.s.parent else None
        if cached is not None:
            self.stats.files_reused += 1
            entry.size = st.st_size
            entry.chunks.extend(cached)
            self._slots.append(_Slot(entry=entry, stat=st, cached=True))
            return
        yield from self._read_file(rel, st, entry)

    def _read_file(self, rel: bytes, st: os.stat_result,
                   entry: common_pb2.Entry) -> Iterator[agent_pb2.CaptureEvent]:
        path = os.path.join(self.s.root, rel)
        try:
            f = open(path, "rb", buffering=0)
        except (FileNotFoundError, PermissionError):
            return  # vanished or unreadable: not captured
        with f:
            for data in self._cut(f, st.st_size):
                self._submit(data)
                if self._inflight > MAX_INFLIGHT:
                    yield from self._drain(MAX_INFLIGHT)
        self._slots.append(_Slot(entry=entry, stat=st))

    def _cut(self, f, size: int) -> Iterator[bytes]:
        """Chunks of an open file: one for small files, page-aligned for SQLite, else FastCDC."""
        head = f.read(self.s.chunker.min_size + 1)
        if len(head) <= self.s.chunker.min_size:
            if head:
                yield head
            return
        f.seek(0)
        page = chunking.sqlite_page_size(head[:100])
        if page is not None:
            yield from chunking.cut_fixed(f, chunking.sqlite_chunk_size(page))
            return
        for view in chunking.cut_stream(self.s.chunker, f):
            yield bytes(view)

    def _submit(self, data: bytes) -> None:
        self.stats.bytes_read += len(data)
        self._inflight += len(data)
        self._slots.append(_Slot(future=self._pool.submit(self._prepare, data), chunk_bytes=len(data)))

    # --- emission -------------------------------------------------------------------

    def _take_chunk(self, slot: _Slot) -> None:
        prep: chunking.Prepared = slot.future.result()
        self._inflight -= slot.chunk_bytes
        self._ids.append(prep.id)
        self._ids_bytes += prep.raw_size
        if prep.id not in self._offered:
            self._offered.add(prep.id)
            self._offer.chunks.append(prep)
            self._offer.size += len(prep.payload)

    def _take_entry(self, slot: _Slot) -> None:
        e = slot.entry
        if e.type == common_pb2.ENTRY_TYPE_FILE and not slot.cached:
            e.chunks.extend(self._ids)
            e.size = self._ids_bytes
        self._ids, self._ids_bytes = [], 0
        if e.type == common_pb2.ENTRY_TYPE_FILE and self.s.cache is not None:
            self.s.cache.record(e.path, slot.stat, list(e.chunks))
        self._entries.append(e)

    def _drain(self, limit: int) -> Iterator[agent_pb2.CaptureEvent]:
        """Emit finished slots in order; block on futures while in-flight bytes exceed `limit`."""
        while self._slots:
            slot = self._slots[0]
            if slot.future is not None:
                if not slot.future.done() and self._inflight <= limit:
                    break
                self._take_chunk(self._slots.popleft())
            else:
                self._take_entry(self._slots.popleft())
            yield from self._flush_offer()
            yield from self._flush_entries()

    def _flush_entries(self, force: bool = False) -> Iterator[agent_pb2.CaptureEvent]:
        if self._entries and (force or len(self._entries) >= ENTRY_BATCH):
            batch = common_pb2.EntryBatch(entries=self._entries)
            self._entries = []
            yield agent_pb2.CaptureEvent(entries=batch)

    def _flush_offer(self, force: bool = False) -> Iterator[agent_pb2.CaptureEvent]:
        o = self._offer
        if not o.chunks or not (force or o.size >= OFFER_BYTES or len(o.chunks) >= OFFER_COUNT):
            return
        self._offer = _Offer(o.seq + 1)
        self.stats.chunks_offered += len(o.chunks)
        yield agent_pb2.CaptureEvent(offer=agent_pb2.ChunkOffer(seq=o.seq, ids=[c.id for c in o.chunks]))
        self._outstanding.append(o)
        while len(self._outstanding) > OUTSTANDING_OFFERS - 1:
            yield from self._answer_want()

    def _answer_want(self) -> Iterator[agent_pb2.CaptureEvent]:
        """Read the controller's reply to the oldest offer and send the wanted chunks."""
        o = self._outstanding.popleft()
        want = self._next_want()
        if want.seq != o.seq:
            raise RuntimeError(f"protocol error: want for offer {want.seq}, expected {o.seq}")
        batch: list[common_pb2.Chunk] = []
        size = 0
        for i in want.indexes:
            p = o.chunks[i]
            batch.append(common_pb2.Chunk(id=p.id, payload=p.payload, compressed=p.compressed,
                                          raw_size=p.raw_size))
            size += len(p.payload)
            self.stats.chunks_sent += 1
            self.stats.bytes_sent += len(p.payload)
            if size >= OFFER_BYTES:
                yield agent_pb2.CaptureEvent(chunks=common_pb2.ChunkBatch(chunks=batch))
                batch, size = [], 0
        if batch:
            yield agent_pb2.CaptureEvent(chunks=common_pb2.ChunkBatch(chunks=batch))
