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
from ragbackup.config import TierConfig
from ragbackup.repo.index import encode_index
from ragbackup.repo.packs import BlobLocation, blob_aad, pack_key, parse_header, read_header
from ragbackup.repo.repository import Repository
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events
from ragbackup.controller.policy.replicate import INDEX, METADATA, PACKS, SNAPSHOT, metadata_missing, plan_snapshot

T = TypeVar("T")
ID_BATCH = 5000  # blob ids looked up at once
INDEX_PACKS = 64  # packs described by one index object on the tier
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


def verify_pack(src: Repository, pack_id: str, data: bytes, locs: list[BlobLocation]) -> None:
    """Authenticate every byte about to be sent: magic, trailer, the sealed header naming exactly the
    index's blobs, and every sealed blob (AES-GCM under its id). IntegrityError names the pack."""
    header = parse_header(src.cipher, pack_id, data)
    if {b.id for b in header} != {b.id for b in locs}:
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
        missing = self.dst.index.missing(ids) if ids else set()
        if not missing:
            return set()
        found = self.src.index.lookup_many(list(missing))
        lost = missing - set(found)
        if lost:
            raise errors.IntegrityError(f"blob {next(iter(lost)).hex()} is referenced but not in the source's index")
        return {loc.pack for loc in found.values()}

    # --- packs ----------------------------------------------------------------------------

    def copy_packs(self, packs: tuple[str, ...]) -> Iterator[controller_pb2.JobEvent]:
        """Copy and verify `packs`, tier.max_concurrency at once; the first failure cancels the rest."""
        total = sum(self.pack_sizes.get(p, 0) for p in packs)
        done = 0
        with futures.ThreadPoolExecutor(self.tier.max_concurrency, thread_name_prefix=f"repl-{self.tier.name}") as ex:
            pending = {ex.submit(self.copy_pack, pid): pid for pid in packs}
            try:
                for fut in futures.as_completed(pending):
                    done += fut.result()
                    if self.cancel.is_set():
                        raise errors.Cancelled(f"replication to {self.tier.name} was cancelled")
                    yield events.progress(f"packs to {self.tier.name}", done, total, "B")
            finally:
                for fut in pending:
                    fut.cancel()

    def copy_pack(self, pid: str) -> int:
        """One pack onto the tier (skipped when the tier already holds it whole).

        Streamed: authenticated here, then sent with a SHA-256 the server checks (what it stored is
        what was authenticated). Server-side: the copy's size and authenticated header are checked
        on the tier (the bytes never passed through the controller).
        """
        key, size = pack_key(pid), self.pack_sizes[pid]
        locs = self.src.index.blobs_in_pack(pid)
        if self.tier_packs.get(pid) == size:
            return size
        if self.server_side:
            retried(lambda: self.dst_s3.copy_from(self.src_s3, key))
            self.check_on_tier(pid, size, locs)
            with self._lock:
                self.totals.server_side += 1
        else:
            data = self.src.storage.get(key)  # the stack retries (Retrying)
            if len(data) != size:
                raise errors.IntegrityError(f"pack {pid}: {len(data)} bytes in the source, the index says {size}")
            verify_pack(self.src, pid, data, locs)
            retried(lambda: self.dst_s3.put_checked(key, data, self.throttle))
        with self._lock:
            self.totals.packs += 1
            self.totals.bytes += size
        self.tier_packs[pid] = size
        return size

    def check_on_tier(self, pid: str, size: int, locs: list[BlobLocation]) -> None:
        """The tier's copy has the pack's size and its authenticated header names the index's blobs."""
        stored = retried(lambda: self.dst_s3.size(pack_key(pid)))
        if stored != size:
            raise errors.IntegrityError(f"pack {pid} on tier {self.tier.name}: {stored} bytes, expected {size}")
        header = retried(lambda: read_header(self.dst_s3, self.dst.cipher, pid, size))
        if {b.id for b in header} != {b.id for b in locs}:
            raise errors.IntegrityError(f"pack {pid} on tier {self.tier.name}: its header names other blobs")

    # --- index, metadata, snapshot ---------------------------------------------------------

    def write_index(self, packs: tuple[str, ...]) -> None:
        """Index objects on the tier describing `packs` (from the source's index), INDEX_PACKS per object."""
        for i in range(0, len(packs), INDEX_PACKS):
            entries = [(pid, self.pack_sizes[pid], self.src.index.blobs_in_pack(pid)) for pid in packs[i:i + INDEX_PACKS]]
            name, sealed = uuid.uuid4().hex, encode_index(self.dst.cipher, entries)
            self.dst.storage.put(f"index/{name}", sealed)  # the tier's stack retries (Retrying)
            self.dst.index.add_index_file(name, entries)
            self.totals.objects += 1

    def copy_object(self, key: str) -> None:
        """A small object (index, keys, config, dicts, snapshot) as it is: sealed objects stay sealed."""
        if self.server_side:
            retried(lambda: self.dst_s3.copy_from(self.src_s3, key))
        else:
            data = self.src.storage.get(key)
            retried(lambda: self.dst_s3.put_checked(key, data, self.throttle))
        self.totals.objects += 1


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
        for step in steps:
            if step.phase == PACKS:
                began = time.monotonic()
                yield from copier.copy_packs(step.keys)
                copier.totals.pack_seconds += time.monotonic() - began
            elif step.phase == INDEX:
                copier.write_index(step.keys)
            elif step.phase == METADATA:
                for key in step.keys:
                    copier.copy_object(key)
                    tier_meta.add(key)
            elif step.phase == SNAPSHOT:
                faults.point("replicate.mid")  # packs and index are on the tier, the snapshot is not
                copier.copy_object(f"snapshots/{sid}")
        copier.totals.snapshots += 1
        on_done(sid)
        yield events.log(f"{copier.tier.name}: snapshot {sid} replicated ({n}/{len(sids)}, "
                         f"{len(needed)} pack(s) needed)")
