"""Object lock maintenance in the background: the lock-maintain job every maintain_every.

In: the runner (and its controller's config). Out: at start, a StateError for a locked tier whose
bucket lacks object lock (the daemon does not start); then a lock-maintain job (trigger `timer`)
per locked tier each `maintain_every` (the config guarantees maintain_every < extend_within <
days). A failure (endpoint down) is logged and tried again after a tenth of the interval.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading

from ragbackup import errors
from ragbackup.config import ControllerConfig

from ragbackup.controller import lockkeep
from ragbackup.controller.jobs import lockkeep as lockkeep_job
from ragbackup.controller.jobs.runner import Job, Runner

log = logging.getLogger("ragbackup.controller")


def check_locked_tiers(cfg: ControllerConfig) -> None:
    """StateError for a locked tier whose bucket has no object lock; unreachable ones are only logged."""
    for name, tier in cfg.tiers.items():
        if tier.object_lock is None:
            continue
        try:
            if not lockkeep.check(tier):
                log.warning("tier %s: bucket %s does not exist yet: create it with `ragctl init --tier %s` "
                            "(object lock enabled)", name, tier.bucket, name)
        except errors.Unavailable as exc:
            log.warning("tier %s: cannot check its bucket's object lock now (%s); maintenance checks again",
                        name, exc.message)


class LockKeeper:
    def __init__(self, runner: Runner):
        self.runner = runner
        self.cfg = runner.ctl.cfg
        self._due: dict[str, dt.datetime] = {}

    def start(self, stop: threading.Event) -> None:
        names = lockkeep_job.locked_tiers(self.cfg)
        if names:
            threading.Thread(target=self._loop, args=(stop, names), name="lock-keeper", daemon=True).start()

    def _loop(self, stop: threading.Event, names: list[str]) -> None:
        while not stop.is_set():
            now = self.runner.clock.now()
            for name in names:
                if self._due.get(name, now) <= now:
                    self._due[name] = now + self._run(name)
            wake = min(self._due.values()) - self.runner.clock.now()
            stop.wait(max(1.0, min(wake.total_seconds(), 3600.0)))

    def _run(self, name: str) -> dt.timedelta:
        """One job for tier `name`; the wait before the next (a tenth of the interval after a failure)."""
        every = self.cfg.tiers[name].object_lock.maintain_every
        try:
            if not lockkeep.check(self.cfg.tiers[name]):  # no bucket yet: `ragctl init --tier` creates it
                return every / 10
        except errors.RagBackupError as exc:
            log.warning("tier %s: object lock maintenance cannot start, again in %s: %s", name, every / 10,
                        exc.message)
            return every / 10
        job = Job("lock-maintain", trigger="timer", caller="controller", audit={"tier": name})
        try:
            for _ in self.runner.stream(job, lambda ctx: lockkeep_job.run(ctx, name)):
                pass
        except Exception as exc:  # noqa: BLE001 (the loop outlives a failure; the job record keeps it)
            log.warning("tier %s: object lock maintenance failed, again in %s: %s", name, every / 10, exc)
            return every / 10
        return every
