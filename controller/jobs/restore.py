"""The restore job: stream a snapshot's components to their agents.

In: a RestoreRequest and the JobContext. Out: the restore's JobEvents; the record names
the snapshot, the components, the bytes read from the repository and sent to agents, the files.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.restore import run_restore


def run(ctx: JobContext, req: controller_pb2.RestoreRequest) -> Iterator[controller_pb2.JobEvent]:
    yield from run_restore(ctx.controller, req)
    d = ctx.details
    ctx.note(snapshot=d.get("snapshot", ""))
    results = d.get("components", {})
    if isinstance(results, dict):  # a dry run lists names only
        sent = sum(r.get("bytes", 0) for r in results.values())
        ctx.note(components=sorted(results))
        ctx.count(bytes_read=sent, bytes_sent=sent, files=sum(r.get("files", 0) for r in results.values()))
    else:
        ctx.note(components=list(results))
