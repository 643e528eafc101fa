"""The prune job: reclaim what no snapshot needs, beside running backups.

In: a PruneRequest and the JobContext. Out: the prune's JobEvents (controller/prune.py).
Its Job declares the `prune` lock only (jobs/forget.py LOCKS): backups keep running and committing (docs/FORMAT.md
"Prune and concurrent backups").
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.prune import run_prune


def run(ctx: JobContext, req: controller_pb2.PruneRequest) -> Iterator[controller_pb2.JobEvent]:
    repo = ctx.repository(ctx.record.repository)
    retention = ctx.cfg.tiers[ctx.record.repository].retention if ctx.record.repository in ctx.cfg.tiers \
        else ctx.cfg.retention
    pct = req.max_repack if req.HasField("max_repack") else retention.repack_pct
    yield from run_prune(repo, ctx.controller.pack_staging, pct, req.dry_run)
    done = ctx.details.get("done") or {}
    ctx.count(bytes_added=done.get("bytes_written", 0))  # repacked bytes; what went is in the result
