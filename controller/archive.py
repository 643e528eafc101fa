"""Archive tiers: self-contained snapshot sets that lifecycle may transition and expire whole.

In: the source Repository (primary), a snapshot id and the archive tier's config. Out: a set under
`sets/<snapshot id>/` of the tier's bucket, a repository of its own: config, keys and dictionaries
copied, only the blobs that snapshot needs re-packed there (packs tagged rag-backup-object=pack, so
lifecycle transitions packs and nothing else), a new index, then the snapshot object last (a set
without it is unfinished and written again). Sets share nothing, so expiring one never touches
another. Next: archive_thaw.py makes a set's packs readable again before a restore.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import shutil
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.clock import Clock
from ragbackup.config import TierConfig
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import Repository
from ragbackup.repo.writer import TREE_STREAM, BlobWriter
from ragbackup.storage import S3Settings, retrying
from ragbackup.storage.base import Storage
from ragbackup.storage.versions import ObjectLock, VersionedS3Storage

from ragbackup.controller.policy.lifecycle import PACK_TAG, RestoreEstimate, restore_estimate

log = logging.getLogger("ragbackup.controller")
SETS = "sets/"
SNAPSHOTS = "snapshots/"
_COPIED_AS_IS = ("config", "keys/", "dicts/")  # what a set needs besides packs, index and the snapshot
COPY_IDS = 2000  # chunk ids of a component read and added to a set at once


def tier_settings(tier: TierConfig, below: str = "") -> S3Settings:
    """S3Settings of `tier`, optionally for a key prefix below the tier's own."""
    prefix = "/".join(p.strip("/") for p in (tier.prefix, below) if p.strip("/"))
    return S3Settings(endpoint_url=tier.endpoint_url, bucket=tier.bucket, prefix=prefix, region=tier.region,
                      access_key_id=tier.access_key_id, secret_access_key=tier.secret_access_key,
                      connect_timeout=tier.connect_timeout, read_timeout=tier.read_timeout,
                      max_attempts=tier.max_attempts, storage_class_for=tier.storage_classes())


def set_storage(tier: TierConfig, sid: str, clock: Clock | None = None) -> VersionedS3Storage:
    """The storage of one set: its own prefix, packs tagged for the lifecycle filter, the tier's object lock."""
    kw = {"clock": clock} if clock is not None else {}
    lock = ObjectLock(tier.object_lock.days, tier.object_lock.mode) if tier.object_lock else None
    return VersionedS3Storage(tier_settings(tier, f"{SETS}{sid}"), lock, tags_for={"data/": "=".join(PACK_TAG)}, **kw)


def tier_root(tier: TierConfig) -> VersionedS3Storage:
    return VersionedS3Storage(tier_settings(tier))


@dataclass(frozen=True)
class SetInfo:
    """One archive set: its snapshot, the classes its packs are in, and how long a restore waits."""

    sid: str
    packs: int
    bytes: int
    classes: tuple[str, ...]
    estimate: RestoreEstimate

    def to_dict(self) -> dict:
        e = self.estimate
        return {"id": self.sid, "packs": self.packs, "bytes": self.bytes, "storage_classes": list(self.classes),
                "restore_wait": e.text(), "restore_wait_max_s": e.high.total_seconds()}


def archived_ids(root: Storage) -> list[str]:
    """Snapshot ids of the complete sets (those whose snapshot object is stored)."""
    out = []
    for obj in root.list(SETS):
        sid, _, rest = obj.key[len(SETS):].partition("/")
        if rest == f"{SNAPSHOTS}{sid}":
            out.append(sid)
    return sorted(out)


def describe_set(tier: TierConfig, sid: str) -> SetInfo:
    """Pack count, size and storage classes of one set (one listing), with its restore estimate."""
    storage = set_storage(tier, sid)
    packs = list(storage.list_classes("data/"))
    classes = tuple(sorted({c for _, _, c in packs}))
    restore_tier = tier.archive.restore_tier if tier.archive else "Standard"
    return SetInfo(sid, len(packs), sum(s for _, s, _ in packs), classes, restore_estimate(classes, restore_tier))


# --------------------------------------------------------------------------- writing a set

@dataclass
class SetStats:
    sid: str
    blobs: int = 0
    bytes_stored: int = 0
    packs: int = 0
    skipped: bool = False  # the set was complete already

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def write_set(source: Repository, unlocker: Unlocker, sid: str, target: Storage, work_dir: str) -> SetStats:
    """Copy snapshot `sid` with every blob it needs into the empty (or unfinished) set `target`."""
    stats = SetStats(sid)
    if target.exists(f"{SNAPSHOTS}{sid}"):
        stats.skipped = True
        return stats
    manifest = source.load_snapshot(sid)  # NotFound before anything is written
    for prefix in _COPIED_AS_IS:
        for obj in source.storage.list(prefix):
            target.put(obj.key, source.storage.get(obj.key))
    os.makedirs(work_dir, mode=0o750, exist_ok=True)
    try:
        repo = Repository.open(target, unlocker, os.path.join(work_dir, "cache"))
        try:
            _copy_blobs(source, repo, manifest, work_dir, stats)
        finally:
            repo.close()
        target.put(f"{SNAPSHOTS}{sid}", source.storage.get(f"{SNAPSHOTS}{sid}"))  # last: the set is complete
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return stats


def _copy_blobs(source: Repository, repo: Repository, manifest: dict, work_dir: str, stats: SetStats) -> None:
    """Every tree and chunk blob of the snapshot, read from `source` and re-packed into `repo` in the order a
    restore reads them: each component's trees, then its files' chunks, in packs of the component's own (as
    backups write them, repo/writer.py), so a restore from the set reads each pack once, front to back."""
    writer = BlobWriter(repo, os.path.join(work_dir, "packs"))
    try:
        for name, comp in manifest["components"].items():
            trees = [bytes.fromhex(t) for t in comp["tree"]]
            stats.blobs += _copy_ids(source, writer, trees, TREE_STREAM)
            chunks = (c for e in source.read_tree(trees, work_dir) for c in e.chunks)
            while batch := list(itertools.islice(chunks, COPY_IDS)):
                stats.blobs += _copy_ids(source, writer, batch, name)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    stats.bytes_stored, stats.packs = writer.stats.bytes_stored, writer.stats.packs


def _copy_ids(source: Repository, writer: BlobWriter, ids: list[bytes], stream: str) -> int:
    """The blobs of `ids` the set does not hold yet, read from `source` and added to `stream`; returns how many."""
    wanted = list(dict.fromkeys(ids[i] for i in writer.missing(ids)))
    if not wanted:
        return 0
    return writer.add_many([(loc.id, loc.type, payload, loc.compressed, loc.raw_length)
                            for payload, loc in source.read_payloads(wanted)], stream)


def open_set(tier: TierConfig, sid: str, unlocker: Unlocker, cache_dir: str) -> Repository:
    """The set's repository, index synced (its index and snapshot objects are never transitioned)."""
    repo = Repository.open(retrying(set_storage(tier, sid)), unlocker, cache_dir)
    repo.sync_index()
    if sid not in repo.snapshot_ids():
        raise errors.NotFound(f"archive tier {tier.name!r} has no complete set for snapshot {sid}")
    return repo
