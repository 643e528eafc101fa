"""The verify job: check the repository's structure, and every byte with --read-data.

In: a VerifyRequest and the JobContext. Out: the verification's JobEvents; with --read-data
the record counts the bytes of the packs read.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.verify import run_verify


def run(ctx: JobContext, req: controller_pb2.VerifyRequest) -> Iterator[controller_pb2.JobEvent]:
    repo = ctx.repository(ctx.record.repository)
    ctx.controller.sync_catalog(repo)  # a snapshot object gone since the last listing is named as vanished
    yield from run_verify(repo, req.read_data, ctx.catalog.vanished())
    if req.read_data:
        damaged = ctx.details.get("damaged_packs", {})
        ctx.count(bytes_read=sum(size for pid, size in repo.index.packs() if pid not in damaged))
