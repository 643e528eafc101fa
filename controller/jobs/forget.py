"""The forget job: apply [retention] (or forget named snapshots); snapshot objects only.

In: a ForgetRequest and the JobContext. Out: the forget's JobEvents (controller/forget.py);
runs under the `prune` lock (LOCKS, declared on the Job), never beside a prune.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.forget import run_forget
from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.repositories import PRIMARY

LOCKS = ("prune",)  # declared on the Job: forget and prune never interleave


def run(ctx: JobContext, req: controller_pb2.ForgetRequest) -> Iterator[controller_pb2.JobEvent]:
    name = ctx.record.repository
    if name == PRIMARY:
        repo = ctx.repository(name)
        yield from run_forget(repo, ctx.catalog, ctx.cfg.retention, req, ctx.clock.now(), ctx.drilled_snapshots())
        return
    # An offsite tier: its own snapshots, its own retention; what it forgets is never replicated to it again.
    repo, catalog = ctx.controller.synced(name)
    before = catalog.ids()
    yield from run_forget(repo, catalog, ctx.cfg.tiers[name].retention, req, ctx.clock.now(), ctx.drilled_snapshots())
    if not req.dry_run:
        ctx.controller.replication.mark_forgotten(name, sorted(before - catalog.ids()), ctx.clock.now())
