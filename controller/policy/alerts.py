"""The controller's alert policy: which of the runbook's alerts fire, from plain data.

In: an `AlertState` (finished job records as `JobView`s, the backup volume's space, the recovery
objectives, replication figures), thresholds ([alerts], config.AlertsConfig) and the time. Out: the firing `Alert`s;
the controller audits their start and end, shows them in `ragctl status` and may POST them.
"""
from __future__ import annotations

import datetime as _dt
import statistics
from dataclasses import dataclass
from typing import Protocol

SUCCESS, FAILURE, INTERRUPTED = "success", "failure", "interrupted"
BASELINE_RUNS = 7  # the size baseline is the median of this many earlier successes of the same kind and scope
CRITICAL, WARNING = "critical", "warning"
# jobs an operator runs and watches: their failures are answered on the terminal, not paged
INTERACTIVE_KINDS = ("restore", "export", "import", "catalog-rebuild")
ALERT_NAMES = ("RagBackupJobFailed", "RagBackupSizeDeviation", "RagBackupTooOld", "RagBackupUploadFailures",
               "RagBackupVolumeLowSpace", "RagBackupRPOBreach", "RagBackupDrillFailed", "RagBackupDrillOverdue",
               "RagBackupDrillSlow", "RagBackupReplicationLag")


class AlertsConfig(Protocol):
    """The thresholds the rules read (config.AlertsConfig, [alerts])."""

    size_deviation: float
    max_backup_age_hours: float
    min_free_ratio: float
    failure_window_hours: float
    drill_max_age_days: float
    max_replication_lag_hours: float


@dataclass(frozen=True)
class JobView:
    """A finished job as the policy sees it."""

    kind: str
    result: str
    started: _dt.datetime
    finished: _dt.datetime
    components: tuple[str, ...] = ()
    bytes_read: int = 0
    snapshot: str = ""  # the snapshot a backup wrote, or a drill restored
    bytes_total: int = 0  # the data a backup's snapshot holds; 0: not recorded (jobs before it was)

    @property
    def duration(self) -> float:
        return max(0.0, (self.finished - self.started).total_seconds())


@dataclass(frozen=True)
class AlertState:
    """What the alerts look at. `jobs` oldest first; volume sizes 0 when unknown."""

    components: tuple[str, ...]
    jobs: tuple[JobView, ...]
    rpo: float
    rto: float
    volume_total: int = 0
    volume_free: int = 0
    upload_failures_1h: int = 0  # offsite uploads failed in the last hour (0 until replication exists)
    replication_lag: float | None = None  # seconds; None while nothing replicates


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    summary: str
    component: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}/{self.component}" if self.component else self.name

    def as_dict(self) -> dict:
        return {"name": self.name, "severity": self.severity, "summary": self.summary, "component": self.component}


# --------------------------------------------------------------------------- facts the alerts use

def successes(jobs: tuple[JobView, ...], kind: str) -> list[JobView]:
    return [j for j in jobs if j.kind == kind and j.result == SUCCESS]


def newest_good_backup(jobs: tuple[JobView, ...], component: str) -> JobView | None:
    """The newest successful backup (or import) that covered `component`."""
    good = [j for j in jobs if j.kind in ("backup", "import") and j.result == SUCCESS and component in j.components]
    return good[-1] if good else None


def size_baseline(jobs: tuple[JobView, ...], kind: str = "backup") -> tuple[int, float] | None:
    """(newest success's size, median of the BASELINE_RUNS successes before it that covered the same
    components); None without both.

    A backup's size is the data its snapshot holds (bytes_total), not what it read: a backup
    after a full one reads only what changed, often nothing, and that is no deviation. A backup
    of fewer components is compared only with backups of those same components.
    """
    done = [j for j in successes(jobs, kind) if j.bytes_total > 0]
    if not done:
        return None
    newest = done[-1]
    earlier = [j.bytes_total for j in done[:-1] if j.components == newest.components][-BASELINE_RUNS:]
    if not earlier:
        return None
    return newest.bytes_total, float(statistics.median(earlier))


def last_drill(jobs: tuple[JobView, ...]) -> JobView | None:
    drills = [j for j in jobs if j.kind == "drill" and j.result in (SUCCESS, FAILURE, INTERRUPTED)]
    return drills[-1] if drills else None


def newest_drill_verified_backup(jobs: tuple[JobView, ...], component: str) -> JobView | None:
    """The newest successful backup of `component` whose snapshot a restore drill then restored and checked."""
    proven = {j.snapshot for j in jobs if j.kind == "drill" and j.result == SUCCESS and j.snapshot}
    good = [j for j in jobs if j.kind in ("backup", "import") and j.result == SUCCESS
            and component in j.components and j.snapshot in proven]
    return good[-1] if good else None


def age(then: _dt.datetime | None, now: _dt.datetime) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


# --------------------------------------------------------------------------- the rules

