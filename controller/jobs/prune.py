"""The prune job: reclaim what no snapshot needs, beside running backups.

In: a PruneRequest and the JobContext. Out: the prune's JobEvents (controller/prune.py).
Its Job declares the `prune` lock only (jobs/forget.py LOCKS): backups keep running and committing (docs/FORMAT.md
"Prune and concurrent backups").
"""
from __future__ import annotations

import os
from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.prune import run_prune


def run(ctx: JobContext, req: controller_pb2.PruneRequest) -> Iterator[controller_pb2.JobEvent]:
    repo = ctx.repository(ctx.record.repository)
    staging = ctx.pack_staging
    if ctx.record.repository in ctx.cfg.tiers:  # a tier's repacked packs are staged in the state dir, not the local volume
        staging = ctx.staging_dir
        os.makedirs(staging, mode=0o750, exist_ok=True)
    retention = ctx.cfg.tiers[ctx.record.repository].retention if ctx.record.repository in ctx.cfg.tiers \
        else ctx.cfg.retention
    pct = req.max_repack if req.HasField("max_repack") else retention.repack_pct
    yield from run_prune(repo, staging, pct, req.dry_run, retention.reader_wait)
    done = ctx.details.get("done") or {}
    ctx.count(bytes_added=done.get("bytes_written", 0))  # repacked bytes; what went is in the result
