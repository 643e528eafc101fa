"""Object lock on a tier: the locked storage stack, the bucket check, and retention maintenance.

In: a TierConfig with [tiers.NAME.object_lock], a clock and a progress callback. Out: the tier's
storage (every write with retain-until = now + days; deletes add delete markers), a StateError
when the bucket lacks object lock, and maintenance: every live object (the current version of
each key) whose retention has less than extend_within left is extended to now + days, so
nothing a snapshot uses ever loses its lock while prune's delete markers let the rest lapse.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ragbackup.ahead import batched
from ragbackup.clock import Clock
from ragbackup.config import TierConfig
from ragbackup.storage import S3Settings
from ragbackup.storage.versions import ObjectLock, ObjectVersion, VersionedS3Storage

from ragbackup.controller.policy.objectlock import extension_due, may_need_extension, new_until

log = logging.getLogger("ragbackup.controller")
Progress = Callable[[str, int, int], None]
BATCH = 256  # objects checked between progress reports


def tier_s3_settings(tier: TierConfig) -> S3Settings:
    return S3Settings(endpoint_url=tier.endpoint_url, bucket=tier.bucket, prefix=tier.prefix, region=tier.region,
                      access_key_id=tier.access_key_id, secret_access_key=tier.secret_access_key,
                      connect_timeout=tier.connect_timeout, read_timeout=tier.read_timeout,
                      max_attempts=tier.max_attempts, storage_class_for=tier.storage_classes())


def versioned(tier: TierConfig, clock: Clock | None = None) -> VersionedS3Storage:
    """The tier's bucket as a VersionedS3Storage (with its object lock when configured)."""
    lock = ObjectLock(tier.object_lock.days, tier.object_lock.mode) if tier.object_lock else None
    kw = {"clock": clock} if clock is not None else {}
    return VersionedS3Storage(tier_s3_settings(tier), lock, **kw)


def check(tier: TierConfig) -> bool:
    """StateError when a tier configured with object lock points at a bucket without it; False when the
    bucket does not exist yet (`ragctl init --tier` creates it with object lock)."""
    if tier.object_lock is None:
        return True
    storage = versioned(tier)
    if not storage.bucket_exists():
        return False
    storage.check_lock()
    return True


@dataclass
class MaintainStats:
    live: int = 0  # current versions seen
    checked: int = 0  # old enough to need a HeadObject
    extended: int = 0

    def to_dict(self) -> dict:
        return {"live": self.live, "checked": self.checked, "extended": self.extended}


def maintain(tier: TierConfig, clock: Clock, progress: Progress) -> MaintainStats:
    """Extend the retention of every live object of `tier` that has less than extend_within left.

    Objects are checked `max_concurrency` at a time (a HeadObject, then PutObjectRetention when due).
    """
    lock = tier.object_lock
    assert lock is not None, "maintain needs a locked tier"
    storage = versioned(tier, clock)
    storage.check_lock()
    stats = MaintainStats()
    now = clock.now()

    def keep(v: ObjectVersion) -> bool:
        if extension_due(storage.retention(v.key, v.version_id), now, lock):
            storage.extend_retention(v.key, v.version_id, new_until(now, lock))
            return True
        return False

    with ThreadPoolExecutor(max_workers=tier.max_concurrency, thread_name_prefix="lock-keep") as pool:
        for batch in batched(_candidates(storage, now, lock, stats), BATCH):
            stats.checked += len(batch)
            stats.extended += sum(pool.map(keep, batch))
            progress("extend", stats.checked, 0)
    log.info("tier %s: object lock maintenance: %d live object(s), %d checked, %d extended", tier.name,
             stats.live, stats.checked, stats.extended)
    return stats


def _candidates(storage: VersionedS3Storage, now, lock, stats: MaintainStats) -> Iterator[ObjectVersion]:
    """The live versions old enough that their retention may be near its end (counting every live one)."""
    for v in storage.list_versions(""):
        if v.is_latest and not v.delete_marker:
            stats.live += 1
            if may_need_extension(v.last_modified, now, lock):
                yield v

