"""Archive tiers in the controller: listing sets with their restore time, restoring from a set.

In: the Controller, an archive tier's name, snapshot ids and the RTO. Out: snapshot summaries
and RestoreTimes for `ragctl snapshots --tier T` (per set: the classes its packs are in and the
expected RestoreObject wait, marked when slower than the RTO); for a restore, a repository view
"TIER#SNAPSHOT" of the set, after its frozen packs were thawed (JobEvents while it waits).
Copy tiers get RestoreTimes too: their data/ classes (one listing) apply to every snapshot.
"""
from __future__ import annotations

import datetime as dt
import os
import time
from typing import Iterator

from ragbackup import errors
from ragbackup.clock import SYSTEM, Clock
from ragbackup.config import TierConfig
from ragbackup.storage import retrying
from ragbackup.storage.packcache import PackCache
from ragbackup.v1 import controller_pb2

from ragbackup.controller import archive, archive_thaw, asof, events
from ragbackup.controller.catalog import Catalog
from ragbackup.controller.lockkeep import versioned
from ragbackup.controller.policy.lifecycle import RestoreEstimate, restore_estimate
from ragbackup.controller.repositories import PRIMARY, make_unlocker
from ragbackup.controller.state import Controller


def is_archive(ctl: Controller, name: str) -> bool:
    tier = ctl.cfg.tiers.get(name)
    return tier is not None and tier.kind == "archive"


def not_archive(ctl: Controller, name: str, verb: str) -> str:
    """`name`, unless it is an archive tier (UsageError saying what applies there instead)."""
    if is_archive(ctl, name):
        how = {"forget": "sets expire by the tier's lifecycle rules (`ragctl lifecycle apply`)",
               "prune": "sets share nothing, so there is nothing to prune; they expire by lifecycle",
               "drill": "restore a set with `ragctl restore ID --from TIER --target DIR`"}[verb]
        raise errors.UsageError(f"{verb} does not apply to archive tier {name!r}: {how}")
    return name


def rto(ctl: Controller) -> dt.timedelta:
    return ctl.cfg.objectives.rto


def restore_time(sid: str, classes: tuple[str, ...], est: RestoreEstimate, rto_span: dt.timedelta):
    return controller_pb2.RestoreTime(snapshot=sid, storage_classes=list(classes), wait=est.text(),
                                      wait_max_s=est.high.total_seconds(), slower_than_rto=est.slower_than(rto_span))


def copy_tier_times(ctl: Controller, name: str, sids: list[str]) -> list[controller_pb2.RestoreTime]:
    """Every snapshot of a deduplicated tier reads from the same packs: the tier's data/ classes count."""
    tier = ctl.cfg.tiers[name]
    classes = tuple(sorted({c for _, _, c in versioned(tier).list_classes("data/")}))
    est = restore_estimate(classes)
    return [restore_time(sid, classes, est, rto(ctl)) for sid in sids]


def list_sets(ctl: Controller, name: str) -> controller_pb2.ListSnapshotsReply:
    """The complete sets of archive tier `name`, each with its restore time against the RTO."""
    tier = ctl.cfg.tiers[name]
    out, times, warnings = [], [], []
    for sid in archive.archived_ids(archive.tier_root(tier)):
        try:
            view = set_view(ctl, name, sid)
            repo, catalog = ctl.synced(view)
            rec = catalog.get(sid)
        except errors.RagBackupError as exc:
            warnings.append(f"archive set {sid}: {exc.message}")
            continue
        info = archive.describe_set(tier, sid)
        t = rec.manifest.totals()
        out.append(controller_pb2.SnapshotSummary(
            id=rec.id, time=rec.time, kind=rec.kind, reason=rec.reason, components=list(rec.components),
            files=t["files"], bytes_total=t["bytes_total"], bytes_added=t["bytes_added"], host=rec.host))
        times.append(restore_time(sid, info.classes, info.estimate, rto(ctl)))
    return controller_pb2.ListSnapshotsReply(snapshots=out, warnings=warnings, restore_times=times,
                                             rto_s=rto(ctl).total_seconds())


def set_view(ctl: Controller, name: str, sid: str) -> str:
    """Register (once) the repository view of one set: "TIER#SNAPSHOT"."""
    view = f"{name}#{sid}"
    if view not in ctl.tier_catalogs:
        base = os.path.join(ctl.state_dir, "archive", name, sid)
        os.makedirs(base, mode=0o750, exist_ok=True)
        tier = ctl.cfg.tiers[name]
        storage = PackCache(retrying(archive.set_storage(tier, sid)), budget=tier.restore_memory, ahead=tier.read_ahead)
        ctl.repositories.add_view(view, storage, os.path.join(base, "cache"))
        ctl.tier_catalogs[view] = Catalog(os.path.join(base, "catalog.sqlite"))
    return view


def resolve_set(ctl: Controller, name: str, ref: str) -> str:
    """The set a restore names: an id, or "latest" (the newest set)."""
    ids = archive.archived_ids(archive.tier_root(ctl.cfg.tiers[name]))
    if ref in ("", "latest"):
        if not ids:
            raise errors.NotFound(f"archive tier {name!r} holds no complete set yet (run `ragctl archive`)")
        return ids[-1]
    if ref not in ids:
        raise errors.NotFound(f"archive tier {name!r} has no set for snapshot {ref}")
    return ref


def thaw_events(tier: TierConfig, sid: str, clock: Clock) -> Iterator[controller_pb2.JobEvent]:
    """RestoreObject for the set's frozen packs, progress while S3 thaws them, bounded by restore_wait."""
    storage = archive.set_storage(tier, sid)
    gen = archive_thaw.thawing(storage, tier.archive, clock, time.sleep)
    first = True
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            report = stop.value
            break
        if first:
            first = False
            yield events.log(f"{total} pack(s) of set {sid} are in an archive class: RestoreObject requested "
                             f"({tier.archive.restore_tier}), waiting up to {tier.archive.restore_wait}")
        yield events.progress("thaw", done, total, "objects")
    if report.objects:
        yield events.log(f"set {sid}: {report.objects} pack(s) readable after {report.waited_s:.0f} s")


def restore_source(ctl: Controller, name: str, ref: str, clock: Clock) -> Iterator[controller_pb2.JobEvent]:
    """Generator for a restore from an archive tier: thaws, then returns the set view's name."""
    sid = resolve_set(ctl, name, ref)
    yield from thaw_events(ctl.cfg.tiers[name], sid, clock)
    return set_view(ctl, name, sid)


def unlocker(ctl: Controller):
    return make_unlocker(ctl.repositories.config(PRIMARY))


def resolve_source(ctl: Controller, source: str, req) -> Iterator[controller_pb2.JobEvent]:
    """Generator returning the repository a restore reads: `source` itself, its view as of
    `req.as_of` (asof.py), or for an archive tier the set's view once its packs are thawed
    (a dry run sends no RestoreObject and only says how long the wait would be)."""
    if req.as_of:
        return asof.view(ctl, source, req.as_of)
    if not is_archive(ctl, source):
        return source
    tier = ctl.cfg.tiers[source]
    sid = resolve_set(ctl, source, req.id)
    if req.dry_run:
        info = archive.describe_set(tier, sid)
        yield events.log(f"set {sid}: packs in {', '.join(info.classes) or 'no class'}; a restore would wait "
                         f"{info.estimate.text()} for RestoreObject (RTO {rto(ctl)})")
    else:
        yield from thaw_events(tier, sid, SYSTEM)
    return set_view(ctl, source, sid)
