"""The backup job: capture the planned components into the primary repository.

In: a BackupRequest and the JobContext. Out: the capture's JobEvents; the record names
the snapshot and its bytes read (by the agents), sent (to the controller) and added (stored).
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.backup import run_backup
from ragbackup.controller.jobs.runner import JobContext


def run(ctx: JobContext, req: controller_pb2.BackupRequest) -> Iterator[controller_pb2.JobEvent]:
    yield from run_backup(ctx.controller, req, ctx.record.caller)
    record_snapshot(ctx, ctx.details)


def record_snapshot(ctx: JobContext, summary: dict) -> None:
    """Fill the job record from a new snapshot's summary (backup and import)."""
    comps = summary.get("components", {})
    stats = summary.get("stats", {})
    ctx.note(snapshot=summary.get("id", ""), components=sorted(comps))
    ctx.count(bytes_read=stats.get("bytes_read", 0), bytes_sent=stats.get("bytes_sent", 0),
              bytes_added=stats.get("bytes_stored", 0),
              files=sum(c.get("stats", {}).get("files", 0) for c in comps.values()))
