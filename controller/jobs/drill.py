"""The drill job: restore a snapshot into scratch space on agents, start it, check it, time it.

In: a DrillRequest, the JobContext and the audit trail. Out: the drill's JobEvents and its
result: the job record names the snapshot and components, counts bytes and files, and its
summary holds the verdict (SUCCESSFUL, FAILED, TIMED_OUT), the duration against the RTO,
the achieved RPO (the recovery point's age) and what failed; the result's details hold every
check. A `drill` audit event carries the same figures. FAILED and TIMED_OUT end the job as a
failure (VerificationFailed, exit 11) after the result is recorded.
"""
from __future__ import annotations

from typing import Iterator

from ragbackup import clock as clocks
from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.controller.policy import drill as drill_policy
from ragbackup.controller.audit import Audit
from ragbackup.controller.drill import run_drill
from ragbackup.controller.jobs.runner import JobContext


def run(ctx: JobContext, req: controller_pb2.DrillRequest, audit: Audit) -> Iterator[controller_pb2.JobEvent]:
    drill_policy.check_source(req.source, tuple(ctx.cfg.tiers))
    rto_s = drill_policy.rto_seconds(ctx.cfg)
    began = ctx.clock.now()
    run_ = yield from run_drill(ctx.controller, req, rto_s, ctx.cancel)
    ended = ctx.clock.now()
    ctx.note(snapshot=run_.snapshot, components=sorted(run_.agents))
    ctx.count(bytes_read=run_.bytes_sent, bytes_sent=run_.bytes_sent, files=run_.files)
    rpo_s = drill_policy.recovery_point_age(run_.snapshot_time, began)
    v = drill_policy.verdict(run_.checks, (ended - began).total_seconds(), rto_s, rpo_s, run_.deadline_hit)
    summary = drill_policy.summary(v, run_.snapshot)
    details = drill_policy.details(v, run_.snapshot, run_.snapshot_time, run_.agents, run_.seconds)
    details["finished"] = clocks.iso(ended)
    yield ctx.result(summary, details)
    audit.record("drill-result", ctx.record.caller, "ok" if v.result == drill_policy.SUCCESSFUL else "failed",
                 job=ctx.id, result=v.result, snapshot=run_.snapshot, duration_s=f"{v.duration_s:.1f}",
                 rto_s=f"{v.rto_s:.0f}", rpo_s=f"{v.rpo_s:.0f}", failed=len(v.failed))
    if v.result != drill_policy.SUCCESSFUL:
        raise errors.VerificationFailed(summary)
