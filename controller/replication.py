"""Replication to one offsite tier: copy what a snapshot needs that the tier lacks, in write order.

In: the source Repository (the primary, or the tier this one is fed from), the tier's target
Repository, its TierConfig and the snapshots to copy (policy/replicate.py decides). Out:
JobEvents; on the tier the packs (verified), an index object naming them, keys/config/dicts,
then the snapshot: a tier is a consistent repository after every object. Next: the replicate
job (jobs/replicate.py) marks each snapshot done in the queue (replication_queue.py).
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

from ragbackup import errors, faults
from ragbackup.ahead import run_ahead
from ragbackup.config import TierConfig
from ragbackup.repo.index import encode_index
from ragbackup.repo.packs import blob_aad, pack_key, parse_header, read_header
from ragbackup.repo.repository import Repository
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events
from ragbackup.controller.policy.replicate import (
    INDEX, METADATA, PACKS, SNAPSHOT, Step, metadata_missing, plan_snapshot,
)

T = TypeVar("T")
ID_BATCH = 5000  # blob ids looked up at once
INDEX_PACKS = 64  # packs described by one index object on the tier, at most
INDEX_GROUPS = 4  # index objects a snapshot's packs are split into, at least (packs permitting)
READ_AHEAD = 1  # packs queued by the source reader beyond the one it reads and the one waiting for a slot
# Packs up to this size go up as one PUT: multipart would add a create and a complete request per pack
# and split the server's work, while max_concurrency packs already keep that many streams busy.
PACK_PART = 64 * 1024 * 1024
ATTEMPTS = 2  # tries of a direct upload or copy on top of botocore's own (max_attempts), as Retrying would


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


def verify_pack(src: Repository, pack_id: str, data: bytes, ids: set[bytes]) -> None:
    """Authenticate every byte about to be sent: magic, trailer, the sealed header naming exactly the
    index's blobs, and every sealed blob (AES-GCM under its id). IntegrityError names the pack."""
    header = parse_header(src.cipher, pack_id, data)
    if {b.id for b in header} != ids:
        raise errors.IntegrityError(f"pack {pack_id}: its header and the index name different blobs")
    view = memoryview(data)
    for loc in header:
        try:
            src.cipher.open(view[loc.offset:loc.offset + loc.length], blob_aad(loc.id))
        except errors.IntegrityError:
            raise errors.IntegrityError(f"pack {pack_id}: blob {loc.id.hex()} failed authentication "
                                        "in the source; not replicated") from None


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

    def needed_packs(self, manifest: dict) -> set[str]:
        """Source packs holding the blobs of `manifest` that the tier's index lacks."""
        packs: set[str] = set()
        for comp in manifest["components"].values():
            trees = [bytes.fromhex(t) for t in comp["tree"]]
            packs |= self._packs_for(trees)
            batch: list[bytes] = []
            for entry in self.src.read_tree(trees):
                batch.extend(entry.chunks)
                if len(batch) >= ID_BATCH:
                    packs |= self._packs_for(batch)
                    batch = []
            packs |= self._packs_for(batch)
        return packs

    def _packs_for(self, ids: list[bytes]) -> set[str]:
        """Source packs of those of `ids` the tier's index lacks; names only (IndexCache.packs_of)."""
        if not ids:
            return set()
        missing = self.dst.index.missing(ids)
        packs, lost = self.src.index.packs_of(missing)
        if lost:
            raise errors.IntegrityError(f"blob {next(iter(lost)).hex()} is referenced but not in the source's index")
        return packs

    # --- packs ----------------------------------------------------------------------------

    def copy_packs(self, packs: tuple[str, ...],
                   on_tier: Callable[[str], None] = lambda pid: None) -> Iterator[controller_pb2.JobEvent]:
        """Copy and verify `packs`, tier.max_concurrency at once; the first failure cancels the rest.
        `on_tier(pid)` as each pack is known to be on the tier.

        Streamed packs are read READ_AHEAD ahead of the uploads on a thread of their own, so the
        source's disk is read while the uploads run; server-side copies read nothing here.
        """
        total = sum(self.pack_sizes.get(p, 0) for p in packs)
        done = sum(self.pack_sizes[p] for p in packs if self._on_tier(p))
        todo = [p for p in packs if not self._on_tier(p)]
        for pid in packs:
            if self._on_tier(pid):
                on_tier(pid)
        workers = self.tier.max_concurrency
        if self.server_side:
            work = ((pid, None) for pid in todo)
        else:
            work = run_ahead(lambda: ((pid, self.read_pack(pid)) for pid in todo), READ_AHEAD,
                             f"repl-read-{self.tier.name}")
        with futures.ThreadPoolExecutor(workers, thread_name_prefix=f"repl-{self.tier.name}") as ex:
            running: dict[futures.Future, str] = {}
            try:
                for pid, data in work:
                    if len(running) >= workers:
                        finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                        done += self._settled(finished, running, on_tier)
                        yield events.progress(f"packs to {self.tier.name}", done, total, "B")
                    running[ex.submit(self.copy_pack, pid, data)] = pid
                for fut in futures.as_completed(list(running)):
                    done += self._settled({fut}, running, on_tier)
                    yield events.progress(f"packs to {self.tier.name}", done, total, "B")
            finally:
                for fut in running:
                    fut.cancel()
                close = getattr(work, "close", None)
                if close is not None:
                    close()  # stops the read-ahead thread

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
            retried(lambda: self.dst_s3.put_checked(key, data, self.throttle, part_size=PACK_PART))
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

    def write_index(self, packs: tuple[str, ...]) -> None:
        """One index object on the tier describing `packs` (from the source's index), recorded in the tier's cache."""
        entries = [(pid, self.pack_sizes[pid], self.src.index.blobs_in_pack(pid)) for pid in packs]
        name, sealed = uuid.uuid4().hex, encode_index(self.dst.cipher, entries)
        self.dst.storage.put(f"index/{name}", sealed)  # the tier's stack retries (Retrying)
        self.dst.index.add_index_file(name, entries)
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


