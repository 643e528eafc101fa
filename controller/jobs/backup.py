"""The backup job: capture the planned components into the primary repository.

In: a BackupRequest and the JobContext. Out: the capture's JobEvents; the record names
the snapshot and its bytes read (by the agents), sent (to the controller) and added (stored).
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.repo.manifest import Manifest
from ragbackup.v1 import controller_pb2

from ragbackup.controller.backup import run_backup
from ragbackup.controller.jobs.runner import JobContext


def run(ctx: JobContext, req: controller_pb2.BackupRequest) -> Iterator[controller_pb2.JobEvent]:
    yield from run_backup(ctx, req, ctx.record.caller, ctx.clock)
    record_snapshot(ctx, Manifest.from_dict(ctx.details))


def record_snapshot(ctx: JobContext, manifest: Manifest) -> None:
    """Fill the job record from the snapshot a job wrote (backup and import)."""
    ctx.note(snapshot=manifest.id, components=sorted(manifest.components),
             bytes_total=manifest.totals()["bytes_total"])
    s = manifest.stats
    ctx.count(bytes_read=s.bytes_read, bytes_sent=s.bytes_sent, bytes_added=s.bytes_stored,
              files=manifest.totals()["files"])
