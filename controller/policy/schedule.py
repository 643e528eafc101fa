"""Pure schedule policy: what a timer-fired `ragctl backup --scheduled` should do now, and
whether the schedule can meet the RPO.

In: the [schedule] and [objectives] config, the snapshot history (oldest first), the
running jobs and "now". Out: a ScheduleDecision (components due full, due incremental,
skipped with the reason) that jobs/scheduled.py runs; `rpo_findings` for start, health and
config check. No I/O, no clock.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from ragbackup.schedule import Objectives, Schedule, span_text

from ragbackup.controller.policy.plan import History

__all__ = ["Objectives", "Schedule", "plan_scheduled", "rpo_findings", "rpo_exposure", "span_text", "worst_gap"]

@dataclass(frozen=True)
class RunningJob:
    """A job running now, as the schedule sees it."""

    id: int
    kind: str
    components: tuple[str, ...]  # () = every component


@dataclass(frozen=True)
class Skip:
    component: str
    reason: str


@dataclass(frozen=True)
class ScheduleDecision:
    full: tuple[str, ...]
    incremental: tuple[str, ...]
    skipped: tuple[Skip, ...]
    notes: tuple[str, ...]  # catch-up after downtime, and the like

    @property
    def idle(self) -> bool:
        return not self.full and not self.incremental

    def summary(self) -> str:
        parts = [f"full: {', '.join(self.full)}" if self.full else "",
                 f"incremental: {', '.join(self.incremental)}" if self.incremental else "",
                 "; ".join(f"{s.component} skipped ({s.reason})" for s in self.skipped)]
        return "; ".join(p for p in (*parts, *self.notes) if p) or "nothing configured"


def _busy(component: str, running: list[RunningJob]) -> RunningJob | None:
    """The running backup or restore that holds `component` (or the repository) now."""
    for job in running:
        if job.kind in ("backup", "restore", "import", "repair-index", "prune") and \
                (not job.components or component in job.components):
            return job
    return None


def _hours(span: _dt.timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f} h"


def _component_due(name: str, sched: Schedule, history: list[History], now: _dt.datetime) -> tuple[str, str]:
    """("full" | "incremental" | "skip", why) for one component."""
    mine = [h for h in history if name in h.captures and h.kind != "import"]
    fulls = [h.time for h in mine if h.kind == "full"]
    last = max((h.time for h in mine), default=None)
    if not fulls:
        return "full", "no full backup yet"
    if now - max(fulls) >= sched.full_every - sched.tolerance:
        return "full", f"last full {_hours(now - max(fulls))} ago"
    if last is not None and now - last < sched.min_gap:
        return "skip", f"backed up {_hours(now - last)} ago (min_gap {span_text(sched.min_gap)})"
    return "incremental", f"last backup {_hours(now - last)} ago" if last else "no backup yet"


def _missed(name: str, sched: Schedule, history: list[History], now: _dt.datetime) -> int:
    """Scheduled incremental runs that did not happen for `name` since its newest backup."""
    last = max((h.time for h in history if name in h.captures and h.kind != "import"), default=None)
    if last is None or now - last <= sched.incremental_every + sched.tolerance:
        return 0
    return int((now - last) / sched.incremental_every) - 1


def plan_scheduled(schedule: Schedule, history: list[History], running: list[RunningJob],
                   now: _dt.datetime, configured: list[str]) -> ScheduleDecision:
    """What a timer firing at `now` should back up: full or incremental per component, nothing for a
    component a running job holds or one backed up within min_gap. After downtime (a Persistent=
    timer firing late) one backup catches up: the missed runs are named, not replayed."""
    names = [n for n in (schedule.components or configured) if n in configured]
    full, incr, skipped, notes = [], [], [], []
    for name in names:
        job = _busy(name, running)
        if job is not None:
            skipped.append(Skip(name, f"{job.kind} job {job.id} is running"))
            continue
        kind, why = _component_due(name, schedule, history, now)
        {"full": full, "incremental": incr}.get(kind, []).append(name)
        if kind == "skip":
            skipped.append(Skip(name, why))
        missed = _missed(name, schedule, history, now)
        if missed and kind != "skip":
            notes.append(f"catching up {name}: {missed} scheduled run(s) missed, {why}")
    return ScheduleDecision(tuple(full), tuple(incr), tuple(skipped), tuple(notes))


def worst_gap(schedule: Schedule) -> _dt.timedelta:
    """The longest time data goes unprotected when every timer fires: the shortest cadence."""
    return min(schedule.full_every, schedule.incremental_every)


def rpo_findings(schedule: Schedule, objectives: Objectives) -> list[str]:
    """Why this schedule cannot meet the RPO ([] when it can)."""
    gap = worst_gap(schedule)
    if gap <= objectives.rpo:
        return []
    return [f"the schedule cannot meet the RPO of {span_text(objectives.rpo)}: backups every "
            f"{span_text(gap)} can lose up to {span_text(gap)} of data (set [schedule] incremental_every "
            f"<= {span_text(objectives.rpo)} and the incremental timer to match, or raise [objectives] rpo)"]


def rpo_exposure(history: list[History], now: _dt.datetime, objectives: Objectives) -> tuple[bool, str]:
    """(within RPO, detail) for the newest backup: what would be lost if the stack died now."""
    times = [h.time for h in history if h.kind != "import"]
    if not times:
        return False, f"no backup yet (RPO {span_text(objectives.rpo)})"
    age = now - max(times)
    return age <= objectives.rpo, f"newest backup {_hours(age)} old (RPO {span_text(objectives.rpo)})"