def evaluate_alerts(state: AlertState, thresholds: AlertsConfig, now: _dt.datetime) -> list[Alert]:
    """Every alert that fires now, in ALERT_NAMES order."""
    out: list[Alert] = []
    out += _job_failed(state, thresholds, now)
    out += _size_deviation(state, thresholds)
    out += _backup_age(state, thresholds, now)
    if state.upload_failures_1h > 0:
        out.append(Alert("RagBackupUploadFailures", WARNING,
                         f"{state.upload_failures_1h} offsite upload(s) failed in the last hour"))
    out += _volume(state, thresholds)
    out += _drills(state, thresholds, now)
    if state.replication_lag is not None and state.replication_lag > thresholds.max_replication_lag_hours * 3600:
        out.append(Alert("RagBackupReplicationLag", WARNING,
                         f"offsite copy lags {_hours(state.replication_lag)} behind "
                         f"(limit {thresholds.max_replication_lag_hours:g} h)"))
    order = {n: i for i, n in enumerate(ALERT_NAMES)}
    return sorted(out, key=lambda a: (order[a.name], a.component))


def _job_failed(state: AlertState, t: AlertsConfig, now: _dt.datetime) -> list[Alert]:
    """A job failed (or was interrupted) within the failure window and no later job of its kind succeeded
    (interactive kinds excepted)."""
    window = t.failure_window_hours * 3600
    out = []
    for kind in sorted({j.kind for j in state.jobs} - set(INTERACTIVE_KINDS)):
        runs = [j for j in state.jobs if j.kind == kind and j.result in (SUCCESS, FAILURE, INTERRUPTED)]
        if runs and runs[-1].result != SUCCESS and (now - runs[-1].finished).total_seconds() <= window:
            out.append(Alert("RagBackupJobFailed", CRITICAL, f"the last {kind} job {runs[-1].result.replace('failure', 'failed')}",
                             component=kind))
    return out


def _size_deviation(state: AlertState, t: AlertsConfig) -> list[Alert]:
    pair = size_baseline(state.jobs)
    if pair is None or pair[1] <= 0:
        return []
    size, base = pair
    deviation = abs(size - base) / base
    if deviation <= t.size_deviation:
        return []
    return [Alert("RagBackupSizeDeviation", WARNING,
                  f"the last backup holds {size} bytes, {deviation:.0%} off the baseline of {base:.0f} bytes "
                  f"(limit {t.size_deviation:.0%})")]


def _backup_age(state: AlertState, t: AlertsConfig, now: _dt.datetime) -> list[Alert]:
    out = []
    for comp in state.components:
        good = newest_good_backup(state.jobs, comp)
        seconds = age(good.finished if good else None, now)
        if seconds is None or seconds > t.max_backup_age_hours * 3600:
            what = "has no successful backup" if seconds is None else f"was last backed up {_hours(seconds)} ago"
            out.append(Alert("RagBackupTooOld", CRITICAL, f"{comp} {what} (limit {t.max_backup_age_hours:g} h)",
                             component=comp))
        if seconds is not None and seconds > state.rpo:
            out.append(Alert("RagBackupRPOBreach", CRITICAL,
                             f"{comp}: newest good backup is {_hours(seconds)} old, over the RPO of "
                             f"{_hours(state.rpo)}", component=comp))
    return out


def _volume(state: AlertState, t: AlertsConfig) -> list[Alert]:
    if state.volume_total <= 0:
        return []
    ratio = state.volume_free / state.volume_total
    if ratio >= t.min_free_ratio:
        return []
    return [Alert("RagBackupVolumeLowSpace", CRITICAL,
                  f"backup volume has {ratio:.1%} free (limit {t.min_free_ratio:.0%})")]


def _drills(state: AlertState, t: AlertsConfig, now: _dt.datetime) -> list[Alert]:
    """Last drill failed; last drill slower than the RTO; no good drill within drill_max_age_days
    (counted from the first good backup when no drill ever succeeded)."""
    out = []
    drill = last_drill(state.jobs)
    if drill is not None and drill.result != SUCCESS:
        out.append(Alert("RagBackupDrillFailed", CRITICAL, f"the last restore drill {drill.result.replace('failure', 'failed')}"))
    if drill is not None and drill.result == SUCCESS and drill.duration > state.rto:
        out.append(Alert("RagBackupDrillSlow", WARNING,
                         f"the last drill took {_hours(drill.duration)}, over the RTO of {_hours(state.rto)}"))
    good = successes(state.jobs, "drill")
    backups = successes(state.jobs, "backup") + successes(state.jobs, "import")
    since = good[-1].finished if good else (min(j.finished for j in backups) if backups else None)
    limit = t.drill_max_age_days * 86400
    if since is not None and (now - since).total_seconds() > limit:
        what = f"the last good drill was {_hours(age(since, now) or 0)} ago" if good else "no drill has succeeded yet"
        out.append(Alert("RagBackupDrillOverdue", WARNING, f"{what} (limit {t.drill_max_age_days:g} days)"))
    return out


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def changes(before: set[str], now_firing: list[Alert]) -> tuple[list[Alert], list[str]]:
    """(alerts that started firing, keys of alerts that stopped) between two evaluations."""
    keys = {a.key for a in now_firing}
    return [a for a in now_firing if a.key not in before], sorted(before - keys)
