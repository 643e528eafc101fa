"""A Storage wrapper that serves ranged reads of packs from whole-pack downloads held in memory.

In: a remote Storage (an offsite tier's S3 stack) and a byte budget. Out: the same Storage contract;
`get_range` of a pack (`data/...`) downloads the whole pack once (one GET, the transfer S3 serves
fastest) and answers from the copy in memory, least recently used copies dropped past the budget.
Restores read blobs in the order backups wrote them, so nearly every byte of a pack fetched is used;
on SeaweedFS a 32 MiB GET ran at ~300 MiB/s where 1 MiB ranged GETs reached ~30.

Memory, not a file: a copy written to the local disk cost the restore that disk's bandwidth
(1.7 GB written beside the 2.5 GB restored at scale 1, flushed by the agent's syncfs when both
share a filesystem) and the download manager's CPU. The budget holds the packs two restore lanes
read and READ_AHEAD ahead of each, with room for two more; less made a scale-1 restore fetch
packs again (100 fetches of 75 packs at 160 MiB), more only raised the controller's peak RSS
(800 MB at 512 MiB, 490 MB at 256 MiB). It works because a backup writes each component's data
to packs of its own (repo/writer.py): a restore lane reads its packs once, front to back.

Held only while they are read: IDLE_RELEASE seconds after the last read, every copy is dropped, so
a controller that restored from a tier does not keep its budget's worth of packs until the next job
(docs/OPERATIONS.md, "Restoring from a tier: the controller's memory").
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from concurrent import futures
from dataclasses import dataclass, field

from ragbackup import errors
from ragbackup.storage.base import ObjectInfo, Storage
from ragbackup.storage.local import check_range, short_read

PACK_PREFIX = "data/"
DEFAULT_BUDGET = 256 * 1024 * 1024  # 8 packs of the default 32 MiB
READ_AHEAD = 2  # packs downloaded ahead of the reader, at once, when the order of reads is known
IDLE_RELEASE = 20.0  # seconds without a read of a pack after which the copies held are dropped

log = logging.getLogger("ragbackup.storage")


@dataclass
class Fetched:
    """What a PackCache has downloaded so far: packs (a pack read again after eviction counts again), bytes."""

    packs: int = 0
    bytes: int = 0


@dataclass
class _Order:
    """One reader's packs in the order it reads them (keys, their places), and those fetched ahead."""

    keys: list[str] = field(default_factory=list)
    at: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)  # fetched ahead once: not again for this order


