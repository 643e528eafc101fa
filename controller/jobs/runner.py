"""The job runner: every controller job (backup, restore, verify, import, export, catalog
rebuild; later forget, prune, replicate, drill) runs through `Runner`.

In: a `Job` (kind, trigger, caller, components, snapshot, audit fields) and the job's body,
a function of a `JobContext`. Out: the body's JobEvents passed through, one job record
(written `running` at start and with its result at the end), an audit line at start and
at end, live progress for `ragctl job ID`, and `on_finish` hooks (metrics) per ended job.

How to add a job kind (say `prune`):
 1. Write controller/jobs/prune.py with `run(ctx: JobContext, request) -> Iterator[JobEvent]`
    for a streaming job, or a function returning a value for a unary one.
 2. In the body, use only the context: `ctx.repository(name)` for a repository (`"primary"`
    today), `ctx.clock.now()` for time, locks declared on the Job (`locks=("repository",)`,
    held by the runner around the body) or taken in the body (`with ctx.lock(name):`), `ctx.progress(...)`, `ctx.log(...)` and `ctx.result(...)` for the events it
    yields, `ctx.check_cancel()` between steps, `ctx.count(bytes_read=..., files=...)` and
    `ctx.note(snapshot=..., components=...)` to fill the job record. `ctx.cfg`, `ctx.catalog`,
    `ctx.agents`, `ctx.state_dir`, `ctx.staging_dir`, `ctx.pack_staging` and `ctx.history()`
    are the controller's shared services.
 3. Call it from the servicer (KINDS already names forget, prune, replicate and drill; add
    any other kind there): `job = self._job("prune", context, audit={...})`, then
    `yield from self.runner.stream(job, lambda ctx: prune.run(ctx, request), _cancel_event(context))`
    (`self.runner.call(...)` for a unary job; a timer or another caller builds `Job(...)` itself).
    The runner records, audits and classifies the outcome: success, failure (any error: its
    class and message are kept), cancelled (errors.Cancelled, or the caller went away) or
    interrupted (the controller died; set at the next start by `Runner.recover`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

from ragbackup import clock as clocks
from ragbackup import errors
from ragbackup.repo import inflight
from ragbackup.repo.repository import Repository
from ragbackup.v1 import controller_pb2

from ragbackup.controller import events, locks
from ragbackup.controller.audit import Audit, Caller
from ragbackup.controller.jobs.records import CANCELLED, FAILURE, SUCCESS, JobRecord, JobRecords
from ragbackup.controller.repositories import PRIMARY

log = logging.getLogger("ragbackup.controller")

# Jobs that read packs: prune waits for those that began before its index swap (repo/inflight.py Readers).
READING_KINDS = frozenset({"restore", "verify", "export", "replicate", "drill", "archive"})
KINDS = ("backup", "restore", "verify", "import", "export", "catalog-rebuild", "repair-index", "forget", "prune",
         "replicate", "drill", "lock-maintain", "archive", "lifecycle")
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """A job about to run: what it is and who asked. `audit` holds the extra audit-line fields."""

    kind: str
    trigger: str = "manual"  # manual | timer | path | api
    caller: Caller | str = ""  # recorded as str(caller); the audit entry gets its uid/pid/certificate fields
    components: tuple[str, ...] = ()
    snapshot: str = ""
    repository: str = PRIMARY
    audit: dict = field(default_factory=dict)
    locks: tuple[str, ...] = ()  # held exclusively by the runner while the body runs (e.g. "repository")
    shared_locks: tuple[str, ...] = ()  # held shared while the body runs


@dataclass
class Progress:
    """The latest progress a running job reported."""

    phase: str = ""
    done: int = 0
    total: int = 0
    unit: str = ""


class JobContext:
    """What a job body may use: repositories, clock, locks, events, cancellation, its record."""

    def __init__(self, runner: "Runner", record: JobRecord, cancel: threading.Event):
        self._runner = runner
        self.record = record
        self.cancel = cancel
        self.clock = runner.clock
        self.latest = Progress()
        self.summary = ""
        self.details: dict = {}

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def controller(self):
        """The Controller, for job code not yet moved onto the context (transitional)."""
        return self._runner.ctl

    @property
    def cfg(self):
        return self._runner.ctl.cfg

    @property
    def catalog(self):
        return self._runner.ctl.catalog

    @property
    def agents(self):
        return self._runner.ctl.agents

    @property
    def state_dir(self) -> str:
        return self._runner.ctl.state_dir

    @property
    def staging_dir(self) -> str:
        return self._runner.ctl.staging_dir

    @property
    def pack_staging(self) -> str:
        return self._runner.ctl.pack_staging

    def history(self):
        """The primary repository's snapshots as the planner sees them (policy.plan.History), oldest first."""
        return self._runner.ctl.history()

    def drilled_snapshots(self) -> frozenset[str]:
        """Snapshots a restore drill restored and checked successfully (from the drill job records)."""
        return frozenset(r.snapshot for r in self._runner.records.list("drill") if r.result == SUCCESS and r.snapshot)

    def repository(self, name: str = PRIMARY) -> Repository:
        """The opened repository `name` (opened and synced once per controller run)."""
        return self._runner.ctl.repositories.get(name)

    def owner(self) -> str:
        return f"{self.record.kind} job {self.record.id}"

    def lock(self, name: str, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        return locks.hold(self.state_dir, name, self.owner(), shared=shared)

    def locks(self, names: list[str]) -> contextlib.AbstractContextManager[None]:
        return locks.hold_all(self.state_dir, names, self.owner())

    def progress(self, phase: str, done: int, total: int = 0, unit: str = "B") -> controller_pb2.JobEvent:
        self.latest = Progress(phase, done, total, unit)
        return events.progress(phase, done, total, unit)

    def log(self, message: str) -> controller_pb2.JobEvent:
        return events.log(message)

    def result(self, summary: str, details: dict) -> controller_pb2.JobEvent:
        self.summary, self.details = summary, details
        return events.result(summary, details)

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise errors.Cancelled(f"{self.record.kind} job {self.record.id} was cancelled")

    def count(self, bytes_read: int = 0, bytes_sent: int = 0, bytes_added: int = 0, files: int = 0) -> None:
        """Add to the record's counters."""
        r = self.record
        self.record = dataclasses.replace(r, bytes_read=r.bytes_read + bytes_read, bytes_sent=r.bytes_sent + bytes_sent,
                                          bytes_added=r.bytes_added + bytes_added, files=r.files + files)

    def note(self, snapshot: str | None = None, components: list[str] | tuple[str, ...] | None = None,
             bytes_total: int | None = None) -> None:
        """Name the snapshot the job made or used, the components it covered and the bytes of data it holds."""
        changes: dict[str, Any] = {}
        if snapshot is not None:
            changes["snapshot"] = snapshot
        if components is not None:
            changes["components"] = tuple(components)
        if bytes_total is not None:
            changes["bytes_total"] = bytes_total
        self.record = dataclasses.replace(self.record, **changes)

    def observe(self, ev: object) -> None:
        """Keep what a passing event says (progress and result), for events built without the context."""
        if not isinstance(ev, controller_pb2.JobEvent):
            return  # a data stream (export chunks): the job counts its own bytes
        kind = ev.WhichOneof("kind")
        if kind == "progress":
            p = ev.progress
            self.latest = Progress(p.phase, p.done, p.total, p.unit)
        elif kind == "result":
            self.summary = ev.result.summary
            self.details = json.loads(ev.result.details_json or "{}")


FinishHook = Callable[[JobRecord], None]


class Runner:
    """Runs jobs: record, audit, progress, cancellation, outcome."""

    def __init__(self, ctl, records: JobRecords, audit: Audit, clock: clocks.Clock = clocks.SYSTEM):
        self.ctl = ctl
        self.records = records
        self.audit = audit
        self.clock = clock
        self._running: dict[int, JobContext] = {}
        self._lock = threading.Lock()
        self._hooks: list[FinishHook] = []
        self._start_hooks: list[FinishHook] = []

    def on_start(self, hook: FinishHook) -> None:
        """Call `hook(record)` when a job starts (the daemon's systemd STATUS line hooks in here)."""
        self._start_hooks.append(hook)

    def probe(self) -> int:
        """A no-op through the runner's lock and its job records: returns once both answer
        (the watchdog's liveness probe; a deadlock here stops the pings)."""
        with self._lock:
            pass
        return len(self.records.list("", 1))

    def running_jobs(self) -> list[JobRecord]:
        """The records of the jobs running now, oldest first."""
        with self._lock:
            return [ctx.record for ctx in sorted(self._running.values(), key=lambda c: c.id)]

    def on_finish(self, hook: FinishHook) -> None:
        """Call `hook(record)` after every job ends (metrics hook in here)."""
        self._hooks.append(hook)

    def recover(self) -> list[int]:
        """At startup: jobs a previous controller left running are marked interrupted."""
        ids = self.records.mark_interrupted(clocks.iso(self.clock.now()))
        if ids:
            log.warning("marked %d job(s) interrupted by the previous controller's end: %s", len(ids),
                        ", ".join(map(str, ids)))
        return ids

    def close(self) -> None:
        self.records.close()

    def running(self, job_id: int) -> JobContext | None:
        with self._lock:
            return self._running.get(job_id)

    def stream(self, job: Job, body: Callable[[JobContext], Iterator[controller_pb2.JobEvent]],
               cancel: threading.Event | None = None) -> Iterator[controller_pb2.JobEvent]:
        """Run a streaming job; its events pass through (and are observed for progress and result)."""
        ctx = self._start(job, cancel)
        try:
            with self._held(ctx, job):
                for ev in body(ctx):
                    ctx.observe(ev)
                    yield ev
        except BaseException as exc:
            self._end(ctx, job, exc)
            raise
        self._end(ctx, job, None)

    def call(self, job: Job, body: Callable[[JobContext], T], cancel: threading.Event | None = None) -> T:
        """Run a unary job; returns what the body returns."""
        ctx = self._start(job, cancel)
        try:
            with self._held(ctx, job):
                out = body(ctx)
        except BaseException as exc:
            self._end(ctx, job, exc)
            raise
        self._end(ctx, job, None)
        return out

    @contextlib.contextmanager
    def _held(self, ctx: JobContext, job: Job) -> Iterator[None]:
        """The job's declared locks (LockBusy names the holder when one is taken); a reading job registered."""
        with contextlib.ExitStack() as stack:
            if job.kind in READING_KINDS:
                stack.enter_context(inflight.READERS.reading(ctx.owner()))
            for name in sorted(job.shared_locks):
                stack.enter_context(ctx.lock(name, shared=True))
            if job.locks:
                stack.enter_context(ctx.locks(list(job.locks)))
            yield

    def _start(self, job: Job, cancel: threading.Event | None) -> JobContext:
        if job.kind not in KINDS:
            raise errors.UsageError(f"unknown job kind {job.kind!r}")
        rec = self.records.start(JobRecord(
            id=0, kind=job.kind, trigger=job.trigger, caller=str(job.caller), components=tuple(job.components),
            snapshot=job.snapshot, started=clocks.iso(self.clock.now()), repository=job.repository))
        ctx = JobContext(self, rec, cancel or threading.Event())
        with self._lock:
            self._running[rec.id] = ctx
        self.audit.record("job-start", job.caller, "started", kind=job.kind, job=rec.id, trigger=job.trigger,
                          **job.audit)
        for hook in self._start_hooks:
            hook(rec)
        return ctx

    def _end(self, ctx: JobContext, job: Job, exc: BaseException | None) -> None:
        with self._lock:
            self._running.pop(ctx.id, None)
        result, err_class, message = _outcome(exc)
        rec = dataclasses.replace(ctx.record, finished=clocks.iso(self.clock.now()), result=result,
                                  error_class=err_class, error_message=message, summary=ctx.summary or message)
        self.records.finish(rec)
        fields = {**job.audit, "snapshot": rec.snapshot or job.audit.get("snapshot", "-"), "kind": job.kind,
                  "result": result, "bytes": rec.bytes_read, "bytes_added": rec.bytes_added}
        if rec.components:
            fields["components"] = ",".join(rec.components)
        if err_class:
            fields["error"] = err_class
        outcome = {SUCCESS: "ok", CANCELLED: "cancelled"}.get(result, "failed")
        self.audit.record(job.kind, job.caller, outcome, **fields, job=rec.id, trigger=job.trigger)
        for hook in self._hooks:
            hook(rec)


def open_runner(ctl, audit: Audit | None = None, clock: clocks.Clock = clocks.SYSTEM) -> Runner:
    """The controller's runner, its records in the catalog's SQLite file; marks interrupted jobs."""
    records = JobRecords(ctl.catalog_path)
    runner = Runner(ctl, records, audit or Audit(), clock)
    runner.recover()
    return runner


def _outcome(exc: BaseException | None) -> tuple[str, str, str]:
    """(result, error class, message) of a job that ended with `exc` (None: success)."""
    if exc is None:
        return SUCCESS, "", ""
    if isinstance(exc, (errors.Cancelled, GeneratorExit, KeyboardInterrupt)):
        return CANCELLED, "Cancelled", exc.message if isinstance(exc, errors.Cancelled) else "the caller went away"
    message = exc.message if isinstance(exc, errors.RagBackupError) else str(exc)
    return FAILURE, type(exc).__name__, message


