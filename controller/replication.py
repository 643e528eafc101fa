"""Replication to one offsite tier: copy what a snapshot needs that the tier lacks, in write order.

In: the source Repository (the primary, or the tier this one is fed from), the tier's target
Repository, its TierConfig and the snapshots to copy (policy/replicate.py decides). Out:
JobEvents; on the tier the packs (verified), index objects naming them (the source's own, copied
as they are, where the tier holds every pack one names), keys/config/dicts, then the snapshot: a tier is a consistent repository after every object. Next: the replicate
job (jobs/replicate.py) marks each snapshot done in the queue (replication_queue.py).
"""
from __future__ import annotations

import functools
import itertools
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

from ragbackup import errors, faults
from ragbackup.ahead import run_ahead
from ragbackup.config import TierConfig
from ragbackup.repo.index import RECOVERED, encode_index, index_packs
from ragbackup.repo.packs import blob_aad, header_records, pack_key, read_header
from ragbackup.repo.repository import Repository
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events
from ragbackup.controller.replication_find import PackFinder
from ragbackup.controller.policy.replicate import (
    INDEX, METADATA, PACKS, SNAPSHOT, Step, metadata_missing, plan_snapshot,
)

T = TypeVar("T")
ID_BATCH = 5000  # blob ids looked up at once
INDEX_PACKS = 64  # packs described by one index object written anew on the tier, at most
PLAN_AHEAD = 10000  # pack ids the planning thread may find ahead of the reader (names only)
READ_AHEAD = 1  # packs queued by the source reader beyond the one it reads and the one waiting for a slot
PACK_PARTS = 4  # parts a pack is cut into, sent at once (S3Storage.PART_STREAMS): max_concurrency x 4 streams
MIN_PART = 8 * 1024 * 1024  # smaller packs go up as one PUT
ATTEMPTS = 2  # tries of a direct upload or copy on top of botocore's own (max_attempts), as Retrying would


