"""The repair-index job: rewrite the index from the packs' own headers, then delete damaged index objects.

In: a RepairIndexRequest and the JobContext. Out: the repair's JobEvents (controller/repair.py);
the repair holds the repository lock itself.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext
from ragbackup.controller.repair import run_repair_index


def run(ctx: JobContext, req: controller_pb2.RepairIndexRequest) -> Iterator[controller_pb2.JobEvent]:
    yield from run_repair_index(ctx.controller, req.dry_run)
