"""The agent's capture pipeline: walk -> read/chunk -> hash (threads) -> offer -> compress wanted -> send.

In: a directory, CaptureSettings (keys, chunker, the parent capture's cache) and
the controller's ChunkWant replies. Out: CaptureEvents (entry batches, chunk
offers, wanted chunks, done) for the gRPC stream. Unchanged files are not read;
chunks are hashed first and only those the controller lacks are sent. They are
compressed once wanted, or in the same job as their hashing while the controller
has recently wanted nearly all it was offered (wantrate.py). Memory is bounded by
the agent-wide byte budget (budget.py), MAX_INFLIGHT and OUTSTANDING_OFFERS offers.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ragbackup import entry_parts, wire
from ragbackup.repo import chunking, dictionary, rdb, rdb_capture, rdb_layout
from ragbackup.repo.ids import chunk_id
from ragbackup.repo.tree import ROOT, ChunkIds, IdBuffer, SpilledIds, hole_bytes
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent.cache import CacheReader, CacheWriter
from ragbackup.agent.capture.budget import ByteBudget
from ragbackup.agent.capture.walk import data_regions, find_holes, walk_ahead
from ragbackup.agent.capture.wantrate import WantRate
from ragbackup.agent.workpool import JobGroup

log = logging.getLogger("ragbackup.agent")

MAX_INFLIGHT = 4 * chunking.MiB  # raw bytes handed to workers and not yet taken into an offer
# File bytes held from read until sent or found unwanted, for all of an agent's
# concurrent captures together: about what one capture alone would hold.
CAPTURE_BUDGET = 8 * chunking.MiB
OFFER_BYTES = 2 * chunking.MiB  # raw bytes per offer
OFFER_COUNT = 1024
SEND_BATCH = 2 * chunking.MiB  # payload bytes per ChunkBatch message
# Events the pipeline's thread may run ahead of gRPC's send of the previous one
# (ragbackup/ahead.py): about two batches' payloads beyond the budget.
SEND_AHEAD = 2
COMPRESS_GROUP = 1 * chunking.MiB  # raw bytes per compression job
# Raw bytes per hashing job of a large file: a read batch (4 MiB, the largest chunk)
# is split so that every worker has part of it while the next batch is read.
JOB_BYTES = 1 * chunking.MiB
ENTRY_BATCH = 1000
# Small files are read and hashed in groups, one pool job each: a job per file costs
# a thread hand-off per file (18,000 in a RAG document store).
GROUP_FILES = 64
GROUP_BYTES = 1 * chunking.MiB
OUTSTANDING_OFFERS = 2
# A Redis RDB up to this size is captured by record (rdb_capture.py); a larger one is read as
# any file. The capture's own memory does not bound it (70 MB of RSS for the benchmark's 280 MB
# RDB, about the same at 840 MB). Its entry names a chunk of about 1 KiB a group: in one message
# (34 MB at 1 GiB, under MAX_MESSAGE's 64 MiB) to a controller that reads no split entries,
# RDB_MAX_BYTES; in parts (entry_parts.py) to one that does, RDB_MAX_BYTES_PARTS, where what
# bounds it is the ids each daemon holds while the file is taken (32 bytes a KiB: 256 MB at
# 8 GiB) and the spill, about the file's size, in the scratch dir.
RDB_MAX_BYTES = 1024 * chunking.MiB
RDB_MAX_BYTES_PARTS = 8 * 1024 * chunking.MiB
CHUNKS_FIELD = agent_pb2.CaptureEvent.DESCRIPTOR.fields_by_name["chunks"].number

Hashed = tuple[bytes, memoryview | bytes]  # (chunk id, plaintext)
# A chunk hashed and then either kept as plaintext (Hashed) until the controller wants
# it, or compressed at once (a wire.WireChunk, see wantrate.py).
Ready = Hashed | wire.WireChunk


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
    budget: ByteBudget | None = None  # shared by the agent's concurrent captures
    pool: ThreadPoolExecutor | None = None  # the agent's workers; None: `workers` threads of our own
    cancelled: Callable[[], bool] = lambda: False
    # The repository's dictionary for small chunks; None: train one from the first
    # SQLite database of at least dictionary.MIN_TRAIN_FILE bytes, and send it.
    dictionary: bytes | None = None
    # File layouts the controller records (CaptureStart.layouts): rdb_layout.LAYOUT there
    # lets Redis RDB files be captured by record.
    layouts: tuple[str, ...] = ()
    # Entries carry their chunk ids joined in one field (CaptureStart.joined_chunk_ids).
    joined_ids: bool = False
    # The controller reads an entry's ids split over several entries (CaptureStart.entry_parts).
    entry_parts: bool = False
    # Where an RDB's records are spilled while sorted by key (the agent's staging dir);
    # None: the system's temporary directory.
    scratch: str | None = None


# A file's chunk ids: joined (32 bytes each), or, when the controller reads split entries, a long
# list kept in an unlinked file of the scratch dir (an RDB of 4,000,000 keys names 1,090,000 chunks:
# 35 MB held through its capture and its cache row, at every backup, changed or not).
Ids = bytes | bytearray | SpilledIds


def _id_count(ids: Ids) -> int:
    return len(ids) if isinstance(ids, SpilledIds) else len(ids) // 32


@dataclass
class _Slot:
    """One step in emission order: hashed chunks (a future), or an entry taking the ids before it."""

    future: Future | None = None
    entry: common_pb2.Entry | None = None
    stat: os.stat_result | None = None
    raw: int = 0
    cached: bool = False
    chunks: bool = False  # hashed chunks: of `future`, or of a small-file group still being gathered
    index: int = -1  # position of this file in its group job's result (-1: the job is this slot's alone)
    ids: Ids = b""  # a cached file's chunk ids, joined (or spilled: a long list of the cache's)


@dataclass
class _Offer:
    seq: int
    chunks: list[Ready] = field(default_factory=list)
    size: int = 0  # raw bytes of its chunks
    held: int = 0  # bytes of the budget they hold: raw, or the payload once compressed ahead


_TYPE = {"file": common_pb2.ENTRY_TYPE_FILE, "dir": common_pb2.ENTRY_TYPE_DIR,
         "symlink": common_pb2.ENTRY_TYPE_SYMLINK, "hardlink": common_pb2.ENTRY_TYPE_HARDLINK}


_local = threading.local()
COMPRESSORS_PER_THREAD = 4


def _compressor(level: int, dictionary: bytes | None) -> chunking.Compressor:
    """This worker thread's Compressor for (level, dictionary); a few are kept per thread.

    Worker threads serve every capture of the agent, and building a Compressor with a
    dictionary costs a precomputed table, so one is not rebuilt per job.
    """
    cache: dict[tuple[int, bytes | None], chunking.Compressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    key = (level, dictionary)
    comp = cache.get(key)
    if comp is None:
        if len(cache) >= COMPRESSORS_PER_THREAD:
            del cache[next(iter(cache))]
        comp = cache[key] = chunking.Compressor(level, dictionary)
    return comp


def _raw_size(item: Ready) -> int:
    return item[3] if len(item) == 4 else len(item[1])


def _held(item: Ready) -> int:
    """Bytes an offered chunk keeps alive: its plaintext, or its payload once compressed ahead."""
    return len(item[1])


def _entry_event(entries: list[tuple[common_pb2.Entry, Ids]],
                 joined: bool = False) -> agent_pb2.CaptureEvent:
    """An entry batch of `entries`, each with its chunk ids (joined) put in: one copy of them,
    as one field (Entry.chunk_ids) when `joined` (the controller asked for it), else one field an id."""
    event = agent_pb2.CaptureEvent()
    add = event.entries.entries.add
    for e, ids in entries:
        out = add()
        out.CopyFrom(e)  # without its chunk ids, so far
        if not ids:
            continue
        if isinstance(ids, SpilledIds):  # only for a controller that reads parts: never more than a part
            out.chunk_ids = b"".join(ids.blocks(len(ids) * 32))
        elif joined:
            out.chunk_ids = bytes(ids)
        else:
            out.chunks.extend(_each_id(ids))
    return event


def _entry_parts_events(
        entries: list[tuple[common_pb2.Entry, Ids]]) -> Iterator[agent_pb2.CaptureEvent]:
    """The entry batches of `entries` (as _entry_event, ids joined) for a controller that reads
    split entries: an entry of more than entry_parts.PART_IDS ids goes out alone, an event a
    part, between the batches of the entries before and after it (entries stay in order)."""
    for run, split in entry_parts.runs(entries, lambda item: _id_count(item[1])):
        if not split:
            yield _entry_event(run, True)
            continue
        (e, ids), = run
        head = common_pb2.Entry()
        head.CopyFrom(e)
        for part in entry_parts.split_entry(head, ids):
            yield agent_pb2.CaptureEvent(entries=common_pb2.EntryBatch(entries=[part]))
        if isinstance(ids, SpilledIds):
            ids.close()


def _each_id(ids: bytes | bytearray) -> Iterator[bytes]:
    """The chunk ids joined in `ids`, one at a time."""
    with memoryview(ids) as view:
        for i in range(0, len(view), 32):
            yield bytes(view[i:i + 32])


def _split(views: list, limit: int) -> Iterator[tuple[list, int]]:
    """`views` in order, in runs of about `limit` bytes (a chunk is never split), with each run's size."""
    part: list = []
    size = 0
    for v in views:
        part.append(v)
        size += len(v)
        if size >= limit:
            yield part, size
            part, size = [], 0
    if part:
        yield part, size


