"""The RepairIndex job: rewrite the index from the packs under the exclusive repository lock.

In: the Controller and a RepairIndexRequest. Out: JobEvents and a result naming the
index objects written and deleted (core/repo/repair.py does the work); the index
cache is synced afterwards, so the next command uses the new objects.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup import errors
from ragbackup.repo.repair import repair_index
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events, locks
from ragbackup.controller.state import Controller


def run_repair_index(ctl: Controller, dry_run: bool) -> Iterator[controller_pb2.JobEvent]:
    repo = ctl.repo()
    with locks.hold(ctl.state_dir, "repository", "repair index"):
        yield events.log("reading every index object, then the headers of packs none of them names")
        result = repair_index(repo, dry_run)
    for _, why in sorted(result.damaged_index.items()):
        yield events.log(f"{'would delete' if dry_run else 'deleted'}: {why}")
    yield events.result(result.summary(), result.as_dict())
    if result.unreadable_packs and not dry_run:
        raise errors.IntegrityError(result.summary())