def index_groups(packs: tuple[str, ...]) -> list[tuple[str, ...]]:
    """`packs` cut into runs of at most INDEX_PACKS, into INDEX_GROUPS runs or more when there are enough."""
    size = max(1, min(INDEX_PACKS, -(-len(packs) // INDEX_GROUPS)))
    return [packs[i:i + size] for i in range(0, len(packs), size)]


class IndexWriter:
    """The tier's index objects for one snapshot's packs, each written once every pack it names is on the tier.

    In: the copier and the INDEX step's packs (sorted, the order the uploads go in). Out: index objects
    written on a thread of their own while later packs still upload (the write order holds per object:
    an index object after its packs); `finish()` writes the rest and raises the first failure.
    """

    def __init__(self, copier: TierCopy, packs: tuple[str, ...]):
        self.copier = copier
        self.groups = index_groups(packs)
        self.group_of = {pid: n for n, group in enumerate(self.groups) for pid in group}
        self.waiting = [set(group) for group in self.groups]
        self.started: set[int] = set()
        self.written: list[futures.Future] = []
        self.pool = futures.ThreadPoolExecutor(1, thread_name_prefix=f"repl-index-{copier.tier.name}")
        self._lock = threading.Lock()

    def on_tier(self, pid: str) -> None:
        """Pack `pid` is on the tier: its group's object is written when it was the group's last pack."""
        n = self.group_of.get(pid)
        if n is None:
            return
        with self._lock:
            self.waiting[n].discard(pid)
            if self.waiting[n] or n in self.started:
                return
            self.started.add(n)
        self.written.append(self.pool.submit(self.copier.write_index, self.groups[n]))

    def finish(self) -> None:
        """Every group written (after the PACKS step: all its packs are on the tier); the first failure raised."""
        for n in range(len(self.groups)):
            if n not in self.started:
                self.started.add(n)
                self.written.append(self.pool.submit(self.copier.write_index, self.groups[n]))
        for fut in self.written:
            fut.result()

    def close(self) -> None:
        """Stop: writes not started are dropped, a running one is waited for."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def metadata_keys(repo: Repository) -> set[str]:
    keys = {o.key for prefix in ("keys/", "dicts/") for o in repo.storage.list(prefix)}
    return keys | ({"config"} if repo.storage.exists("config") else set())


def copy_snapshots(copier: TierCopy, sids: list[str], on_done: Callable[[str], None]) -> Iterator[controller_pb2.JobEvent]:
    """Copy each snapshot in `sids` (oldest first) with what it needs, in ORDER; `on_done(sid)` after each."""
    src_meta, tier_meta = metadata_keys(copier.src), metadata_keys(copier.dst)
    for n, sid in enumerate(sids, start=1):
        if copier.cancel.is_set():
            raise errors.Cancelled(f"replication to {copier.tier.name} was cancelled")
        began = time.monotonic()
        manifest = copier.src.load_snapshot(sid)
        needed = copier.needed_packs(manifest)
        copier.totals.plan_seconds += time.monotonic() - began
        steps = plan_snapshot(sid, needed, set(copier.tier_packs), metadata_missing(src_meta, tier_meta))
        index = IndexWriter(copier, next((s.keys for s in steps if s.phase == INDEX), ()))
        for pid in needed & set(copier.tier_packs):  # copied by a run that died before its index step
            index.on_tier(pid)
        try:
            yield from _run_steps(copier, steps, index, tier_meta)
        finally:
            index.close()
        copier.totals.snapshots += 1
        on_done(sid)
        yield events.log(f"{copier.tier.name}: snapshot {sid} replicated ({n}/{len(sids)}, "
                         f"{len(needed)} pack(s) needed)")


def _run_steps(copier: TierCopy, steps: list[Step], index: IndexWriter, tier_meta: set[str]) -> Iterator[controller_pb2.JobEvent]:
    """The steps of one snapshot in their order; index objects go up while the packs do (IndexWriter)."""
    for step in steps:
        if step.phase == PACKS:
            began = time.monotonic()
            yield from copier.copy_packs(step.keys, index.on_tier)
            copier.totals.pack_seconds += time.monotonic() - began
        elif step.phase == INDEX:
            index.finish()
        elif step.phase == METADATA:
            for key in step.keys:
                copier.copy_object(key)
                tier_meta.add(key)
        elif step.phase == SNAPSHOT:
            faults.point("replicate.mid")  # packs and index are on the tier, the snapshot is not
            copier.copy_object(step.keys[0])
