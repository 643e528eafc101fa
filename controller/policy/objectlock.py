"""When a locked object's retention must be extended: pure decisions of lock maintenance.

In: an object's write time or retain-until date, "now" and the tier's ObjectLockConfig. Out:
booleans and the new retain-until date. No I/O (controller/lockkeep.py does the S3 calls).
"""
from __future__ import annotations

import datetime as dt

from ragbackup.tier_options import ObjectLockConfig


def may_need_extension(last_modified: dt.datetime, now: dt.datetime, lock: ObjectLockConfig) -> bool:
    """False for objects written so recently that the retention set at their write still has more than
    `extend_within` left (it was at least write time + days), so no HeadObject is needed."""
    return last_modified + lock.period - lock.extend_within <= now


def extension_due(retain_until: dt.datetime | None, now: dt.datetime, lock: ObjectLockConfig) -> bool:
    """True when less than `extend_within` of the retention is left (or the object has none)."""
    return retain_until is None or retain_until - now < lock.extend_within


def new_until(now: dt.datetime, lock: ObjectLockConfig) -> dt.datetime:
    return (now + lock.period).replace(microsecond=0)