def _done(result) -> Future:
    """A future already holding `result` (chunks compressed ahead wait in the same queue as jobs)."""
    f: Future = Future()
    f.set_result(result)
    return f


def _open_ahead(path: bytes):
    """`path` opened unbuffered, with the kernel asked to read all of it now; None if it is gone or unreadable."""
    try:
        f = open(path, "rb", buffering=0)
    except (FileNotFoundError, PermissionError):
        return None
    try:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass  # a hint only: the read below works without it
    return f


def _base_entry(rel: bytes, st: os.stat_result, kind: str) -> common_pb2.Entry:
    return common_pb2.Entry(path=rel, type=_TYPE[kind], mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
                            gid=st.st_gid, mtime_ns=st.st_mtime_ns)


class CapturePipeline:
    """Produces the agent side of one Capture stream; `run` is a generator of CaptureEvents."""

    def __init__(self, settings: CaptureSettings, next_want: Callable[[], agent_pb2.ChunkWant]):
        self.s = settings
        self._next_want = next_want
        self.stats = agent_pb2.CaptureStats()
        self._jobs = JobGroup(settings.pool, settings.workers, "chunk")
        self._slots: collections.deque[_Slot] = collections.deque()
        self._inflight = 0
        self._reserved = 0  # of the shared budget: bytes read and not yet sent or found unwanted
        # The chunk ids of the file being taken, joined (32 bytes each): as bytes objects in a
        # list (73 bytes an id), copied into the entry, listed again for the cache and the entry
        # copied twice into its event, an RDB of 1,000,000 keys (272,000 chunks) took the
        # resident set from 97 to 149 MB while its entry went out; now 85 to 92 MB.
        # A long list moves to the scratch dir once over tree.SPILL_AFTER, when split entries let
        # it go out in parts (_spill).
        self._spill = self._scratch() if settings.entry_parts and settings.joined_ids else None
        self._ids = IdBuffer(self._spill)
        self._ids_bytes = 0
        # Ids offered and not yet known to the controller: an id offered again before the
        # controller stored it would be wanted twice. Kept per capture, this set held 110
        # bytes a chunk (30 MB more from 25,000 to 300,000 files); an offer's ids now leave
        # it once the controller answered and every chunk it wanted has gone out on the stream
        # (a later offer reaches the controller after them: it answers "stored").
        self._offered: set[bytes] = set()
        self._retiring: collections.deque[tuple[int, list[bytes]]] = collections.deque()  # (jobs queued, ids)
        self._queued = 0  # send jobs queued so far
        self._emitted = 0  # send jobs whose chunks have been yielded
        self._offer = _Offer(1)
        self._outstanding: collections.deque[_Offer] = collections.deque()
        self._sending: collections.deque[tuple[Future, int]] = collections.deque()  # (job, raw bytes)
        self._entries: list[tuple[common_pb2.Entry, Ids]] = []  # (entry, its chunk ids)
        self._hardlinks: dict[tuple[int, int], bytes] = {}
        self._dictionary = settings.dictionary
        self._may_train = settings.dictionary is None
        self._group: list[bytes] = []  # small files gathered for one job
        self._group_slots: list[_Slot] = []
        self._group_bytes = 0
        self._rate = WantRate()

    # --- worker jobs (run in the pool; hashing and zstd release the GIL) ---------------

    def _hash(self, views: list[memoryview | bytes]) -> list[Hashed]:
        key = self.s.id_key
        return [(chunk_id(key, v), v) for v in views]

    def _hash_compress(self, views: list[memoryview | bytes]) -> list[wire.WireChunk]:
        """Hash and compress each chunk (compressing ahead of the want, see wantrate.py)."""
        return self._compress(self._hash(views))[0]

    def _prepare(self, views: list[memoryview | bytes], ahead: bool) -> list[Ready]:
        return self._hash_compress(views) if ahead else self._hash(views)

    def _read_small(self, f, ahead: bool) -> list[Ready]:
        """Read and hash (`ahead`: and compress) an open small file, all of it should it have grown."""
        with f:
            return [h for views in chunking.file_batches(self.s.chunker, f) for h in self._prepare(views, ahead)]

    def _small_files(self, paths: list[bytes], ahead: bool = False) -> list[list[Ready]]:
        """Read and hash each small file of a group, in one job.

        The files are opened and their reads requested from the kernel at once
        (_open_ahead), so a cold disk serves the group's reads together rather than
        one file's read at a time. A file that vanished or is unreadable gives [],
        and is recorded empty, as a large file is.
        """
        files = [_open_ahead(p) for p in paths]
        try:
            return [self._read_small(f, ahead) if f is not None else [] for f in files]
        finally:
            for f in files:
                if f is not None:
                    f.close()

    def _compress(self, items: list[Hashed]) -> tuple[list[wire.WireChunk], int]:
        """Wire chunks for `items` and their payload bytes in total."""
        comp = _compressor(self.s.compression_level, self._dictionary)
        out, size = [], 0
        for cid, data in items:
            payload, compressed = comp.compress(data)
            out.append((cid, payload, compressed, len(data)))
            size += len(payload)
        return out, size

    # --- main loop ------------------------------------------------------------------

    def run(self) -> Iterator[agent_pb2.CaptureEvent | bytes]:
        """The agent's side of the stream; chunk batches come as pre-encoded CaptureEvent bytes."""
        try:
            self._visit_root()
            for rel, st in walk_ahead(self.s.root, self.s.exclude):
                yield from self._visit(rel, st)
                yield from self._drain(MAX_INFLIGHT)
            yield from self._drain(-1)
            yield from self._flush_entries(force=True)
            yield from self._flush_offer(force=True)
            while self._outstanding:
                yield from self._answer_want()
            yield from self._emit_sent(block=True)
            done = agent_pb2.CaptureDone(stats=self.stats, facts_json=self.s.facts_json)
            yield agent_pb2.CaptureEvent(done=done)
        finally:
            self._jobs.close()
            self._release(self._reserved)

    def _visit_root(self) -> None:
        """The component's own directory first (path "."): its mode, owner and mtime are restored too."""
        try:
            st = os.lstat(self.s.root)
        except OSError:
            return  # the walk names the problem
        if stat.S_ISDIR(st.st_mode):
            self._slots.append(_Slot(entry=_base_entry(ROOT, st, "dir")))

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
        path = os.path.join(self.s.root, rel)
        cached = self.s.parent.lookup(rel, st, self._spill) if self.s.parent else None
        if cached is not None and (not cached.layout or cached.layout in self.s.layouts):
            self.stats.files_reused += 1
            entry.size = st.st_size
            entry.layout = cached.layout
            entry.holes.extend(cached.holes)
            self._slots.append(_Slot(entry=entry, stat=st, cached=True, ids=cached.ids))
            return
        if st.st_size > self.s.chunker.min_size and st.st_blocks * 512 < st.st_size:
            holes = find_holes(path, st.st_size)
            if holes:  # sparse: read only its data (the cache keeps its holes for the next capture)
                entry.holes.extend(holes)
                yield from self._read_large(path, holes)
                self._slots.append(_Slot(entry=entry, stat=st))
                return
        if st.st_size <= self.s.chunker.min_size:
            yield from self._reserve(st.st_size)
            self._gather(path, st.st_size)
        else:
            if self._may_train and st.st_size >= dictionary.MIN_TRAIN_FILE:
                yield from self._train(path)
            if not self._by_record(st) or not (yield from self._read_rdb(path, entry)):
                self._note_large_rdb(path, st)
                yield from self._read_large(path)
        self._slots.append(_Slot(entry=entry, stat=st))

    def _rdb_max(self) -> int:
        """The largest RDB taken by record: higher when the controller reads split entries."""
        return RDB_MAX_BYTES_PARTS if self.s.entry_parts and self.s.joined_ids else RDB_MAX_BYTES

    def _by_record(self, st: os.stat_result) -> bool:
        return rdb_layout.LAYOUT in self.s.layouts and st.st_size <= self._rdb_max()

    def _note_large_rdb(self, path: bytes, st: os.stat_result) -> None:
        """Warn when `path` is a Redis RDB read as any file only because it is over _rdb_max():
        its records are not deduplicated, so each backup after a restart of Redis stores it again."""
        if rdb_layout.LAYOUT not in self.s.layouts or st.st_size <= self._rdb_max():
            return
        try:
            with open(path, "rb", buffering=0) as f:
                head = f.read(rdb.HEADER_LEN)
        except OSError:
            return
        if rdb.version_of(head) is not None:
            log.warning("%s: a Redis RDB of %d bytes, over the %d stored by record; stored as any file "
                        "(a restart of Redis rewrites it in a new key order, and the next backup stores most "
                        "of it again)", os.fsdecode(path), st.st_size, self._rdb_max())

    def _read_rdb(self, path: bytes, entry: common_pb2.Entry) -> Iterator[agent_pb2.CaptureEvent]:
        """Capture a Redis RDB file by record (rdb_layout.py); returns False, having sent nothing,
        for any other file and for an RDB the parser does not know (it is then read as any file).

        Records are stored in key order, not file order: rdb_capture.py sorts them through a
        spill file in the scratch dir, in bounded memory, before the first chunk comes out.
        """
        try:
            f = open(path, "rb", buffering=0)
        except (FileNotFoundError, PermissionError):
            return False
        with f, contextlib.closing(rdb_capture.canonicalise_file(f.fileno(), self._scratch())) as chunks:
            if rdb.version_of(f.read(rdb.HEADER_LEN)) is None:
                return False
            try:
                first = next(chunks)
            except (rdb.Unknown, OSError, ValueError):  # not known by record; no room to spill; the file shrank
                return False
            for part, size in _split(itertools.chain((first,), chunks), JOB_BYTES):
                yield from self._reserve(size)
                self._submit(self._prepare, part, size)
                if self._inflight > MAX_INFLIGHT:
                    yield from self._drain(MAX_INFLIGHT)
        entry.layout = rdb_layout.LAYOUT
        entry.size = rdb_layout.Descriptor.decode(first).size
        return True

    def _scratch(self) -> str | None:
        if self.s.scratch is not None:
            os.makedirs(self.s.scratch, mode=0o700, exist_ok=True)
        return self.s.scratch

    def _train(self, path: bytes) -> Iterator[agent_pb2.CaptureEvent]:
        """Train the capture's dictionary from `path` if it is a SQLite database; send it first.

        Chunks compressed from here on may use it; the event goes out before any of them.
        """
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            page = chunking.sqlite_page_size(os.pread(fd, 100, 0))
            if page is None:
                return
            self._may_train = False
            trained = dictionary.train_from_file(fd, os.fstat(fd).st_size, chunking.sqlite_chunk_size(page))
        finally:
            os.close(fd)
        if trained:
            self._dictionary = trained
            yield agent_pb2.CaptureEvent(dictionary=trained)

    def _read_large(self, path: bytes, holes: list[int] | None = None) -> Iterator[agent_pb2.CaptureEvent]:
        """Read, cut and hash a file; with `holes`, only the data between them, each run cut on its own."""
        try:
            f = open(path, "rb", buffering=0)
        except (FileNotFoundError, PermissionError):
            return  # vanished or unreadable: recorded as empty
        with f:
            streams = [f] if not holes else [r for r in data_regions(f, holes)]
            for stream in streams:
                for views in chunking.file_batches(self.s.chunker, stream):
                    yield from self._reserve(sum(len(v) for v in views))
                    for part, size in _split(views, JOB_BYTES):
                        self._submit(self._prepare, part, size)
                    if self._inflight > MAX_INFLIGHT:
                        yield from self._drain(MAX_INFLIGHT)

    def _reserve(self, raw: int) -> Iterator[agent_pb2.CaptureEvent]:
        """Take `raw` bytes of the agent-wide budget; while holding some, wait only on our own work."""
        budget = self.s.budget
        if budget is None:
            return
        if not budget.try_acquire(raw):
            yield from self._send_all()  # releases all we hold; only then may we wait for others
            budget.acquire(raw, self.s.cancelled)
        self._reserved += raw

    def _release(self, n: int) -> None:
        """Give back `n` bytes of the budget (negative: take them, when a file grew while read)."""
        if self.s.budget is not None and n:
            self.s.budget.release(n)
            self._reserved -= n

    def _send_all(self) -> Iterator[agent_pb2.CaptureEvent]:
        """Hash, offer and send everything read so far; afterwards this capture holds no budget."""
        yield from self._drain(-1)
        yield from self._flush_offer(force=True)
        while self._outstanding:
            yield from self._answer_want()
        yield from self._emit_sent(block=True)

    def _submit(self, fn, arg, raw: int) -> None:
        self._submit_group()  # keeps jobs in slot order
        self.stats.bytes_read += raw
        self._inflight += raw
        self._slots.append(_Slot(future=self._jobs.submit(fn, arg, self._rate.speculate), raw=raw, chunks=True))

    def _gather(self, path: bytes, raw: int) -> None:
        """Add a small file to the group; the group becomes a job when full (or when one is needed)."""
        self.stats.bytes_read += raw
        self._inflight += raw
        slot = _Slot(raw=raw, chunks=True, index=len(self._group))
        self._group.append(path)
        self._group_slots.append(slot)
        self._group_bytes += raw
        self._slots.append(slot)
        if len(self._group) >= GROUP_FILES or self._group_bytes >= GROUP_BYTES:
            self._submit_group()

    def _submit_group(self) -> None:
        if not self._group:
            return
        future = self._jobs.submit(self._small_files, self._group, self._rate.speculate)
        for slot in self._group_slots:
            slot.future = future
        self._group, self._group_slots, self._group_bytes = [], [], 0

    # --- emission -------------------------------------------------------------------

    def _take_chunks(self, slot: _Slot) -> None:
        result = slot.future.result()
        items: list[Ready] = result if slot.index < 0 else result[slot.index]
        self._inflight -= slot.raw
        kept = 0
        for item in items:
            cid, raw = item[0], _raw_size(item)
            self._ids.add(cid)
            self._ids_bytes += raw
            if cid not in self._offered:
                self._offered.add(cid)
                self._offer.chunks.append(item)
                self._offer.size += raw
                kept += _held(item)
        self._offer.held += kept
        # Offered chunks stay reserved until sent or unwanted; a chunk compressed ahead
        # holds only its payload (its read buffer is gone).
        self._release(slot.raw - kept)

    def _take_entry(self, slot: _Slot) -> None:
        """An entry takes the chunk ids taken since the last one (a cached file, its own); the
        ids join it only when its batch goes out (_flush_entries), in one copy."""
        e, ids = slot.entry, slot.ids
        if e.type == common_pb2.ENTRY_TYPE_FILE and not slot.cached:
            taken = self._ids.take()
            ids = taken.buffer if isinstance(taken, ChunkIds) else taken
            if not e.layout:  # a layout's chunks hold other bytes than the file's; capture set its size
                e.size = self._ids_bytes + hole_bytes(e.holes)
        self._ids_bytes = 0
        if e.type == common_pb2.ENTRY_TYPE_FILE and self.s.cache is not None:
            self.s.cache.record(e.path, slot.stat, ids, e.layout, e.holes)
        self._entries.append((e, ids))

    def _drain(self, limit: int) -> Iterator[agent_pb2.CaptureEvent]:
        """Emit finished slots in order; block on futures while in-flight bytes exceed `limit` (-1: all)."""
        while self._slots:
            slot = self._slots[0]
            if slot.chunks:
                if slot.future is None:  # its group is still being gathered
                    if self._inflight <= limit:
                        break
                    self._submit_group()
                if not slot.future.done() and self._inflight <= limit:
                    break
                self._take_chunks(self._slots.popleft())
            else:
                self._take_entry(self._slots.popleft())
            yield from self._flush_offer()
            yield from self._flush_entries()
        yield from self._emit_sent(block=False)

    def _flush_entries(self, force: bool = False) -> Iterator[agent_pb2.CaptureEvent]:
        if self._entries and (force or len(self._entries) >= ENTRY_BATCH):
            if self.s.entry_parts and self.s.joined_ids:
                entries, self._entries = self._entries, []
                yield from _entry_parts_events(entries)
                return
            event = _entry_event(self._entries, self.s.joined_ids)
            self._entries = []  # the ids leave memory before gRPC serializes the event
            yield event

    def _flush_offer(self, force: bool = False) -> Iterator[agent_pb2.CaptureEvent]:
        o = self._offer
        if not o.chunks or not (force or o.size >= OFFER_BYTES or len(o.chunks) >= OFFER_COUNT):
            return
        self._offer = _Offer(o.seq + 1)
        self.stats.chunks_offered += len(o.chunks)
        yield agent_pb2.CaptureEvent(offer=agent_pb2.ChunkOffer(seq=o.seq, ids=[c[0] for c in o.chunks]))
        self._outstanding.append(o)
        while len(self._outstanding) >= OUTSTANDING_OFFERS:
            yield from self._answer_want()

    def _answer_want(self) -> Iterator[agent_pb2.CaptureEvent]:
        """Read the reply to the oldest offer; compress the wanted chunks in the pool (or send them, if compressed ahead)."""
        o = self._outstanding.popleft()
        want = self._next_want()
        if want.seq != o.seq:
            raise RuntimeError(f"protocol error: want for offer {want.seq}, expected {o.seq}")
        group: list[Hashed] = []
        size = wanted = held = 0
        ready: list[wire.WireChunk] = []
        ready_bytes = 0
        for i in want.indexes:
            item = o.chunks[i]
            if len(item) == 4:  # compressed ahead
                ready.append(item)
                wanted += item[3]
                ready_bytes += len(item[1])
                continue
            group.append(item)
            size += len(item[1])
            if size >= COMPRESS_GROUP:
                self._queue_send(self._jobs.submit(self._compress, group), size)
                wanted += size
                held += size
                group, size = [], 0
        if group:
            self._queue_send(self._jobs.submit(self._compress, group), size)
            wanted += size
            held += size
        if ready:
            self._queue_send(_done((ready, ready_bytes)), ready_bytes)
            held += ready_bytes
        self._retiring.append((self._queued, [c[0] for c in o.chunks]))
        self._rate.update(o.size, wanted)
        self._release(o.held - held)
        yield from self._emit_sent(block=False)

    def _queue_send(self, job: Future, raw: int) -> None:
        self._sending.append((job, raw))
        self._queued += 1

    def _retire(self) -> None:
        """Forget the ids of answered offers whose wanted chunks have all been yielded."""
        while self._retiring and self._retiring[0][0] <= self._emitted:
            self._offered.difference_update(self._retiring.popleft()[1])

    def _emit_sent(self, block: bool) -> Iterator[bytes]:
        """Send compressed chunks in order, as their jobs finish (all of them when `block`).

        Chunk batches leave as pre-encoded CaptureEvent bytes (ragbackup.wire).
        """
        self._retire()
        batch: list[wire.WireChunk] = []
        size = jobs = 0
        while self._sending and (block or self._sending[0][0].done()):
            job, raw = self._sending.popleft()
            chunks, nbytes = job.result()
            self._release(raw)
            batch.extend(chunks)
            size += nbytes
            jobs += 1
            self.stats.chunks_sent += len(chunks)
            self.stats.bytes_sent += nbytes
            if size >= SEND_BATCH:
                yield wire.encode_chunk_batch(CHUNKS_FIELD, batch)
                self._emitted += jobs
                self._retire()
                batch, size, jobs = [], 0, 0
        if batch:
            yield wire.encode_chunk_batch(CHUNKS_FIELD, batch)
        self._emitted += jobs  # jobs without chunks (nothing wanted) count as sent too
        self._retire()
