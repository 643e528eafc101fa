"""The lock-maintain job: extend the object lock of every live object of the locked tiers.

In: a tier name ("" : every tier with [tiers.NAME.object_lock]) and the JobContext. Out: per tier,
live objects seen, checked and extended (lockkeep.maintain); holds the tier's replication lock so
it never interleaves with replication, forget or prune of that tier.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.controller import lockkeep
from ragbackup.controller.jobs.replicate import lock_name
from ragbackup.controller.jobs.runner import JobContext


def locked_tiers(cfg, only: str = "") -> list[str]:
    names = [n for n, t in cfg.tiers.items() if t.object_lock is not None]
    if only:
        if only not in cfg.tiers:
            raise errors.UsageError(f"no tier named {only!r} (configured: {', '.join(cfg.tiers) or 'none'})")
        if only not in names:
            raise errors.UsageError(f"tier {only!r} has no [tiers.{only}.object_lock]")
        return [only]
    return names


def run(ctx: JobContext, tier: str = "") -> Iterator[controller_pb2.JobEvent]:
    names = locked_tiers(ctx.cfg, tier)
    results = {}
    for name in names:
        with ctx.lock(lock_name(name)):
            stats = lockkeep.maintain(ctx.cfg.tiers[name], ctx.clock, lambda *_: None)
        results[name] = stats.to_dict()
        yield ctx.log(f"{name}: {stats.live} live object(s), {stats.checked} checked, {stats.extended} extended")
    total = sum(r["extended"] for r in results.values())
    yield ctx.result(f"extended the retention of {total} object(s) on {', '.join(names) or 'no tier'}",
                     {"tiers": results})
