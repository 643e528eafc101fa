"""The export job: a snapshot as the runbook's tarball, streamed to the caller.

In: a snapshot reference, a cancellation event and the JobContext. Out: ExportChunks; the
record names the snapshot and counts the bytes sent.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.runbook_export import export_chunks


def run(ctx: JobContext, ref: str) -> Iterator[controller_pb2.ExportChunk]:
    for chunk in export_chunks(ctx.controller, ref, ctx.cancel):
        if chunk.filename:
            ctx.note(snapshot=chunk.filename.removesuffix(".tar.gz"))
        ctx.count(bytes_sent=len(chunk.data))
        yield chunk
