"""The background catch-up: replicate after every backup and whenever the queue holds something.

In: the controller's runner and state, and every finished job (a successful backup queues its
snapshot for each tier and wakes the loop). Out: replicate jobs (trigger `timer`) run one at
a time in a thread of the daemon; after a failure (an endpoint down) the next try waits
policy.replicate.retry_delay (5 s doubling to 5 min), so an outage ends with no manual step,
or sooner: a health probe that finds a tier answering again while work waits calls `tier_back`.
"""
from __future__ import annotations

import logging
import threading

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.controller.jobs import replicate as replicate_job
from ragbackup.controller.jobs.records import SUCCESS, JobRecord
from ragbackup.controller.jobs.runner import Job, Runner
from ragbackup.controller.policy.replicate import retry_delay
from ragbackup.controller.repositories import PRIMARY

log = logging.getLogger("ragbackup.controller")
CHECK_EVERY_S = 600.0  # a full check while the queue is empty (snapshots another writer added, new tiers)


class Replicator:
    """Runs the replicate job in the background; `after_job` is the runner's on_finish hook."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.ctl = runner.ctl
        self.failures = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the daemon's stop: also cancels a running replication

    def after_job(self, rec: JobRecord) -> None:
        """A backup that made a snapshot queues it for every tier, then wakes the loop (never blocks the backup)."""
        if rec.kind in ("backup", "import") and rec.result == SUCCESS and rec.snapshot:
            for tier in self.ctl.cfg.tiers:
                self.ctl.replication.enqueue(tier, [rec.snapshot], self.runner.clock.now())
            self._wake.set()

    def tier_back(self, tier: str) -> None:
        """A probe found `tier` answering with snapshots queued: after failures, retry now instead of
        at the end of the backoff (a run with no failure behind it is not disturbed)."""
        if self.failures and self._thread is not None:
            log.info("tier %s answers again: replication retries now", tier)
            self._wake.set()

    def waiting(self) -> int:
        return sum(self.ctl.replication.state(t).depth for t in self.ctl.cfg.tiers)

    def start(self, stop: threading.Event) -> None:
        if not self.ctl.cfg.tiers:
            return
        self._stop = stop
        self._thread = threading.Thread(target=self._loop, args=(stop,), name="replicator", daemon=True)
        self._thread.start()

    def _loop(self, stop: threading.Event) -> None:
        self._wake.set()  # at start: resume what a previous run left queued
        while not stop.is_set():
            self._wake.wait(retry_delay(self.failures) or CHECK_EVERY_S)
            if stop.is_set():
                return
            self._wake.clear()
            self.run_once()

    def run_once(self) -> bool:
        """One replicate job over every tier; False when it failed (the next waits longer).

        With nothing queued, nothing runs while the primary holds no repository (before `ragctl init`;
        a backup's snapshot wakes the loop then). With something queued it runs whatever the primary's
        state: a DR fed from s3 catches up from s3 with the local volume gone."""
        try:
            if not self.waiting() and not self.ctl.repositories.storage(PRIMARY).exists("config"):
                return True
        except errors.RagBackupError:
            pass  # an S3 primary that does not answer: the job reports it
        job = Job("replicate", trigger="timer", caller="controller", audit={"after": "queue"})
        try:
            for _ in self.runner.stream(job, lambda ctx: replicate_job.run(ctx, controller_pb2.ReplicateRequest()),
                                        self._stop):
                pass
        except errors.LockBusy:
            self.failures = max(self.failures, 1)  # `ragctl replicate` or a tier prune holds it: soon again
            return False
        except Exception as exc:  # noqa: BLE001 (the loop outlives any one failure; the job record keeps it)
            self.failures += 1
            exc = exc if isinstance(exc, errors.RagBackupError) else errors.RagBackupError(str(exc))
            log.warning("replication failed (%d in a row; next try in %.0fs): %s", self.failures,
                        retry_delay(self.failures), exc.message)
            return False
        self.failures = 0
        return True
