"""The replicate job: bring each offsite tier up to date with its feed, snapshot by snapshot.

In: a ReplicateRequest (one tier, or every tier in feed order) and the JobContext. Out: the
job's JobEvents; per tier, the planner (policy/replicate.py) picks the snapshots it lacks, the
copier (replication.py) copies them in write order, and the queue (replication_queue.py) records
each one done, or the failure that left the rest waiting. The background catch-up
(replication_loop.py), `ragctl replicate` and the after-backup hook all run this job.
"""
from __future__ import annotations

import logging
import time
from typing import Iterator

from ragbackup import clock, errors
from ragbackup.config import ControllerConfig
from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.policy.replicate import SourceSnapshot, snapshots_to_copy, too_old
from ragbackup.controller.policy.retention import parse_duration
from ragbackup.controller.replication import TierCopy, copy_snapshots
from ragbackup.controller.repositories import PRIMARY

log = logging.getLogger("ragbackup.controller")


def lock_name(tier: str) -> str:
    """The lock replication, forget and prune of one tier share: a tier prune never runs mid-copy."""
    return f"tier-{tier}"


def tier_order(cfg: ControllerConfig, only: str = "") -> list[str]:
    """Tiers fed from the primary first, then those fed from them (a DR fed from s3 after s3)."""
    if only and only not in cfg.tiers:
        raise errors.UsageError(f"no tier named {only!r} (configured: {', '.join(cfg.tiers) or 'none'})")
    names = [only] if only else list(cfg.tiers)
    depth = {}
    for name in names:
        d, feed = 0, cfg.tiers[name].feed
        while feed != PRIMARY:
            d, feed = d + 1, cfg.tiers[feed].feed
        depth[name] = d
    return sorted(names, key=lambda n: (depth[n], n))


def run(ctx: JobContext, req: controller_pb2.ReplicateRequest) -> Iterator[controller_pb2.JobEvent]:
    names = tier_order(ctx.cfg, req.tier)
    if not names:
        raise errors.UsageError("no offsite tiers configured: add a [tiers.NAME] table (docs/OFFSITE.md)")
    results, failed = {}, []
    for name in names:
        try:
            with ctx.lock(lock_name(name)):
                if ctx.cfg.tiers[name].kind == "archive":  # self-contained sets, not a copy (docs/ARCHIVE.md)
                    from ragbackup.controller.jobs.archive import replicate_archive
                    results[name] = yield from replicate_archive(ctx, name)
                else:
                    results[name] = yield from replicate_tier(ctx, name)
        except (errors.StorageUnavailable, errors.RepositoryError, errors.IntegrityError, errors.ConfigError) as exc:
            # One tier's trouble does not hold the others back: a DR fed from s3 still catches up
            # from s3 with the primary's endpoint (or the local volume itself) gone.
            failed.append(exc)
            yield ctx.log(f"{name}: replication failed: {exc.message}")
    if failed:
        raise failed[0]
    copied = sum(r["snapshots"] for r in results.values())
    ctx.count(bytes_sent=sum(r["bytes"] for r in results.values()))
    what = "; ".join(f"{n}: {r['packs']} pack(s), {r['bytes']} bytes, {r['plan_seconds']:.1f}s planning"
                     for n, r in results.items())
    yield ctx.result(f"replicated {copied} snapshot(s) ({what})", {"tiers": results})


def replicate_tier(ctx: JobContext, name: str):
    """Plan and copy what tier `name` lacks; the queue keeps what is left when it fails."""
    ctl, tier = ctx.controller, ctx.cfg.tiers[name]
    began = time.monotonic()
    queue = ctl.replication
    try:
        src, src_catalog = ctl.synced(tier.feed)
        dst = ctl.repositories.target(name, src)
        on_tier = set(dst.snapshot_ids())
        source = [SourceSnapshot(r.id, clock.parse_iso(r.time)) for r in src_catalog.list()]
        keep = parse_duration(tier.retention.keep_within) if tier.retention.keep_within else None
        now = ctx.clock.now()
        todo = snapshots_to_copy(source, on_tier, queue.forgotten(name), keep, now)
        queue.enqueue(name, todo, now)
        settled = [s for s in queue.waiting(name) if s not in todo]  # on the tier, too old, or gone from the source
        if settled:
            queue.done(name, settled, now)
        yield ctx.log(f"{name}: {len(todo)} snapshot(s) to copy from {tier.feed}"
                      + (f"; {len(too_old(source, on_tier, keep, now))} older than its keep_within skipped"
                         if keep else ""))
        copier = TierCopy(src, dst, tier, ctx.cancel)
        opened = time.monotonic()
        how = "server-side (one endpoint)" if copier.server_side else "through the controller"
        if todo:
            log.info("replicating %d snapshot(s) to tier %s from %s, %s", len(todo), name, tier.feed, how)
        tier_catalog = ctl.catalog_of(name)

        def done(sid: str) -> None:
            queue.done(name, [sid], ctx.clock.now())
            ctl.sync_catalog(dst, tier_catalog)

        yield from copy_snapshots(copier, todo, done)
        if not todo:
            queue.done(name, [], now)
    except errors.Cancelled:
        raise  # the daemon stopping or the caller gone: no failure of the tier
    except errors.RagBackupError as exc:
        queue.failed(name, exc.message, ctx.clock.now())
        raise
    t = copier.totals
    if t.snapshots:
        log.info("replicated %d snapshot(s) to tier %s: %d pack(s), %d bytes in %.2fs (%.2fs planning, "
                 "%.2fs copying packs, %.2fs finishing the index, %.2fs opening; %d index object(s) copied as they "
                 "are)", t.snapshots, name, t.packs, t.bytes, time.monotonic() - began, t.plan_seconds, t.pack_seconds,
                 t.index_wait_seconds, opened - began, t.index_copied)
    return {"snapshots": t.snapshots, "packs": t.packs, "bytes": t.bytes, "objects": t.objects,
            "server_side_packs": t.server_side, "feed": tier.feed, "plan_seconds": round(t.plan_seconds, 3)}
