"""Scheduled and deploy backups: what a timer's `ragctl backup --scheduled` runs, and the
coalescing of a burst of deploy backups (`--reason deploy`, the config path unit) into one.

In: a BackupRequest, the runner, the [schedule] config. Out: the JobEvents of the backup
jobs the schedule policy (policy/schedule.py) found due, each run through the runner, then
one result naming the decision and the snapshots; audit lines for skips and catch-ups.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ragbackup.v1 import controller_pb2

from ragbackup.controller import events
from ragbackup.controller.jobs import backup as backup_job
from ragbackup.controller.jobs.runner import Job, Runner
from ragbackup.controller.policy.plan import select_components
from ragbackup.controller.policy.schedule import RunningJob, ScheduleDecision, Skip, plan_scheduled

JobFactory = Callable[[controller_pb2.BackupRequest], Job]
Events = Iterator[controller_pb2.JobEvent]

_ONE_AT_A_TIME = threading.Lock()  # two timers firing together: the second finds nothing due


def decide(runner: Runner, requested: list[str]) -> ScheduleDecision:
    """The schedule policy's answer for now (the running jobs and the catalog's history as they are)."""
    cfg = runner.ctl.cfg
    running = [RunningJob(r.id, r.kind, tuple(r.components)) for r in runner.running_jobs()]
    configured = select_components(requested, list(cfg.components))  # UsageError naming unknown ones
    return plan_scheduled(cfg.schedule, runner.ctl.history(), running, runner.clock.now(), configured)


def _requests(decision: ScheduleDecision, reason: str) -> list[controller_pb2.BackupRequest]:
    out = []
    for mode, names in ((controller_pb2.BACKUP_MODE_FULL, decision.full),
                        (controller_pb2.BACKUP_MODE_INCREMENTAL, decision.incremental)):
        if names:
            out.append(controller_pb2.BackupRequest(mode=mode, components=list(names), reason=reason,
                                                    scheduled=True))
    return out


def _decision_dict(decision: ScheduleDecision) -> dict:
    return {"full": list(decision.full), "incremental": list(decision.incremental),
            "skipped": {s.component: s.reason for s in decision.skipped}, "notes": list(decision.notes)}


def run(runner: Runner, make_job: JobFactory, request: controller_pb2.BackupRequest,
        cancel: threading.Event, caller: str) -> Events:
    """Decide, then run the due backups (a full one, an incremental one, or none)."""
    if not _ONE_AT_A_TIME.acquire(blocking=False):  # a scheduled run is deciding or running now
        decision = ScheduleDecision((), (), (Skip("*", "another scheduled run is in progress"),), ())
        _audit(runner, caller, decision)
        yield _result(decision, [])
        return
    try:
        decision = decide(runner, list(request.components))
        yield events.log(f"schedule: {decision.summary()}")
        snapshots = []
        for req in _requests(decision, request.reason or "scheduled"):
            for ev in runner.stream(make_job(req), lambda ctx, r=req: backup_job.run(ctx, r), cancel):
                if ev.WhichOneof("kind") == "result":
                    snapshots.append(json.loads(ev.result.details_json))
                else:
                    yield ev
    finally:
        _ONE_AT_A_TIME.release()
    _audit(runner, caller, decision)
    yield _result(decision, snapshots)


def _audit(runner: Runner, caller: str, decision: ScheduleDecision) -> None:
    if decision.skipped or decision.notes or decision.idle:
        runner.audit.record("schedule", caller, "ok", decision=decision.summary())


def _result(decision: ScheduleDecision, summaries: list[dict]) -> controller_pb2.JobEvent:
    head = ", ".join(f"{s['id']} ({s['kind']})" for s in summaries) or "nothing due"
    return events.result(f"scheduled: {head}; {decision.summary()}",
                         {"schedule": _decision_dict(decision), "snapshots": summaries})


# --------------------------------------------------------------------------- deploy backups


@dataclass
class _Batch:
    """Deploy backup requests coalesced into one job: the first caller runs it, the rest wait."""

    last_arrival: float
    members: int = 1
    started: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    events: list = field(default_factory=list)
    error: BaseException | None = None


class DeployCoalescer:
    """Backups with the same components and `--reason deploy` arriving within `window` seconds of
    each other run as one job (a deploy writes .env, compose files and k8s/ within seconds, and the
    path unit fires for each): the first request waits until no other came for `window`, runs the
    backup, and every request of the burst gets its result."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[tuple, _Batch] = {}

    def run(self, key: tuple, window: float, body: Callable[[], Events]) -> Events:
        leader, batch = self._join(key)
        if not leader:
            yield from self._follow(batch)
            return
        self._quiet(key, batch, window)
        try:
            for ev in body():
                batch.events.append(ev)
                yield ev
        except BaseException as exc:
            batch.error = exc
            raise
        finally:
            batch.done.set()

    def _join(self, key: tuple) -> tuple[bool, _Batch]:
        with self._cond:
            batch = self._pending.get(key)
            if batch is None:
                batch = self._pending[key] = _Batch(time.monotonic())
                return True, batch
            batch.last_arrival = time.monotonic()
            batch.members += 1
            self._cond.notify_all()
            return False, batch

    def _quiet(self, key: tuple, batch: _Batch, window: float) -> None:
        """Wait until `window` seconds passed without another request, then close the batch."""
        with self._cond:
            while (left := batch.last_arrival + window - time.monotonic()) > 0:
                self._cond.wait(left)
            batch.started = True
            del self._pending[key]

    def _follow(self, batch: _Batch) -> Events:
        batch.done.wait()
        yield events.log(f"coalesced with the deploy backup of {batch.members} request(s)")
        if batch.error is not None:
            raise batch.error
        yield from (ev for ev in batch.events if ev.WhichOneof("kind") == "result")


def deploy_key(request: controller_pb2.BackupRequest) -> tuple | None:
    """The coalescing key of a deploy backup; None for any other backup."""
    if request.reason != "deploy" or request.scheduled:
        return None
    return (tuple(sorted(request.components)), request.mode)