def pack_part_size(size: int) -> int:
    """The multipart part size for a pack of `size` bytes: PACK_PARTS equal parts, none under MIN_PART.

    Equal parts leave no short last part whose stream idles (16 MiB parts cut a 34 MB pack into
    16 + 16 + 2). Against one PUT per pack, five scale-0.5 runs could not tell them apart
    (docs/PERFORMANCE.md, offsite); the parts keep more streams open where the server has room.
    """
    return max(MIN_PART, -(-size // PACK_PARTS))


class Throttle:
    """A token bucket shared by a tier's upload threads: `take(n)` waits until n bytes may be sent."""

    def __init__(self, rate: int, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate, self._monotonic, self._sleep = rate, monotonic, sleep
        self._next = monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            now = self._monotonic()
            start = max(now, self._next)
            self._next = start + n / self.rate
        if start > now:
            self._sleep(start - now)


def s3_of(storage):
    """The S3Storage inside a storage stack (wrappers keep it as `inner`), or None for another backend."""
    from ragbackup.storage.s3 import S3Storage

    while not isinstance(storage, S3Storage) and hasattr(storage, "inner"):
        storage = storage.inner  # Retrying, PackCache
    return storage if isinstance(storage, S3Storage) else None


def retried(fn: Callable[[], T], attempts: int = ATTEMPTS, delay: float = 1.0) -> T:
    """`fn()`, tried again after `delay` (doubling) when it raises StorageUnavailable; other errors at once."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except errors.StorageUnavailable:
            if attempt == attempts:
                raise
        time.sleep(delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


@dataclass
class Totals:
    snapshots: int = 0
    packs: int = 0
    bytes: int = 0  # pack bytes copied
    objects: int = 0  # index, metadata and snapshot objects
    server_side: int = 0  # packs copied with CopyObject
    plan_seconds: float = 0.0  # reading the snapshots' trees to find what the tier lacks
    pack_seconds: float = 0.0  # copying packs (all streams)
    index_wait_seconds: float = 0.0  # waiting, after the packs, for the index objects still being written
    index_copied: int = 0  # index objects of the source copied as they are (the rest written anew)


def verify_pack(src: Repository, pack_id: str, data: bytes, ids: set[bytes]) -> None:
    """Authenticate every byte about to be sent: magic, trailer, the sealed header naming exactly the
    index's blobs `ids`, and every sealed blob (AES-GCM under its id). IntegrityError names the pack.

    The ids, not whole rows, are compared: the rows of a pack are scattered over the cache's table,
    so reading them per pack cost 2.3-3.5 s per copy thread where the ids, read from the covering
    index, cost 0.1 s in all; the tier gets the source's index as it is (IndexWriter), the index the
    source's own restores read.

    Every blob is opened: the header's seal covers the blob list, not the blobs' bytes, and pack ids
    are random, so nothing else would notice a flipped byte in the source. It is the cheap part:
    AES-GCM ran at 7 GB/s here (the Python loop around it, 140,000 blobs, ~0.3 s per scale-0.5 copy).
    """
    header = header_records(src.cipher, pack_id, data)
    if len(header) != len(ids) or {r[0] for r in header} != ids:
        raise errors.IntegrityError(f"pack {pack_id}: its header and the index name different blobs")
    view, open_ = memoryview(data), src.cipher.open
    for blob_id, _type, _flags, offset, length, _raw in header:
        try:
            open_(view[offset:offset + length], blob_aad(blob_id))
        except errors.IntegrityError:
            raise errors.IntegrityError(f"pack {pack_id}: blob {blob_id.hex()} failed authentication "
                                        "in the source; not replicated") from None


def index_objects(pack_files: dict[str, str]) -> dict[str, frozenset[str]]:
    """Pure: index object name -> the packs it names, from pack -> index object (IndexCache.pack_index_files);
    packs no index object names (recovered from their headers) are left out."""
    objects: dict[str, set[str]] = {}
    for pid, name in pack_files.items():
        if name != RECOVERED:
            objects.setdefault(name, set()).add(pid)
    return {name: frozenset(packs) for name, packs in objects.items()}


class IndexPlan:
    """Pure: which index objects the tier gets for one snapshot's packs, as the packs land on it.

    In: the source's index objects (name -> the packs each names, index_objects) and the packs the
    tier's index names already. Out: `land(pid)` -> the name of a source index object to copy as it is
    (sealed, same name) once every pack it names is on the tier and the tier's index names none of
    them; `rest()` -> the landed packs no such object names, in groups of at most INDEX_PACKS, for
    index objects written anew (packs of a source object the snapshot does not need whole, recovered
    packs). Each landed pack is indexed once.
    """

    def __init__(self, objects: dict[str, frozenset[str]], indexed: set[str]):
        self.objects = objects
        self.object_of = {pid: name for name, packs in objects.items() for pid in packs}
        self.indexed = set(indexed)
        self.landed: set[str] = set()
        self.pending: dict[str, None] = {}  # landed, not indexed yet, in landing order

    def land(self, pid: str) -> str | None:
        """Pack `pid` is on the tier; the source index object that is now complete on the tier, if any."""
        if pid in self.landed or pid in self.indexed:
            return None
        self.landed.add(pid)
        self.pending[pid] = None
        name = self.object_of.get(pid)
        packs = self.objects.get(name, frozenset()) if name is not None else frozenset()
        if not packs or not packs <= self.landed or packs & self.indexed:
            return None
        self.indexed |= packs
        for p in packs:
            del self.pending[p]
        return name

    def rest(self) -> list[tuple[str, ...]]:
        """The landed packs no copied object names, INDEX_PACKS a group; they count as indexed after."""
        left = list(self.pending)
        self.pending.clear()
        self.indexed.update(left)
        return [tuple(left[i:i + INDEX_PACKS]) for i in range(0, len(left), INDEX_PACKS)]


class TierCopy:
    """Copies objects from `src` to `dst` (a tier) and verifies them there."""

    def __init__(self, src: Repository, dst: Repository, tier: TierConfig, cancel: threading.Event):
        self.src, self.dst, self.tier, self.cancel = src, dst, tier, cancel
        self.src_s3, self.dst_s3 = s3_of(src.storage), s3_of(dst.storage)
        if self.dst_s3 is None:
            raise errors.ConfigError(f"tier {tier.name}: its storage is not S3")
        self.server_side = self.src_s3 is not None and self.dst_s3.same_endpoint(self.src_s3)
        self.throttle = Throttle(tier.bandwidth_limit).take if tier.bandwidth_limit else None
        self.pack_sizes = dict(src.index.packs())
        self.tier_packs = {o.key.rsplit("/", 1)[-1]: o.size for o in dst.storage.list("data/")}
        self.totals = Totals()
        self._lock = threading.Lock()  # totals, from the copy threads

    # --- what a snapshot needs ------------------------------------------------------------

    def find_packs(self, manifest: dict, needed: set[str], finder: PackFinder) -> Iterator[str]:
        """Source packs holding blobs of `manifest` the tier's index lacks, each once, as the trees are
        read (ID_BATCH blob ids at a time, `finder` says which packs hold them); each is added to
        `needed` too. Its own time (not the consumer's) counts as planning."""
        batches = self._pack_batches(manifest, needed, finder)
        while True:
            began = time.monotonic()
            new = next(batches, None)
            with self._lock:
                self.totals.plan_seconds += time.monotonic() - began
            if new is None:
                return
            yield from new

    def _pack_batches(self, manifest: dict, needed: set[str], finder: PackFinder) -> Iterator[list[str]]:
        for comp in manifest["components"].values():
            trees = [bytes.fromhex(t) for t in comp["tree"]]
            yield self._new_packs(trees, needed, finder)
            batch: list[bytes] = []
            for entry in self.src.read_tree(trees):
                ids = iter(entry.chunks)  # an RDB's entry names millions: taken ID_BATCH at a time
                while part := list(itertools.islice(ids, ID_BATCH - len(batch))):
                    batch += part
                    if len(batch) >= ID_BATCH:
                        yield self._new_packs(batch, needed, finder)
                        batch = []
            yield self._new_packs(batch, needed, finder)

    @staticmethod
    def _new_packs(ids: list[bytes], needed: set[str], finder: PackFinder) -> list[str]:
        """Packs of those of `ids` the tier's index lacks that are not in `needed` yet (then added to it)."""
        if not ids:
            return []
        new = sorted(finder.packs_needed(ids) - needed)
        needed.update(new)
        return new

    # --- packs ----------------------------------------------------------------------------

    def copy_packs(self, packs: Iterable[str],
                   on_tier: Callable[[str], None] = lambda pid: None) -> Iterator[controller_pb2.JobEvent]:
        """Copy and verify `packs` (found while they copy: find_packs), tier.max_concurrency at once;
        the first failure cancels the rest. `on_tier(pid)` as each pack is known to be on the tier.

        The packs are listed and streamed ones read on a thread of their own, READ_AHEAD ahead of the
        uploads, so planning and the source's disk overlap the uploads; server-side copies read nothing here.
        """
        progress = {"total": 0, "done": 0}
        work = run_ahead(lambda: self._to_copy(packs, on_tier, progress), READ_AHEAD, f"repl-read-{self.tier.name}")
        workers = self.tier.max_concurrency
        with futures.ThreadPoolExecutor(workers, thread_name_prefix=f"repl-{self.tier.name}") as ex:
            running: dict[futures.Future, str] = {}
            try:
                for pid, data in work:
                    if len(running) >= workers:
                        finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                        progress["done"] += self._settled(finished, running, on_tier)
                        yield events.progress(f"packs to {self.tier.name}", progress["done"], progress["total"], "B")
                    running[ex.submit(self.copy_pack, pid, data)] = pid
                for fut in futures.as_completed(list(running)):
                    progress["done"] += self._settled({fut}, running, on_tier)
                    yield events.progress(f"packs to {self.tier.name}", progress["done"], progress["total"], "B")
            finally:
                for fut in running:
                    fut.cancel()
                work.close()  # stops the reading thread

    def _to_copy(self, packs: Iterable[str], on_tier: Callable[[str], None], progress: dict) -> Iterator[tuple]:
        """(pack id, its bytes, or None for a server-side copy) of those of `packs` the tier lacks."""
        for pid in packs:
            progress["total"] += self.pack_sizes[pid]
            if self._on_tier(pid):
                progress["done"] += self.pack_sizes[pid]
                on_tier(pid)
            else:
                yield pid, (None if self.server_side else self.read_pack(pid))

    def _on_tier(self, pid: str) -> bool:
        """The tier holds pack `pid` whole already (a run killed after its packs)."""
        return self.tier_packs.get(pid) == self.pack_sizes[pid]

    def _settled(self, finished: set[futures.Future], running: dict[futures.Future, str],
                 on_tier: Callable[[str], None]) -> int:
        """Bytes of the finished copies (taken out of `running`, each passed to `on_tier`); their first
        failure raised; Cancelled once the job is."""
        n = 0
        for fut in finished:
            n += fut.result()
            on_tier(running.pop(fut))
        if self.cancel.is_set():
            raise errors.Cancelled(f"replication to {self.tier.name} was cancelled")
        return n

    def read_pack(self, pid: str) -> bytes:
        """Pack `pid` from the source, whole; IntegrityError when its size is not the index's."""
        data = self.src.storage.get(pack_key(pid))  # the stack retries (Retrying)
        if len(data) != self.pack_sizes[pid]:
            raise errors.IntegrityError(f"pack {pid}: {len(data)} bytes in the source, the index says "
                                        f"{self.pack_sizes[pid]}")
        return data

    def copy_pack(self, pid: str, data: bytes | None = None) -> int:
        """One pack onto the tier: `data` (read by read_pack) streamed, or copied server-side when None.

        Streamed: authenticated here, then sent with a SHA-256 the server checks (what it stored is
        what was authenticated). Server-side: the copy's size and authenticated header are checked
        on the tier (the bytes never passed through the controller).
        """
        key, size = pack_key(pid), self.pack_sizes[pid]
        ids = self.src.index.blob_ids_in_pack(pid)
        if data is None:
            retried(lambda: self.dst_s3.copy_from(self.src_s3, key))
            self.check_on_tier(pid, size, ids)
            with self._lock:
                self.totals.server_side += 1
        else:
            verify_pack(self.src, pid, data, ids)
            retried(lambda: self.dst_s3.put_checked(key, data, self.throttle, part_size=pack_part_size(size)))
        with self._lock:
            self.totals.packs += 1
            self.totals.bytes += size
        self.tier_packs[pid] = size
        return size

    def check_on_tier(self, pid: str, size: int, ids: set[bytes]) -> None:
        """The tier's copy has the pack's size and its authenticated header names the index's blobs."""
        stored = retried(lambda: self.dst_s3.size(pack_key(pid)))
        if stored != size:
            raise errors.IntegrityError(f"pack {pid} on tier {self.tier.name}: {stored} bytes, expected {size}")
        header = retried(lambda: read_header(self.dst_s3, self.dst.cipher, pid, size))
        if {b.id for b in header} != ids:
            raise errors.IntegrityError(f"pack {pid} on tier {self.tier.name}: its header names other blobs")

    # --- index, metadata, snapshot ---------------------------------------------------------

    def index_plan(self) -> IndexPlan:
        """The plan of the tier's index objects for the next snapshot: the source's objects, the tier's indexed packs."""
        return IndexPlan(index_objects(self.src.index.pack_index_files()), set(self.dst.index.pack_index_files()))

    def pack_finder(self, tier_packs: set[str]) -> PackFinder:
        """A finder of the packs the next snapshot needs, `tier_packs` those the tier's index names."""
        return PackFinder(self.src.index, self.dst.index, tier_packs)

    def copy_index(self, name: str, packs: tuple[str, ...]) -> bool:
        """The source's index object `name` onto the tier as it is (sealed, same name), recorded in the
        tier's cache from the source's rows, when it names exactly `packs` (all on the tier) at the sizes
        the source's index gives; False, with nothing written, when it names others or is gone.

        In place of re-encoding the packs' rows: encode_index and the cache's per-blob rows took 5.8 of
        the 7.1 s the index thread spent on a scale-0.5 copy.
        """
        key = f"index/{name}"
        try:
            data = self.src.storage.get(key)
        except errors.NotFound:  # rewritten by the source's prune since its cache was read
            return False
        named = index_packs(self.src.cipher, name, data)
        if named is None or sorted(named) != sorted((pid, self.pack_sizes[pid]) for pid in packs):
            return False
        retried(lambda: self.dst_s3.put_checked(key, data, self.throttle))
        self.dst.index.add_packs_from(self.src.index, name, list(packs))
        with self._lock:
            self.totals.objects += 1
            self.totals.index_copied += 1
        return True

    def write_index(self, packs: tuple[str, ...]) -> None:
        """One new index object on the tier naming `packs` (on the tier, their headers checked against
        these rows by verify_pack), written from the source index's rows and recorded in the tier's
        cache from the same rows."""
        entries = [(pid, self.pack_sizes[pid], self.src.index.blobs_in_pack(pid)) for pid in packs]
        name, sealed = uuid.uuid4().hex, encode_index(self.dst.cipher, entries)
        retried(lambda: self.dst_s3.put_checked(f"index/{name}", sealed, self.throttle))
        self.dst.index.add_packs_from(self.src.index, name, list(packs))
        with self._lock:
            self.totals.objects += 1

    def copy_object(self, key: str) -> None:
        """A small object (index, keys, config, dicts, snapshot) as it is: sealed objects stay sealed."""
        if self.server_side:
            retried(lambda: self.dst_s3.copy_from(self.src_s3, key))
        else:
            data = self.src.storage.get(key)
            retried(lambda: self.dst_s3.put_checked(key, data, self.throttle))
        self.totals.objects += 1


class IndexWriter:
    """The tier's index objects for one snapshot's packs, written on a thread of their own while later
    packs upload; each names only packs already on the tier (the write order holds per object).

    In: the copier and its IndexPlan; `on_tier(pid)` for each pack as it lands. Out: each source index
    object copied as it is (copier.copy_index) as soon as the tier holds every pack it names; `finish()`
    writes the other landed packs into new objects (copier.write_index) and raises the first failure.
    """

    def __init__(self, copier: TierCopy, plan: IndexPlan):
        self.copier, self.plan = copier, plan
        self.tasks: list[tuple[str | None, tuple[str, ...]]] = []  # (source object to copy, or None: write anew; packs)
        self.ending = self.stopping = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"repl-index-{copier.tier.name}", daemon=True)
        self.thread.start()

    def on_tier(self, pid: str) -> None:
        """Pack `pid` is on the tier; raises the writer's failure, so the copy stops early."""
        with self.cond:
            if self.error is not None:
                raise self.error
            name = self.plan.land(pid)
            if name is not None:
                self.tasks.append((name, tuple(sorted(self.plan.objects[name]))))
                self.cond.notify()

    def _next(self) -> tuple[str | None, tuple[str, ...]] | None:
        with self.cond:
            self.cond.wait_for(lambda: self.stopping or self.ending or self.tasks)
            if self.stopping or not self.tasks:
                return None
            return self.tasks.pop(0)

    def _run(self) -> None:
        while (task := self._next()) is not None:
            name, packs = task
            try:
                if name is None or not self.copier.copy_index(name, packs):
                    for i in range(0, len(packs), INDEX_PACKS):
                        self.copier.write_index(packs[i:i + INDEX_PACKS])
            except BaseException as exc:  # noqa: BLE001 - raised to the job by on_tier or finish
                with self.cond:
                    self.error = exc
                return

    def finish(self) -> None:
        """Every pack reported so far indexed on the tier; the first failure raised."""
        with self.cond:
            self.tasks.extend((None, group) for group in self.plan.rest())
            self.ending = True
            self.cond.notify()
        self.thread.join()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop: what is not being written is dropped (a copy cut short), a running write is waited for."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join()


def metadata_keys(repo: Repository) -> set[str]:
    keys = {o.key for prefix in ("keys/", "dicts/") for o in repo.storage.list(prefix)}
    return keys | ({"config"} if repo.storage.exists("config") else set())


def copy_snapshots(copier: TierCopy, sids: list[str], on_done: Callable[[str], None]) -> Iterator[controller_pb2.JobEvent]:
    """Copy each snapshot in `sids` (oldest first) with what it needs, in ORDER; `on_done(sid)` after each."""
    src_meta, tier_meta = metadata_keys(copier.src), metadata_keys(copier.dst)
    for n, sid in enumerate(sids, start=1):
        if copier.cancel.is_set():
            raise errors.Cancelled(f"replication to {copier.tier.name} was cancelled")
        manifest = copier.src.load_snapshot(sid)
        needed: set[str] = set()
        plan = copier.index_plan()
        finder = copier.pack_finder(set(plan.indexed))
        index = IndexWriter(copier, plan)
        # Planning runs on a thread of its own: the packs found first upload while it reads on.
        found = run_ahead(functools.partial(copier.find_packs, manifest, needed, finder), PLAN_AHEAD,
                          f"repl-plan-{copier.tier.name}")
        try:
            began = time.monotonic()
            yield from copier.copy_packs(found, index.on_tier)
            copier.totals.pack_seconds += time.monotonic() - began
            # Every needed pack is on the tier now: the plan's PACKS step is empty.
            steps = plan_snapshot(sid, needed, set(copier.tier_packs), metadata_missing(src_meta, tier_meta))
            _after_packs(copier, steps, index, tier_meta)
        finally:
            found.close()  # after copy_packs stopped its reading thread, the only one iterating it
            index.close()
        copier.totals.snapshots += 1
        on_done(sid)
        yield events.log(f"{copier.tier.name}: snapshot {sid} replicated ({n}/{len(sids)}, "
                         f"{len(needed)} pack(s) needed)")


def _after_packs(copier: TierCopy, steps: list[Step], index: IndexWriter, tier_meta: set[str]) -> None:
    """The steps of one snapshot after its packs, in their order (the index objects: IndexWriter)."""
    for step in steps:
        if step.phase == PACKS:
            raise errors.IntegrityError(f"tier {copier.tier.name}: pack {step.keys[0]} is still missing after the copy")
        if step.phase == INDEX:
            began = time.monotonic()
            index.finish()
            copier.totals.index_wait_seconds += time.monotonic() - began
        elif step.phase == METADATA:
            for key in step.keys:
                copier.copy_object(key)
                tier_meta.add(key)
        elif step.phase == SNAPSHOT:
            faults.point("replicate.mid")  # packs and index are on the tier, the snapshot is not
            copier.copy_object(step.keys[0])
