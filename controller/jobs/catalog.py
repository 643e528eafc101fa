"""The catalog-rebuild job: reload the index and the snapshot catalog from the repository alone.

In: the JobContext. Out: a log event and the result (how many snapshots the catalog holds).
"""
from __future__ import annotations

from typing import Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs.runner import JobContext


def run(ctx: JobContext) -> Iterator[controller_pb2.JobEvent]:
    yield ctx.log("reloading index and snapshots from the repository")
    n = ctx.controller.rebuild_catalog()
    yield ctx.result(f"catalog rebuilt: {n} snapshots", {"snapshots": n})