class PackCache:
    """`inner` with its packs' ranged reads answered from whole copies in memory (at most `budget` bytes)."""

    def __init__(self, inner: Storage, budget: int = DEFAULT_BUDGET, idle_release: float = IDLE_RELEASE,
                 ahead: int = READ_AHEAD):
        self.inner, self.budget, self.idle_release = inner, budget, idle_release
        self.ahead = ahead  # packs fetched ahead of each read (read_ahead); 0: none
        self._last_read = time.monotonic()
        self._release_timer: threading.Timer | None = None
        self._held: OrderedDict[str, bytes] = OrderedDict()  # key -> the pack, least recently used first
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._orders: dict[Hashable, _Order] = {}  # each reader's order (read_ahead's `order`)
        self._pool: futures.ThreadPoolExecutor | None = None
        self.fetched = Fetched()

    def __repr__(self) -> str:
        return f"PackCache({self.inner!r})"

    def describe(self) -> str:
        return self.inner.describe()

    def held_bytes(self) -> int:
        """Bytes of the packs held now (at most the budget, or one pack when a pack alone exceeds it)."""
        with self._lock:
            return sum(map(len, self._held.values()))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if not key.startswith(PACK_PREFIX):
            return self.inner.get_range(key, offset, length)
        check_range(offset, length)
        self._last_read = time.monotonic()
        pack = self._pack(key)
        if offset + length > len(pack):
            raise short_read(self.describe(), key, offset, length, max(0, len(pack) - offset))
        return pack[offset:offset + length]

    def read_ahead(self, keys: list[str], more: bool = False, order: Hashable = None) -> None:
        """The packs about to be read, in order: from now on each read also starts downloading the
        `ahead` packs after it (a failed download is only logged: the read itself retries it).
        A pack is fetched ahead once per order: one dropped from memory since is fetched again only
        by a read of it (a pack of trees read by each component would otherwise fetch the packs after
        it in the order again and again).

        `more`: `keys` continue the order given so far (a restore finds its order while it reads;
        keys already in it keep their place) instead of starting a new one. Those of `keys` that
        land among the first `ahead` places start downloading at once. `order` names the reader:
        two restores from one tier at once each keep their own order (end_order forgets one).
        """
        if self.ahead <= 0:
            return
        with self._lock:
            o = self._orders.get(order) if more else None
            if o is None:
                o = self._orders[order] = _Order()
            first = len(o.keys)
            for key in keys:
                if key not in o.at:
                    o.at[key] = len(o.keys)
                    o.keys.append(key)
            if self._pool is None:
                self._pool = futures.ThreadPoolExecutor(self.ahead, thread_name_prefix="pack-read-ahead")
            pool, now = self._pool, o.keys[first:self.ahead]
            o.done.update(now)
        for key in now:
            pool.submit(self._prefetch, key)

    def end_order(self, order: Hashable = None) -> None:
        """Forget reader `order`'s order (its restore ended): its packs are no longer fetched ahead."""
        with self._lock:
            self._orders.pop(order, None)

    def _ahead(self, key: str) -> None:
        """Start downloading the packs after `key` in every order that holds it, each once per order."""
        with self._lock:
            if self._pool is None:
                return
            todo: list[str] = []
            for o in self._orders.values():
                at = o.at.get(key)
                if at is None:
                    continue
                for k in o.keys[at + 1:at + 1 + self.ahead]:
                    if k not in self._held and k not in self._loading and k not in o.done and k not in todo:
                        o.done.add(k)
                        todo.append(k)
        for k in todo:
            self._pool.submit(self._prefetch, k)

    def _prefetch(self, key: str) -> None:
        try:
            self._pack(key, ahead=False)
        except errors.RagBackupError as exc:
            log.info("read-ahead of %s failed (the restore reads it again): %s", key, exc.message)

    def _pack(self, key: str, ahead: bool = True) -> bytes:
        """Pack `key` whole, downloaded once even when many threads ask at the same time."""
        if ahead:
            self._ahead(key)
        with self._lock:
            pack = self._held.get(key)
            if pack is not None:
                self._held.move_to_end(key)
                return pack
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                pack = self._held.get(key)
                if pack is not None:
                    return pack
            try:
                pack = self.inner.get(key)
            except BaseException:
                with self._lock:  # the next read retries; meanwhile nothing is downloading
                    self._loading.pop(key, None)
                raise
            with self._lock:
                self.fetched.packs += 1
                self.fetched.bytes += len(pack)
                self._held[key] = pack
                self._loading.pop(key, None)
                self._evict(keep=key)
                self._release_later(self.idle_release)
        return pack

    def _release_later(self, delay: float) -> None:
        """Check for idleness `delay` seconds from now, unless a check is already due (the lock held)."""
        if self._release_timer is None:
            self._release_timer = threading.Timer(delay, self._release_if_idle)
            self._release_timer.daemon = True
            self._release_timer.start()

    def _release_if_idle(self) -> None:
        """Drop every copy when no pack was read, and none was downloading, for idle_release seconds;
        else check again when that time has passed since the last read. The read-ahead order stays
        (a few keys): a pack dropped is fetched again by its read, as after an eviction."""
        with self._lock:
            self._release_timer = None
            idle = time.monotonic() - self._last_read
            if idle < self.idle_release or self._loading:
                self._release_later(max(self.idle_release - idle, 0.1 * self.idle_release))
                return
            self._held.clear()

    def _evict(self, keep: str) -> None:
        """Drop the least recently used packs, never `keep`, until the rest fit the budget (the lock held)."""
        total = sum(map(len, self._held.values()))
        for key in [k for k in self._held if k != keep]:
            if total <= self.budget:
                return
            total -= len(self._held.pop(key))

    def _forget(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._held.pop(key, None)

    # --- the rest of the contract passes through ---------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def put_file(self, key: str, path: str) -> None:
        self.inner.put_file(key, path)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_to_file(self, key: str, path: str) -> None:
        self.inner.get_to_file(key, path)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._forget([key])
        self.inner.delete(key)

    def delete_many(self, keys: list[str]) -> None:
        self._forget(keys)
        self.inner.delete_many(keys)
