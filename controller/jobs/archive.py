"""The archive job: write the self-contained sets an archive tier lacks.

In: an ArchiveRequest (one tier or every archive tier; explicit snapshot ids or the policy's
choice: the first snapshot of each period without a set) and the JobContext. Out: one set per
snapshot (archive.write_set), JobEvents per set, totals in the record. Holds the tier's lock.
"""
from __future__ import annotations

import os
from typing import Iterator

from ragbackup import clock, errors
from ragbackup.storage import retrying
from ragbackup.v1 import controller_pb2

from ragbackup.controller import archive
from ragbackup.controller.jobs.replicate import lock_name
from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.policy.archive import sets_due
from ragbackup.controller.repositories import PRIMARY, make_unlocker


def archive_tiers(cfg, only: str = "") -> list[str]:
    names = [n for n, t in cfg.tiers.items() if t.kind == "archive"]
    if only:
        if only not in names:
            raise errors.UsageError(f"{only!r} is not an archive tier (archive tiers: {', '.join(names) or 'none'})")
        return [only]
    return names


def write_due(ctx: JobContext, name: str, ids: list[str]) -> Iterator[controller_pb2.JobEvent]:
    """Write the sets tier `name` lacks; returns the per-set stats."""
    ctl, tier = ctx.controller, ctx.cfg.tiers[name]
    src, catalog = ctl.synced(tier.feed)
    have = archive.archived_ids(archive.tier_root(tier))
    due = [i for i in ids if i not in have] if ids else sets_due(
        [(r.id, clock.parse_iso(r.time)) for r in catalog.list()], have, tier.archive.every,
        tier.retention.timezone)
    yield ctx.log(f"{name}: {len(due)} set(s) to write ({len(have)} archived)")
    out = []
    for sid in due:
        ctx.check_cancel()
        work = os.path.join(ctx.staging_dir, f".archive-{name}-{sid}")
        stats = archive.write_set(src, make_unlocker(ctl.repositories.config(PRIMARY)), sid,
                                  retrying(archive.set_storage(tier, sid)), work)
        ctx.count(bytes_sent=stats.bytes_stored)
        out.append(stats.to_dict())
        yield ctx.log(f"{name}: set {sid}: {stats.blobs} blob(s) in {stats.packs} pack(s), {stats.bytes_stored} B")
    return out


def run(ctx: JobContext, req: controller_pb2.ArchiveRequest) -> Iterator[controller_pb2.JobEvent]:
    names = archive_tiers(ctx.cfg, req.tier)
    if not names:
        raise errors.UsageError("no archive tier configured: add a [tiers.NAME] with kind = \"archive\" "
                                "(docs/ARCHIVE.md)")
    results = {}
    for name in names:
        with ctx.lock(lock_name(name)):
            results[name] = yield from write_due(ctx, name, list(req.ids))
    written = sum(len(r) for r in results.values())
    yield ctx.result(f"wrote {written} archive set(s) to {', '.join(names)}", {"tiers": results})


def replicate_archive(ctx: JobContext, name: str) -> Iterator[controller_pb2.JobEvent]:
    """The replicate job's step for an archive tier: the sets due, then the tier's queue is settled."""
    queue = ctx.controller.replication
    try:
        sets = yield from write_due(ctx, name, [])
    except errors.RagBackupError as exc:
        queue.failed(name, exc.message, ctx.clock.now())
        raise
    queue.done(name, queue.waiting(name), ctx.clock.now())
    return {"snapshots": len(sets), "bytes": sum(s["bytes_stored"] for s in sets), "sets": sets,
            "packs": sum(s["packs"] for s in sets), "objects": 0, "server_side_packs": 0,
            "feed": ctx.cfg.tiers[name].feed}
