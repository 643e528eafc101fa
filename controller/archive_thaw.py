"""Making an archive set readable: RestoreObject for every object in an archive class, then wait.

In: the set's VersionedS3Storage, the tier's ArchiveConfig (restore tier, days, wait, poll), a
clock, a sleep function and a progress callback. Out: returns once every object is readable; a
StorageUnavailable naming how many are still being restored when the configured wait runs out
(the requests stay valid: running the restore again later picks up where it stopped).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Generator

from ragbackup import errors
from ragbackup.clock import Clock
from ragbackup.tier_options import ArchiveConfig
from ragbackup.storage.versions import ARCHIVE_CLASSES, VersionedS3Storage

log = logging.getLogger("ragbackup.controller")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ThawReport:
    objects: int  # objects in an archive class
    requested: int  # RestoreObject requests this call sent
    waited_s: float


def frozen_keys(storage: VersionedS3Storage, prefix: str = "data/") -> list[str]:
    """Keys under `prefix` whose storage class needs RestoreObject before a GET."""
    return [key for key, _, cls in storage.list_classes(prefix) if cls in ARCHIVE_CLASSES]


def _pending(storage: VersionedS3Storage, keys: list[str]) -> list[str]:
    return [k for k in keys if not storage.restore_state(k).readable]


def _request(storage: VersionedS3Storage, keys: list[str], cfg: ArchiveConfig) -> int:
    sent = 0
    for key in keys:
        state = storage.restore_state(key)
        if not state.readable and not state.ongoing:
            storage.request_restore(key, cfg.restore_days, cfg.restore_tier)
            sent += 1
    return sent


def thawing(storage: VersionedS3Storage, cfg: ArchiveConfig, clock: Clock,
            sleep: Callable[[float], None]) -> Generator[tuple[int, int], None, ThawReport]:
    """RestoreObject for each frozen object of the set, then poll HeadObject until all are readable;
    yields (readable, total) before each wait, returns the report."""
    keys = frozen_keys(storage)
    if not keys:
        return ThawReport(0, 0, 0.0)
    sent = _request(storage, keys, cfg)
    log.info("%s: %d object(s) in an archive class, %d RestoreObject request(s) sent (%s tier)",
             storage.describe(), len(keys), sent, cfg.restore_tier)
    start = clock.now()
    pending = _pending(storage, keys)
    while pending:
        yield len(keys) - len(pending), len(keys)
        waited = clock.now() - start
        if waited >= cfg.restore_wait:
            raise errors.StorageUnavailable(
                f"{storage.describe()}: {len(pending)} of {len(keys)} object(s) are still being restored from "
                f"the archive class after {waited}; the restore requests stay valid: run the restore again later, "
                "or raise [tiers.NAME.archive] restore_wait")
        sleep(min(cfg.restore_poll, cfg.restore_wait - waited).total_seconds())
        pending = _pending(storage, pending)
    yield len(keys), len(keys)
    return ThawReport(len(keys), sent, (clock.now() - start).total_seconds())


def thaw(storage: VersionedS3Storage, cfg: ArchiveConfig, clock: Clock, sleep: Callable[[float], None],
         progress: Progress) -> ThawReport:
    """thawing() with a progress callback."""
    gen = thawing(storage, cfg, clock, sleep)
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        progress("thaw", done, total)
