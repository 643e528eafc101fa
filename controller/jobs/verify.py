"""The verify job: check the repository's structure, and every byte with --read-data.

In: a VerifyRequest and the JobContext. Out: the verification's JobEvents.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.verify import run_verify


def run(ctx: JobContext, req: controller_pb2.VerifyRequest) -> Iterator[controller_pb2.JobEvent]:
    yield from run_verify(ctx.repository(ctx.record.repository), req.read_data)
